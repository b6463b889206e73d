"""The moodwire command as a user runs it: run, listen, record, replay, doctor, config errors."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import msgpack
import numpy as np
import pytest
import zmq

from moodwire.pipeline.core.bus import Publisher, Subscriber
from moodwire.pipeline.core.messages import AudioChunk
from tests import raw_client
from tests.conftest import MOODWIRE, SYNTHETIC, free_port

pytestmark = pytest.mark.slow


def moodwire(*args, env=None, timeout=60):
    return subprocess.run([*MOODWIRE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def rate_and_seqs(messages, topic="video.frame"):
    mine = [m for m in messages if m["topic"] == topic]
    span = (mine[-1]["t_capture"] - mine[0]["t_capture"]) / 1e9
    arrival = (mine[-1]["t_receive"] - mine[0]["t_receive"]) / 1e9
    return (len(mine) - 1) / arrival, (len(mine) - 1) / span, [m["seq"] for m in mine]


def test_run_on_a_clip_serves_listen_and_a_raw_client_at_the_clip_rate(start_pipeline, clip_with_audio):
    pipeline = start_pipeline("--source", str(clip_with_audio), "--duration", "8")
    pipeline.wait_healthy()
    listen = subprocess.Popen([*MOODWIRE, "listen", "video.", "--json", "--duration", "4",
                               "--endpoint", pipeline.endpoint], stdout=subprocess.PIPE, text=True)
    raw = raw_client.receive(pipeline.endpoint, "video.", count=1000, timeout_s=3.0)
    out, _ = listen.communicate(timeout=20)
    assert pipeline.proc.wait(20) == 0

    listened = [json.loads(line) for line in out.splitlines()]
    assert {m["topic"] for m in listened} == {"video.frame"}
    arrival_rate, capture_rate, seqs = rate_and_seqs(listened)
    assert capture_rate == pytest.approx(25.0, rel=0.02)  # the clip is 25 fps, stamped on its own timeline
    assert arrival_rate > 0  # how evenly they arrive on a busy machine is the bus benchmark's figure
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert listened[0]["image"] == {"dtype": "|u1", "shape": [480, 640, 3]}

    frames = [{"topic": m["topic"], **m["header"], "t_receive": m["t_receive"]} for m in raw]
    arrival_rate, _, seqs = rate_and_seqs(frames)
    assert arrival_rate > 0
    assert all(b > a for a, b in zip(seqs, seqs[1:]))
    assert frames[0]["image"].shape == (480, 640, 3) and frames[0]["image"].dtype == np.uint8


def test_listen_decodes_every_topic_and_survives_malformed_messages(endpoint):
    pub = Publisher(endpoint, "test", bind=True)
    listen = subprocess.Popen([*MOODWIRE, "listen", "--json", "--count", "3", "--endpoint", endpoint],
                              stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while listen.poll() is None and time.monotonic() < deadline:
            pub.send_raw([b"audio.chunk", b"\xc1"])
            pub.send("audio.chunk", AudioChunk(chunk_index=1, sample_rate=16000, samples=np.arange(4, dtype=np.int16)))
            time.sleep(0.2)
        out, _ = listen.communicate(timeout=10)
    finally:
        pub.close()
    lines = [json.loads(line) for line in out.splitlines()]
    assert any("not valid msgpack" in m.get("error", "") for m in lines)
    good = [m for m in lines if "error" not in m]
    assert good and good[0]["samples"] == [0, 1, 2, 3] and good[0]["source"] == "test"


def test_listen_json_lists_small_arrays_values_and_summarises_large_ones():
    """A face's 7 expression probabilities and 52 blendshapes are readable from the command line;
    its landmarks and crop (and frames, audio) stay dtype and shape."""
    from moodwire.pipeline.core.messages import FaceTrack, FaceTracks, HeadPose
    from moodwire.pipeline.core.wire import encode
    from moodwire.pipeline.runtime.cli import LISTED_ARRAY_MAX, format_message

    expression = np.array([0.1, 0.0, 0.05, 0.7, 0.05, 0.1, np.nan], np.float32)
    face = FaceTrack(track_id=3, box=[1.0, 2.0, 3.0, 4.0], landmarks=np.ones((478, 3), np.float32),
                     blendshapes=np.linspace(0, 1, 52, dtype=np.float32), head_pose=HeadPose(yaw=1.5, pitch=0, roll=0),
                     crop=np.zeros((64, 64), np.uint8), expression=expression, valence=0.2, arousal=0.1)
    msg = FaceTracks(frame_index=9, width=640, height=480, faces=[face], t_capture=5)
    line = json.loads(format_message(encode("face.tracks", msg), 7, as_json=True))
    [got] = line["faces"]
    assert got["expression"] == [0.1, 0.0, 0.05, 0.7, 0.05, 0.1, None]  # float32 shown to 6 decimals, NaN as null
    assert len(got["blendshapes"]) == 52 <= LISTED_ARRAY_MAX and got["blendshapes"][-1] == 1.0
    assert got["head_pose"] == {"yaw": 1.5, "pitch": 0, "roll": 0}
    assert got["landmarks"] == {"dtype": "<f4", "shape": [478, 3]}
    assert got["crop"] == {"dtype": "|u1", "shape": [64, 64]}


def test_record_then_replay_keeps_messages_and_timing(start_pipeline, tmp_path):
    pipeline = start_pipeline(*SYNTHETIC)
    pipeline.wait_healthy()
    rec = tmp_path / "run.mwrec"
    result = moodwire("record", str(rec), "--topics", "audio.", "video.", "--duration", "2",
                      "--endpoint", pipeline.endpoint)
    assert result.returncode == 0, result.stderr
    pipeline.stop()

    from moodwire.pipeline.runtime.recording import read_records
    records = list(read_records(rec))
    audio = [r for r in records if r.topic == "audio.chunk"]
    assert 80 <= len(audio) <= 110 and any(r.topic == "video.frame" for r in records)
    span = (records[-1].t_receive - records[0].t_receive) / 1e9

    port = free_port()
    replay_ep = f"tcp://127.0.0.1:{port}"
    with Subscriber(replay_ep, ["audio."]) as sub:
        started = time.monotonic()
        replay = subprocess.Popen([*MOODWIRE, "replay", str(rec), "--endpoint", replay_ep, "--wait", "1.0"],
                                  stderr=subprocess.PIPE, text=True)
        got = []
        while (item := sub.recv(3.0)) is not None:
            got.append(item)
        assert replay.wait(20) == 0
    elapsed = time.monotonic() - started - 1.0
    assert [g.msg.chunk_index for g in got] == [msgpack.unpackb(r.frames[1])["chunk_index"] for r in audio]
    assert span * 0.8 <= elapsed <= span + 4.0  # original spacing, not a burst
    shifted = got[0].msg.t_capture
    assert abs(shifted - got[0].t_receive) < 0.5e9  # restamped to now by default


def test_replay_of_a_damaged_recording_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.mwrec"
    bad.write_bytes(b"not a recording")
    result = moodwire("replay", str(bad), "--endpoint", f"tcp://127.0.0.1:{free_port()}", "--wait", "0")
    assert result.returncode == 2 and "is not a moodwire recording" in result.stderr


def test_doctor_lists_every_part_with_fixes():
    result = moodwire("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("python", "zeromq", "opencv", "camera", "microphone", "gpu", "onnxruntime", "tensorrt", "models"):
        assert f" {name} " in result.stdout
    assert "opencv-contrib-python 5.0.0.93" in result.stdout  # exactly one OpenCV
    assert "fix:" in result.stdout  # no camera here: the line says what happens


@pytest.mark.parametrize("args, message", [
    (["--set", "sources.video=camera"], "sources.video = 'camera' is not allowed; allowed values: webcam, file"),
    (["--set", "sources.colour=1"], "unknown key 'sources.colour'; allowed keys in sources:"),
    (["--set", "manager.grace_s=-1"], "manager.grace_s = -1.0 is out of range"),
    (["--config", "/no/such.toml"], "config file /no/such.toml does not exist"),
    (["--source", "/no/such.mp4"], "media file /no/such.mp4 does not exist"),
])
def test_bad_config_and_sources_are_rejected_with_the_key_and_the_fix(args, message):
    result = moodwire("run", *args, "--duration", "1")
    assert result.returncode == 2
    assert message in result.stderr


def test_bad_toml_file_names_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[sources]\nvideo = \n")
    result = moodwire("run", "--config", str(bad))
    assert result.returncode == 2 and "is not valid TOML" in result.stderr


def test_busy_public_endpoint_is_reported(endpoint):
    ctx = zmq.Context.instance()
    holder = ctx.socket(zmq.PUB)
    holder.bind(endpoint)
    try:
        result = moodwire("run", *SYNTHETIC, "--set", f"bus.public={endpoint}", "--duration", "1")
    finally:
        holder.close(0)
    assert result.returncode == 2 and "is in use" in result.stderr and "bus.public" in result.stderr


@pytest.mark.parametrize("command", [["run"], ["listen"], ["view", "--out", "x.mp4"], ["record", "x.mwrec"]])
@pytest.mark.parametrize("duration", ["0", "-1", "nan"])
def test_a_duration_that_is_not_positive_is_refused_in_one_line(command, duration):
    result = moodwire(*command, "--duration", duration)
    assert result.returncode == 2 and "is not a positive number of seconds" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 8  # argparse: usage, then the line


def test_ctrl_c_while_the_pipeline_starts_stops_it_quietly():
    for delay in (0.6, 1.5):
        proc = subprocess.Popen([*MOODWIRE, "run", *SYNTHETIC, "--quiet"], stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        assert "did not hear" not in stderr and "not listening" not in stderr, stderr  # it was stopped, not deaf


def test_models_json_piped_into_head_is_quiet():
    result = subprocess.run(f"{' '.join(MOODWIRE)} models --json | head -c 10", shell=True, capture_output=True,
                            text=True, timeout=120)
    assert result.stderr == "" and len(result.stdout) == 10


def test_doctor_says_how_to_free_a_port_in_use(endpoint):
    holder = zmq.Context.instance().socket(zmq.PUB)
    holder.bind(endpoint)
    try:
        result = moodwire("doctor", "--set", f"bus.public={endpoint}")
    finally:
        holder.close(0)
    assert f"{endpoint} is in use" in result.stdout
    assert "fix: stop the other moodwire, or set bus.public to a free endpoint, e.g. --set bus.public=" in result.stdout


def test_listen_json_writes_a_measure_that_does_not_exist_as_null():
    import json as json_module

    from moodwire.pipeline.core.messages import VoiceAffect, VoiceFeatures
    from moodwire.pipeline.core.wire import encode
    from moodwire.pipeline.runtime.cli import format_message

    nan = float("nan")
    features = VoiceFeatures(duration_s=0.5, voiced_fraction=0.0, f0_mean_hz=nan, f0_range_st=nan, energy_db=-80.0,
                             energy_range_db=0.0, speaking_rate=nan, speaking_rate_source="energy-peaks",
                             jitter=nan, shimmer=nan, hnr_db=float("-inf"))
    msg = VoiceAffect(utterance_id=1, t_start=1, t_end=2, features=features, arousal=0.0, arousal_rule="r")
    line = format_message([bytes(f) for f in encode("voice.affect", msg)], 3, as_json=True)
    parsed = json_module.loads(line)  # strict JSON: no NaN tokens
    assert parsed["features"]["f0_mean_hz"] is None and parsed["features"]["hnr_db"] is None
    assert parsed["features"]["energy_db"] == -80.0 and "NaN" not in line
