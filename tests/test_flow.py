"""Flow control (pipeline/core/flow.py): event times, watermarks, back-pressure, the process table's plan,
lossless fusion deciding the same whatever the arrival order, steps that let go at the end, and the
wire's owned buffers."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.flow import AHEAD_S, END, TAKES_AHEAD_S, Backpressure, FlowPlan, Watermarks, due, event_time
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, AudioChunk, Progress, UtteranceAudio
from moodwire.pipeline.core.wire import decode, encode, owned
from moodwire.pipeline.fusion.ordered import EventOrder
from moodwire.pipeline.fusion.step import FusionStep
from moodwire.pipeline.runtime.process_table import flow_plan
from moodwire.pipeline.vad.segmenter import SegmenterSettings
from moodwire.pipeline.vad.step import VadStep
from moodwire.pipeline.vad.webrtc import WebrtcClassifier
from moodwire.pipeline.voice.step import VoiceStep
from tests.test_fusion_node import (MS, NS, SR, Speech, face, model, t_frame, tracks,  # noqa: F401 (model: fixture)
                                    video)

LOSSLESS = ("--set", "sources.pace=lossless")


def mark(node: str, wm: int, stream: str = "") -> Progress:
    return Progress(node=node, kind="watermark", stream=stream, watermark=wm)


def config(**sources) -> Config:
    base = Config()
    return dataclasses.replace(base, sources=dataclasses.replace(base.sources, video="file", audio="file", **sources))


# ---------------------------------------------------------------- event times and watermarks


def test_speech_messages_are_timed_by_the_end_of_what_they_cover():
    piece = UtteranceAudio(utterance_id=1, t_start=0, offset=0, sample_rate=SR, samples=np.zeros(SR // 5, np.int16),
                           t_capture=10 * NS)
    assert event_time(piece) == 10 * NS + NS // 5
    speech = Speech(NS, 3 * NS).messages()
    by_topic = {topic: msg for _, topic, msg in speech}
    assert event_time(by_topic["voice.affect"]) == event_time(by_topic["text.affect"]) == 3 * NS
    start = next(m for _, t, m in speech if t == "speech.vad" and m.kind == "start")
    assert event_time(start) == start.t_capture
    assert event_time(video(3)) == t_frame(3)


def test_the_input_watermark_is_the_slowest_producer_once_every_one_has_spoken():
    marks = Watermarks(("face", "vad"))
    assert not marks.update(mark("face", 5)) and marks.value is None  # vad has said nothing yet
    assert marks.update(mark("vad", 3)) and marks.value == 3
    assert not marks.update(mark("asr", 1))  # not a producer of this node
    assert not marks.update(mark("face", 4)) and marks.value == 3  # a watermark never goes back
    assert marks.update(mark("vad", END)) and marks.value == 5


def test_a_watermark_is_published_every_100_ms_and_at_the_end():
    assert due(0, None) and not due(50 * MS, 0) and due(100 * MS, 0) and due(END, 10)


def test_a_source_waits_for_the_slowest_node_and_the_frame_taker_most_closely():
    plan = FlowPlan(lossless=True, upstream=(), downstream=("face", "fusion"), takes=("face",))
    pressure = Backpressure(plan, "")
    start = 100 * NS
    takes, ahead = int(TAKES_AHEAD_S * NS), int(AHEAD_S * NS)
    assert pressure.behind(start + takes, start) == []  # nobody has spoken: the first window may go
    assert pressure.behind(start + takes + MS, start) == ["face"]  # the face node's queue holds frames
    pressure.on_progress(mark("face", start + 2 * NS))
    assert pressure.behind(start + 2 * NS + takes, start) == []
    assert pressure.behind(start + ahead + MS, start) == ["face", "fusion"]  # fusion holds no frames: 8 s
    pressure.on_progress(mark("fusion", start + 5 * NS, stream="cam2"))  # another stream's
    pressure.on_progress(mark("face", start + ahead))
    assert pressure.behind(start + ahead + MS, start) == ["fusion"]


def test_the_process_table_says_whom_each_node_follows_and_each_source_waits_for():
    lossless = config(pace="lossless")
    assert flow_plan("face", lossless).upstream == ("video_source",)
    assert set(flow_plan("fusion", lossless).upstream) == {"face", "vad", "asr", "voice", "text"}  # no video.frame
    video_plan = flow_plan("video_source", lossless)
    assert video_plan.lossless and video_plan.takes == ("face",) and video_plan.downstream == ("face", "fusion")
    audio_plan = flow_plan("audio_source", lossless)
    assert audio_plan.takes == ("vad",) and audio_plan.downstream == ("vad", "asr", "voice", "text", "fusion")
    live = flow_plan("fusion", config())
    assert not live.lossless and "video_source" in live.upstream  # live fusion takes the frames themselves
    no_face = dataclasses.replace(lossless, nodes=dataclasses.replace(lossless.nodes, face=False))
    assert flow_plan("fusion", no_face).upstream[0] == "video_source"


# ---------------------------------------------------------------- lossless fusion


def recorded_inputs(n_frames: int = 90) -> list[tuple[int, str, object]]:
    """(event time, topic, message) of a 3 s run: a face every frame, one utterance from 0.5 to 2.2 s."""
    out = [(t_frame(i), "face.tracks", tracks(i, [face(mouth=0.1 * (i % 3))])) for i in range(n_frames)]
    out += [(event_time(m), topic, m) for _, topic, m in Speech(t_frame(15), t_frame(66)).messages()]
    return sorted(out, key=lambda x: x[0])


def run_in_order(model, arrivals: list[tuple[int, str, object]], marks: list[int]) -> list:
    """Feed ``arrivals`` to an EventOrder, advancing the watermark to each of ``marks`` when every message
    below it has been fed (as the node loop's watermarks guarantee); what it published."""
    order = EventOrder(FusionStep(model), takes_video=False)
    out, fed = [], 0
    for wm in marks:
        while fed < len(arrivals) and arrivals[fed][0] < wm:
            assert order.process(arrivals[fed][1], arrivals[fed][2]) == ()
            fed += 1
        out += order.advance(wm)
    return out


def summary(out: list) -> list:
    rows = []
    for topic, msg in out:
        if isinstance(msg, AffectFrame):
            rows.append((topic, msg.frame_index, [(p.track_id, round(p.valence, 9), p.probs) for p in msg.persons],
                         msg.missing))
        elif isinstance(msg, AffectUtterance):
            rows.append((topic, msg.utterance_id, msg.stage, msg.text, round(msg.valence, 9), msg.missing,
                         msg.speaker_track_id))
    return rows


def test_lossless_fusion_decides_the_same_whatever_the_arrival_order_and_watermark_steps(model):
    inputs = recorded_inputs()
    fine = [t_frame(i) + 1 for i in range(90)] + [END]
    reference = run_in_order(model, inputs, fine)
    frames = [m.frame_index for _, m in reference if isinstance(m, AffectFrame)]
    assert frames == list(range(90))  # every frame once, in order
    utterances = [m for _, m in reference if isinstance(m, AffectUtterance)]
    assert [u.stage for u in utterances] == ["acoustic", "final"]  # both records, also in event time
    assert utterances[1].text and "voice" not in utterances[1].missing
    assert all(m.latency_ms == 0 for _, m in reference if isinstance(m, AffectFrame))  # no wall clock in it
    rng = random.Random(7)
    for _ in range(3):  # other arrival orders within each watermark step, coarser steps
        steps = sorted(rng.sample(fine[:-1], 9)) + [END]
        shuffled, lo = [], 0
        for wm in steps:  # the order within one step is arbitrary; across steps the watermark rules
            block = [x for x in inputs if lo <= x[0] < wm]
            rng.shuffle(block)
            shuffled += block
            lo = wm
        assert summary(run_in_order(model, shuffled, steps)) == summary(reference)


def test_an_utterance_the_watermark_has_passed_goes_out_with_what_came(model):
    speech = Speech(t_frame(3), t_frame(30))
    inputs = [(event_time(m), topic, m) for _, topic, m in speech.messages() if topic != "text.affect"]
    out = run_in_order(model, sorted(inputs, key=lambda x: x[0]), [t_frame(31)])
    (utt,) = [m for _, m in out if isinstance(m, AffectUtterance) and m.stage == "final"]
    assert "text" in utt.missing  # no timeout waited: the watermark says nothing more will come


# ---------------------------------------------------------------- steps at the end of their input


def test_the_vad_holds_back_what_it_has_not_classified_and_closes_at_the_end():
    step = VadStep(WebrtcClassifier(2), SegmenterSettings(pre_roll=3200, hangover=6400, min_speech=1600,
                                                          max_utterance=10 * SR, split_pause=3200, hard_max=30 * SR),
                   piece_samples=SR // 5)
    assert step.holdback() is None
    t = np.arange(SR) / SR
    tone = (np.sin(2 * np.pi * 200 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * 12000).astype(np.int16)
    out = []
    for k in range(0, SR, 320):
        out += step.process("audio.chunk", AudioChunk(chunk_index=k // 320, sample_rate=SR, samples=tone[k:k + 320],
                                                      t_capture=NS + k * NS // SR))
    assert step.holdback() <= 2 * NS and step.holdback() >= 2 * NS - 30 * MS  # classified up to its last frame
    ends = [m for _, m in step.advance(END) if getattr(m, "kind", "") == "end"]
    assert len(ends) == 1 and ends[0].reason == "stream_end"
    assert step.advance(5 * NS) == []


def test_voice_gives_up_on_a_transcript_once_the_watermark_has_passed_the_utterance():
    step = VoiceStep(wait_transcript_s=3600)  # a wall-clock wait that never runs out in this test
    speech = Speech(NS, 2 * NS)
    for _, topic, msg in speech.messages():
        if topic == "speech.audio":
            assert list(step.process(topic, msg)) == []
    assert list(step.advance(2 * NS)) == []  # the transcript may still come
    (out,) = list(step.advance(2 * NS + 1))
    assert out[0] == "voice.affect" and out[1].features.speaking_rate_source == "energy-peaks"


# ---------------------------------------------------------------- the wire


def test_buffers_that_numpy_does_not_own_are_copied_before_zeromq_gets_them():
    import av

    frame = av.VideoFrame.from_ndarray(np.full((8, 8, 3), 7, np.uint8), format="bgr24")
    pixels = frame.to_ndarray(format="bgr24")  # a view of PyAV's buffer, which PyAV may reuse or free
    assert owned(pixels) is not pixels and np.array_equal(owned(pixels), pixels)
    mine = np.zeros((4, 4), np.uint8)
    assert owned(mine) is mine and owned(mine[1:]) is not None and owned(mine[1:]).base is mine
    msg = video(1)
    msg.image = pixels
    frames = encode("video.frame", msg)
    pixels[:] = 0  # what PyAV would do to its buffer: the frames already sent keep their bytes
    assert decode(frames)[1].image.max() == 7


@pytest.mark.parametrize("pace", ["fast", "turbo"])
def test_fast_pace_is_gone_in_favour_of_lossless(pace):
    from moodwire.pipeline.core.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="lossless"):
        load_config(None, [f"sources.pace={pace}"])
