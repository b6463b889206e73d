"""``moodwire analyze`` through the real processes in lossless mode, and ``run --source`` at a file's edges.

The clips: one spoken sentence (espeak-ng) that starts 0.1 s into the file and ends 0.15 s before its
end, muxed under the real carphone face (tools/media/speech_clip.py), 640x480 at 30 fps; the same
speech as a WAV alone; a video without audio; and bytes that are no media. espeak-ng and drawn or
re-used footage prove the plumbing (every frame, every utterance, identical tables), not quality.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.sources.spoken import espeak_available, joined_script, speak, write_wav

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not espeak_available(), reason="espeak-ng makes the speech: apt-get install espeak-ng")]

SENTENCE = "Please bring the blue folder to my office."
LEAD_S, TAIL_S = 0.1, 0.15


@pytest.fixture(scope="module")
def clips(tmp_path_factory, session_cache) -> dict[str, Path]:
    from moodwire.tools.media.speech_clip import mux_face_video

    folder = tmp_path_factory.mktemp("recordings")
    script = joined_script([(speak(SENTENCE), SENTENCE)], gap_s=TAIL_S, lead_s=LEAD_S)
    env_cache = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(session_cache)  # the face footage is derived into the session cache
    try:
        mux_face_video(folder / "edges.mkv", script.samples)
    finally:
        if env_cache is None:
            os.environ.pop("XDG_CACHE_HOME")
        else:
            os.environ["XDG_CACHE_HOME"] = env_cache
    write_wav(folder / "speech_only.wav", script.samples)
    write_vfr(folder / "vfr.mkv")
    (folder / "broken.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())
    return {"edges": folder / "edges.mkv", "wav": folder / "speech_only.wav", "broken": folder / "broken.mp4",
            "folder": folder, "speech_end_s": script.spans[0].end_s, "duration_s": script.samples.size / 16000}


VFR_TIMES_MS = [0, 33, 100, 133, 250, 283, 300, 400, 433, 600]  # a variable frame rate: gaps from 17 to 167 ms


def write_vfr(path: Path) -> None:
    """A video whose frames come at ``VFR_TIMES_MS`` (a phone's variable frame rate), no audio."""
    import av
    from fractions import Fraction

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(VFR_TIMES_MS):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 20 * k, np.uint8), format="bgr24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))


