"""ONNX -> fp16 TensorRT engine, cached per (ONNX content, GPU, TensorRT version).

An engine only runs on the GPU model and TensorRT version that built it, so
all three are in the cache key. tensorrt cannot be installed on the CPU
machines: every path here is guarded and returns None with a reason.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from engines import accelerators

MIN_BATCH, OPT_BATCH, MAX_BATCH = 1, 1, 8  # opt 1: one face per frame is the usual case
WORKSPACE_BYTES = 1 << 30
# changes to how engines are built must change the key too
BUILD_RECIPE = f"fp16;batch={MIN_BATCH}/{OPT_BATCH}/{MAX_BATCH};workspace={WORKSPACE_BYTES}"


def engine_cache_key(onnx_path: Path, gpu_name: str, trt_version: str) -> str:
    """sha256 over the ONNX bytes, the GPU name, the TensorRT version and the build recipe."""
    onnx_digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
    return hashlib.sha256("\0".join((onnx_digest, gpu_name, trt_version, BUILD_RECIPE)).encode()).hexdigest()


def build_fp16_engine(onnx_path: Path, cache_root: Path, progress: Callable[[str], None] = print) -> Path | None:
    """The cached or freshly built engine's path; None (said through ``progress``) where TensorRT cannot run."""
    trt = _import_tensorrt()
    if trt is None:
        progress("TensorRT engine skipped: the tensorrt package is not installed")
        return None
    gpus = accelerators.nvidia_gpus()
    if not gpus:
        progress("TensorRT engine skipped: no NVIDIA GPU found (nvidia-smi)")
        return None
    path = Path(cache_root) / f"{engine_cache_key(onnx_path, gpus[0], trt.__version__)}.engine"
    if path.is_file():
        progress(f"reusing cached TensorRT engine {path}")
        return path
    progress(f"building fp16 TensorRT {trt.__version__} engine for {gpus[0]} from {Path(onnx_path).name}…")
    _write_atomic(path, _build(trt, Path(onnx_path)))
    progress(f"wrote {path}")
    return path


def _import_tensorrt() -> ModuleType | None:
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        return None


def _build(trt: ModuleType, onnx_path: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.add_optimization_profile(_batch_profile(builder, network))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    return bytes(serialized)


def _network_flags(trt: ModuleType) -> int:
    """Explicit batch: the default from TensorRT 10, a flag before it."""
    if int(trt.__version__.split(".")[0]) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def _batch_profile(builder, network):
    """Batch MIN..MAX on axis 0 of every input; the other axes are fixed by the ONNX."""
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise RuntimeError(f"input {tensor.name} has dynamic axes besides the batch: {tuple(tensor.shape)}")
        profile.set_shape(tensor.name, (MIN_BATCH, *rest), (OPT_BATCH, *rest), (MAX_BATCH, *rest))
    return profile


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
