"""What inference hardware and runtimes this machine has, without importing them eagerly."""

from __future__ import annotations

import importlib
import shutil
import subprocess


def onnxruntime_providers() -> list[str] | None:
    """ONNX Runtime's execution providers in its order of preference, or None if not installed."""
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return None
    return list(ort.get_available_providers())


def tensorrt_version() -> str | None:
    try:
        return importlib.import_module("tensorrt").__version__
    except ImportError:
        return None


def nvidia_gpus() -> list[str]:
    """GPU names from nvidia-smi; empty where there is no NVIDIA driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]
