"""``moodwire lsl``: the affect stream on real Lab Streaming Layer outlets (pylsl with its own liblsl), read back
by real pylsl inlets on this machine; the mapping (slots, markers, runs) on known messages."""

from __future__ import annotations

import json
import math
import subprocess
import time

import pytest

from moodwire.pipeline.lsl.mapping import PER_PERSON, LslMapper, channel_names
from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, PersonAffect, SystemHealth
from tests.conftest import MOODWIRE

pylsl = pytest.importorskip("pylsl", reason="pylsl is in the lsl extra (and dev): pip install -e .[lsl]")

NS = 1_000_000_000


def person(track_id: int | None, valence: float) -> PersonAffect:
    return PersonAffect(track_id=track_id, labels=list(LABELS), probs=[1 / 7] * 7, valence=valence, arousal=0.1,
                        confidence=0.5)


def frame(i: int, persons: list[PersonAffect]) -> AffectFrame:
    return AffectFrame(frame_index=i, persons=persons, t_capture=10 * NS + i * NS // 30)


def slot_values(sample: list[float], slot: int) -> list[float]:
    start = 1 + slot * len(PER_PERSON)
    return sample[start:start + len(PER_PERSON)]


def test_faces_keep_their_slot_while_in_view_and_empty_slots_are_nan():
    mapper = LslMapper(face_slots=2)
    assert len(mapper.channels) == 1 + 3 * 10 and mapper.channels[:3] == ["frame_index", "voice_valence",
                                                                           "voice_arousal"]
    sample, t = mapper.sample(frame(0, [person(7, 0.5), person(None, -0.2)]))
    assert sample[0] == 0 and t == pytest.approx(10.0)
    assert slot_values(sample, 0)[0] == -0.2 and slot_values(sample, 1)[0] == 0.5  # voice, then face 7
    assert all(math.isnan(v) for v in slot_values(sample, 2))
    sample, _ = mapper.sample(frame(1, [person(9, 0.1), person(7, 0.4)]))
    assert slot_values(sample, 1)[0] == 0.4 and slot_values(sample, 2)[0] == 0.1  # 7 kept its slot
    assert all(math.isnan(v) for v in slot_values(sample, 0))  # nobody without a face now
    sample, _ = mapper.sample(frame(2, [person(9, 0.1), person(11, 0.3), person(12, 0.9)]))
    assert slot_values(sample, 1)[0] == 0.3 and slot_values(sample, 2)[0] == 0.1 and mapper.slots.overflow == 1


def test_each_utterance_record_is_one_json_marker_at_its_end_and_a_new_run_is_marked():
    mapper = LslMapper()
    utt = AffectUtterance(utterance_id=5, t_start=2 * NS, t_end=4 * NS, text=" hello ", labels=list(LABELS),
                          probs=[0, 0, 0, 1, 0, 0, 0], valence=0.4, arousal=0.2, stage="acoustic",
                          speaker_track_id=3)
    kind, text, t = mapper.map(utt)
    assert kind == "marker" and t == 4.0
    assert json.loads(text) == {"utterance_id": 5, "stage": "acoustic", "text": "hello", "label": "happy",
                                "valence": 0.4, "arousal": 0.2, "confidence": 0.0, "speaker_track_id": 3,
                                "start_s_before_end": 2.0}
    assert mapper.map(SystemHealth(run_id="a", t_capture=NS)) is None  # the first run seen
    kind, text, _ = mapper.map(SystemHealth(run_id="b", t_capture=2 * NS))
    assert json.loads(text) == {"event": "run started", "run_id": "b"}
    bad = PersonAffect(track_id=1, labels=list(LABELS), probs=[1 / 7] * 7, valence="high", arousal=0.0,
                       confidence=0.0)
    assert mapper.map(frame(1, [bad])) is None and mapper.skipped == 1  # a malformed person: skipped, counted


def inlet(name: str):
    found = pylsl.resolve_byprop("name", name, timeout=30)
    assert found, f"no LSL stream {name} on this machine"
    stream = pylsl.StreamInlet(found[0], max_buflen=60)
    stream.open_stream(timeout=10)
    return stream


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("started_as", ["command", "node"])
def test_a_running_pipeline_reaches_real_lsl_inlets_stamped_at_capture(start_pipeline, started_as):
    """``moodwire lsl`` beside the pipeline, or the lsl node the config enables in it."""
    as_node = ("--set", "lsl.enabled=true", "--set", "lsl.slots=2") if started_as == "node" else ()
    pipeline = start_pipeline("--config", "configs/sample.toml", *as_node)
    pipeline.wait_healthy(timeout=150)
    sub = Subscriber(pipeline.endpoint, ["affect.frame", "affect.utterance"], queue_everything=True)
    outlet = subprocess.Popen([*MOODWIRE, "lsl", "--endpoint", pipeline.endpoint, "--slots", "2"],
                              env=pipeline.env, stderr=subprocess.PIPE, text=True) if not as_node else None
    try:
        affect, markers = inlet("moodwire-affect"), inlet("moodwire-utterances")
        opened = now_ns() + 2 * NS  # records published from then on must all reach the marker inlet
        info = affect.info()
        assert info.type() == "Affect" and info.channel_count() == len(channel_names(2))
        assert info.nominal_srate() == 30.0 and "<label>face1_p_happy</label>" in info.as_xml()
        assert "<unit>probability</unit>" in info.as_xml() and "first free slot" in info.as_xml()
        samples, stamps, texts = [], [], []
        frames: dict[int, int] = {}
        utterances: list[tuple[int, str, int]] = []
        deadline = time.monotonic() + 14  # the sample clip says a sentence every 4 s
        while time.monotonic() < deadline:
            chunk, ts = affect.pull_chunk(timeout=0.2)
            samples += chunk
            stamps += ts
            got, _ = markers.pull_chunk(timeout=0.0)
            texts += [json.loads(m[0]) for m in got]
            while (msg := sub.recv(timeout=0)) is not None:
                if isinstance(msg.msg, AffectFrame):
                    frames[msg.msg.frame_index] = msg.msg.t_capture
                else:
                    utterances.append((msg.msg.utterance_id, msg.msg.stage, msg.t_receive))
        closed = now_ns() - NS
        time.sleep(1.0)
        texts += [json.loads(m[0]) for m in markers.pull_chunk(timeout=1.0)[0]]
        correction = affect.time_correction(timeout=5)  # while the outlet is there to answer
    finally:
        if outlet is not None:
            outlet.terminate()
            outlet.wait(timeout=30)
        sub.close()
    assert abs(correction) < 1e-3  # one machine: one clock
    matched = [(s, t) for s, t in zip(samples, stamps) if int(s[0]) in frames]
    assert len(matched) > 200, (len(samples), len(frames))
    worst = max(abs(t + correction - frames[int(s[0])] / NS) for s, t in matched)
    assert worst < 1e-3, worst  # each sample stamped at its frame's capture (the stated bound: 1 ms)
    assert any(not math.isnan(s[1 + len(PER_PERSON)]) for s, _ in matched)  # the clip's face in slot face1
    expected = {(uid, stage) for uid, stage, t in utterances if opened < t < closed}
    got = [(m["utterance_id"], m["stage"]) for m in texts if "utterance_id" in m]
    assert expected and expected <= set(got) and len(got) == len(set(got)), (expected, got)


def test_lsl_refuses_what_it_cannot_use():
    done = subprocess.run([*MOODWIRE, "lsl", "--slots", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--slots must be 1 to 64" in done.stderr


def test_the_lsl_node_runs_live_on_the_bus_host_and_nothing_waits_for_it():
    from moodwire.pipeline.core.config import load_config
    from moodwire.pipeline.runtime.process_table import enabled_nodes, flow_plan

    on = load_config(None, ["lsl.enabled=true"])
    assert "lsl" in {n.name for n in enabled_nodes(on)}
    assert "lsl" not in flow_plan("video_source", on).downstream  # a sink: no source waits for it
    for off in (["lsl.enabled=true", "sources.pace=lossless"], ["lsl.enabled=true", "bus.join=tcp://host:5560",
                                                                 "manager.nodes=video_source"]):
        assert "lsl" not in {n.name for n in enabled_nodes(load_config(None, off))}