def analyze(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "moodwire.pipeline.runtime.cli", "analyze", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def decoded_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_batch_gives_every_frame_and_utterance_and_reports_a_bad_file(clips, clip_video_only, isolated_env,
                                                                        tmp_path):
    import shutil

    import pandas as pd

    shutil.copy(clip_video_only, clips["folder"] / "silent_video.mp4")
    out = tmp_path / "tables"
    done = analyze([str(clips["folder"]), "--out", str(out), "--format", "csv", "--quiet"], isolated_env)
    assert done.returncode == 1, done.stderr  # one file failed; the others went on
    assert "broken.mp4: failed: cannot decode media file" in done.stderr
    batch = {Path(r["path"]).name: r for r in json.loads((out / "batch.json").read_text())}
    assert batch["broken.mp4"]["status"] == "failed" and set(batch) == {"broken.mp4", "edges.mkv", "vfr.mkv",
                                                                          "silent_video.mp4", "speech_only.wav"}
    assert not list(out.glob("*.partial"))

    edges = out / "edges"
    frames, utterances, words = (pd.read_csv(edges / f"{n}.csv") for n in ("frames", "utterances", "words"))
    n = decoded_frames(clips["edges"])
    assert sorted(frames["frame_index"].unique()) == list(range(n))  # every frame, the first and last included
    assert np.allclose(frames.drop_duplicates("frame_index")["time_s"], np.arange(n) / 30, atol=1e-3)
    assert frames["track_id"].notna().mean() > 0.9 and {"expr_happy", "bs_jawOpen", "head_yaw"} <= set(frames)
    assert len(utterances) == 1, utterances  # speech from 0.1 s to 0.15 s before the end: whole
    utt = utterances.iloc[0]
    assert utt["start_s"] < 0.3 and utt["end_s"] > clips["speech_end_s"] - 0.1
    assert utt["start_s"] < utt["speech_end_s"] <= utt["end_s"]  # the last audio judged speech, before the VAD's end
    assert utt["speech_end_s"] > clips["speech_end_s"] - 0.5  # espeak's quiet last phoneme may not count as speech
    assert "folder" in str(utt["text"]).lower() and utt["label"] and utt["voice_weight"] > 0
    assert len(words) >= 5 and (words["start_s"] >= utt["start_s"] - 0.05).all()
    summary = json.loads((edges / "summary.json").read_text())
    assert summary["frames_in_file"] == summary["frames_analysed"] == n and summary["utterances"] == 1
    assert summary["speed_x"] > 0 and {m["slot"] for m in summary["models"]} >= {"face-landmarker", "face-expression", "asr-tiny-en"}
    assert (edges / "report.png").stat().st_size > 10_000

    wav = pd.read_csv(out / "speech_only" / "utterances.csv")
    assert len(wav) == 1 and json.loads((out / "speech_only" / "summary.json").read_text())["frames_in_file"] == 0
    silent = pd.read_csv(out / "silent_video" / "frames.csv")
    assert silent["frame_index"].nunique() == decoded_frames(clip_video_only)
    assert len(pd.read_csv(out / "silent_video" / "utterances.csv")) == 0

    vfr = pd.read_csv(out / "vfr" / "frames.csv")  # every frame once, at its own time
    assert list(vfr["frame_index"]) == list(range(len(VFR_TIMES_MS)))
    assert np.allclose(vfr["time_s"] - vfr["time_s"][0], np.array(VFR_TIMES_MS) / 1000, atol=1e-3)

    again = analyze([str(clips["folder"]), "--out", str(out), "--format", "csv", "--quiet"], isolated_env)
    assert again.stderr.count(": up to date:") == 4, again.stderr  # the same files, config and models: resumed


def test_the_same_file_twice_gives_identical_tables_from_the_python_call(clips, isolated_env, tmp_path):
    script = (
        "import sys, moodwire\n"
        "for out in sys.argv[2:]:\n"
        "    t = moodwire.analyze(sys.argv[1], out=out, format='csv')\n"
        "    print(len(t['frames']), len(t['utterances']), t['summary']['frames_analysed'])\n")
    first, second = tmp_path / "one", tmp_path / "two"
    done = subprocess.run([sys.executable, "-c", script, str(clips["edges"]), str(first), str(second)],
                          env=isolated_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split("\n")
    assert lines[0] == lines[1] and lines[0].split()[1] == "1"
    for name in ("frames", "utterances", "words"):
        assert (first / "edges" / f"{name}.csv").read_bytes() == (second / "edges" / f"{name}.csv").read_bytes(), name


def test_an_output_folder_that_cannot_be_written_is_refused_before_anything_runs(clips, isolated_env, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    done = analyze([str(clips["wav"]), "--out", str(blocker / "tables")], isolated_env, timeout=60)
    assert done.returncode == 2 and "cannot write to the output folder" in done.stderr


def test_run_on_a_file_in_real_time_loses_neither_its_first_frame_nor_its_last_utterance(clips, isolated_env):
    endpoint = "tcp://127.0.0.1:5591"
    sub = Subscriber(endpoint, ["video.frame", "audio.chunk", "affect.utterance"], queue_everything=True,
                     hwm=100_000)
    proc = subprocess.Popen([sys.executable, "-m", "moodwire.pipeline.runtime.cli", "run", "--quiet", "--source",
                             str(clips["edges"]), "--set", f"bus.public={endpoint}"], env=isolated_env,
                            stderr=subprocess.PIPE, text=True)
    first: dict[str, int] = {}
    utterances = []
    deadline = time.monotonic() + 180
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            got = sub.recv(timeout=0.5)
            if got is None:
                continue
            if got.topic == "affect.utterance":
                utterances.append(got.msg)
            else:
                first.setdefault(got.topic, getattr(got.msg, "frame_index", getattr(got.msg, "chunk_index", -1)))
        rc = proc.wait(timeout=30)
        while (got := sub.recv(timeout=0.5)) is not None:
            if got.topic == "affect.utterance":
                utterances.append(got.msg)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        sub.close()
    assert rc == 0, proc.stderr.read()[-3000:]
    assert first == {"video.frame": 0, "audio.chunk": 0}  # the timeline started once every node was ready
    finals = [u for u in utterances if u.stage == "final"]
    assert len(finals) == 1 and "folder" in finals[0].text.lower()  # the end waited for it
    assert [u.stage for u in utterances] in (["acoustic", "final"], ["final"])  # its first record, if any, first


def test_a_node_in_a_crash_loop_ends_a_run_on_a_file_with_an_error(clips, start_pipeline):
    pipeline = start_pipeline("--source", str(clips["edges"]), "--set", "sources.loop=true",
                              "--set", "manager.restart_backoff_s=0.2")
    health = pipeline.wait_healthy(timeout=120)
    killed: set[int] = set()
    deadline = time.monotonic() + 120
    while pipeline.proc.poll() is None and time.monotonic() < deadline:
        text = next(n for n in health.nodes if n.name == "text")
        if text.alive and text.pid not in killed:  # each new text process is killed once it is up
            os.kill(text.pid, signal.SIGKILL)
            killed.add(text.pid)
        got = pipeline.sub.recv(timeout=1.0)
        health = got.msg if got is not None else health
    assert pipeline.proc.wait(timeout=60) == 1
    assert len(killed) == 3 and "node text crashed 3 times" in pipeline.output()
