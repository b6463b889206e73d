"""From a model slot to a ready engine: resolve the file, check its export is ready, load a backend."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from moodwire.engines.derived import derived_ready, not_exported
from moodwire.engines.engine import Engine, EngineError
from moodwire.engines.registry import resolve

NATIVE_TENSORRT = "tensorrt-native"


def load_engine(path: Path, engine: str = "auto", threads: int = 1,
                profile: Mapping[str, tuple[int, int, int]] | None = None) -> Engine:
    """An engine for an ONNX file. ``engine``: auto (ONNX Runtime TensorRT > CUDA > CPU provider), cpu, cuda,
    tensorrt (ONNX Runtime's TensorRT provider) or tensorrt-native (engines/tensorrt_backend.py; ``profile``
    gives its dynamic axes' min/opt/max). Where tensorrt-native cannot run, ONNX Runtime CUDA > CPU runs
    instead and ``backend`` says why."""
    from moodwire.engines.onnxruntime_backend import ENGINE_PROVIDERS, OrtEngine

    if engine == NATIVE_TENSORRT:
        from moodwire.engines.tensorrt_backend import TensorRTEngine
        from moodwire.pipeline.core.paths import cache_dir

        try:
            return TensorRTEngine(path, cache_dir() / "tensorrt", profile)
        except EngineError as exc:
            fallback = OrtEngine(path, ENGINE_PROVIDERS["cuda"], threads)
            fallback.backend += f" ({NATIVE_TENSORRT} unavailable: {exc})"
            return fallback
    if engine not in ENGINE_PROVIDERS:
        names = ", ".join((*ENGINE_PROVIDERS, NATIVE_TENSORRT))
        raise EngineError(f"engine {engine!r} is not known; use one of {names}")
    return OrtEngine(path, ENGINE_PROVIDERS[engine], threads)


def exported(name: str, override: str = "") -> Path:
    """The ONNX file made from the slot's checked source; ModelMissing with the command that makes it when
    the cache lacks it or it no longer matches the checksum its sidecar recorded (engines/derived.py)."""
    model = resolve(name, override)
    onnx_path = model.derived_path(model.slot.derived[0])
    if not derived_ready(model):
        raise not_exported(name, onnx_path)
    return onnx_path
