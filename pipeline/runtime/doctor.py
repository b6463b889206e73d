"""``moodwire doctor``: what this machine has, each missing part with a one-line fix."""

from __future__ import annotations

import importlib.metadata
import shutil
import socket
import sys
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlparse

from moodwire.engines.accelerators import nvidia_gpus, onnxruntime_providers, tensorrt_version
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.sources import SourceUnavailable

OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                "opencv-contrib-python-headless")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False  # missing means the pipeline cannot run at all

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "--  ")
        text = f"{mark} {self.name:<14} {self.detail}"
        return text + (f"\n     {'':<14} fix: {self.fix}" if not self.ok and self.fix else "")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, sys.version.split()[0], "use Python 3.11 or newer", required=True)


def check_zmq() -> Check:
    import zmq
    return Check("zeromq", True, f"pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}", required=True)


def check_opencv() -> Check:
    found = [f"{d} {_version(d)}" for d in OPENCV_DISTS if _version(d)]
    if len(found) == 1:
        return Check("opencv", True, found[0])
    if not found:
        return Check("opencv", False, "not installed", "pip install -e '.[video]'")
    return Check("opencv", False, "several OpenCV packages: " + ", ".join(found),
                 "pip uninstall them all, then pip install -e '.[video]'")


def check_pyav() -> Check:
    v = _version("av")
    return Check("pyav", v is not None, f"av {v}" if v else "not installed (media files)",
                 "pip install -e '.[video]'")


def check_camera() -> Check:
    try:
        from moodwire.pipeline.sources.webcam import open_camera
        open_camera(0, 640, 480, 30.0).release()
    except SourceUnavailable as exc:
        return Check("camera", False, str(exc), "moodwire run falls back to the sample clip")
    return Check("camera", True, "camera 0 delivers frames")


def check_microphone() -> Check:
    try:
        from moodwire.pipeline.sources.microphone import check_microphone as probe
        name = probe("")
    except SourceUnavailable as exc:
        return Check("microphone", False, str(exc), "moodwire run falls back to the sample clip")
    return Check("microphone", True, f"default input: {name}")


def check_gpu() -> Check:
    gpus = nvidia_gpus()
    return Check("gpu", bool(gpus), ", ".join(gpus) or "no NVIDIA GPU (nvidia-smi absent or silent)",
                 "optional: everything runs on the CPU")


def check_onnxruntime() -> Check:
    providers = onnxruntime_providers()
    if providers is None:
        return Check("onnxruntime", False, "not installed", "pip install -e '.[cpu]' (or '.[gpu]')")
    return Check("onnxruntime", True, f"{_version('onnxruntime') or _version('onnxruntime-gpu')}: "
                 + ", ".join(providers))


def check_tensorrt() -> Check:
    v = tensorrt_version()
    return Check("tensorrt", v is not None, f"tensorrt {v}" if v else "not installed",
                 "optional, GPU machines only: pip install tensorrt (NVIDIA's index)")


def check_models() -> Check:
    from moodwire.pipeline.runtime.model_report import report_all

    reports = report_all(Config())
    bad = [r for r in reports if not r.ok]
    detail = ", ".join(f"{r.slot} {r.status}" for r in reports)
    return Check("models", not bad, detail, "; ".join(r.fix for r in bad) + " (details: moodwire models)")


def check_profiles(config: Config) -> Check:
    """The model profiles the config switches on: fetched and intact, or the command that fetches them."""
    from moodwire.pipeline.runtime.model_report import report_profiles

    chosen = [r for r in report_profiles(config) if r.selected]
    bad = [r for r in chosen if not r.ok]
    detail = ", ".join(f"{r.profile} {r.status}" for r in chosen) or "none selected (packaged models only)"
    return Check("profiles", not bad, detail, "; ".join(r.fix for r in bad) + " (details: moodwire models)",
                 required=True)  # a run with this config stops until the profile is fetched


def check_espeak() -> Check:
    path = shutil.which("espeak-ng")
    return Check("espeak-ng", path is not None, path or "not installed (the sample clip then has tones, not speech)",
                 "apt-get install espeak-ng")


def check_endpoint(endpoint: str) -> Check:
    problem = endpoint_problem(endpoint)
    return Check("endpoint", problem is None, problem or f"{endpoint} is free", in_use_fix("bus.public"))


def in_use_fix(setting: str) -> str:
    """What to do about an endpoint in use (``doctor`` and ``run`` say the same)."""
    return f"stop the other moodwire, or set {setting} to a free endpoint, e.g. --set {setting}=tcp://127.0.0.1:5570"


def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be bound, or None when it can."""
    url = urlparse(endpoint)
    if url.scheme != "tcp" or url.port is None:
        return None
    host = url.hostname or "127.0.0.1"
    host = "0.0.0.0" if host == "*" else host  # ZeroMQ's "every interface"
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, url.port))
        except socket.gaierror:
            return None  # an interface name (tcp://eth0:5560): ZeroMQ resolves it, and says so if it cannot
        except OSError as exc:
            return f"{endpoint} is in use ({exc.strerror}): is another moodwire running?"
    return None


CHECKS: tuple[Callable[[], Check], ...] = (
    check_python, check_zmq, check_opencv, check_pyav, check_camera, check_microphone,
    check_gpu, check_onnxruntime, check_tensorrt, check_models, check_espeak,
)


def run_doctor(config: Config) -> list[Check]:
    return [check() for check in CHECKS] + [check_profiles(config), check_endpoint(config.bus.public)]
