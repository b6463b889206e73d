"""From a model slot to a ready engine: resolve the file, export it if needed, load a backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping

from engines.engine import Engine, EngineError
from engines.registry import resolve, sha256_of

Progress = Callable[[str], None]


NATIVE_TENSORRT = "tensorrt-native"


def load_engine(path: Path, engine: str = "auto", threads: int = 1,
                profile: Mapping[str, tuple[int, int, int]] | None = None) -> Engine:
    """An engine for an ONNX file. ``engine``: auto (ONNX Runtime TensorRT > CUDA > CPU provider), cpu, cuda,
    tensorrt (ONNX Runtime's TensorRT provider) or tensorrt-native (engines/tensorrt_backend.py; ``profile``
    gives its dynamic axes' min/opt/max). Where tensorrt-native cannot run, ONNX Runtime CUDA > CPU runs
    instead and ``backend`` says why."""
    from engines.onnxruntime_backend import ENGINE_PROVIDERS, OrtEngine

    if engine == NATIVE_TENSORRT:
        from engines.tensorrt_backend import TensorRTEngine
        from pipeline.paths import cache_dir

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


def exported(name: str, override: str = "", progress: Progress = print) -> Path:
    """The ONNX file made from the slot's checked source, exporting it first when the cache lacks it
    or the cached file no longer matches the checksum its sidecar recorded."""
    model = resolve(name, override)
    onnx_name, sidecar_name = model.slot.derived
    onnx_path, sidecar_path = model.derived_path(onnx_name), model.derived_path(sidecar_name)
    if not (model.exported and _matches_sidecar(onnx_path, sidecar_path)):
        if model.exported:
            progress(f"{onnx_path} does not match its recorded checksum: exporting it again")
        from exporters.slots import export_slot
        from pipeline.progress import Progress

        with Progress(progress).step(f"export {name}") as step:  # a node's log shows it is alive meanwhile
            export_slot(model, step)
    return onnx_path


def _matches_sidecar(onnx_path: Path, sidecar_path: Path) -> bool:
    try:
        recorded = json.loads(sidecar_path.read_text())["onnx_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return recorded == sha256_of(onnx_path)
