"""ONNX -> fp16 TensorRT engine, cached per (ONNX content, GPU, TensorRT version).

An engine only runs on the GPU model and TensorRT version that built it, so
all three are in the cache key. tensorrt cannot be installed on the CPU
machines: every path here is guarded and returns None with a reason.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

from moodwire.engines import accelerators
from moodwire.engines.tensorrt_progress import tensorrt_progress_monitor

MIN_BATCH, OPT_BATCH, MAX_BATCH = 1, 1, 8  # opt 1: one face per frame is the usual case
WORKSPACE_BYTES = 1 << 30
# changes to how engines are built must change the key too
BUILD_RECIPE = f"fp16;batch={MIN_BATCH}/{OPT_BATCH}/{MAX_BATCH};workspace={WORKSPACE_BYTES}"


AxisRange = tuple[int, int, int]  # min, opt, max


def build_recipe(profile: Mapping[str, AxisRange] | None = None) -> str:
    """How an engine is built, as text for the cache key. None: the batch profile of BUILD_RECIPE."""
    if profile is None:
        return BUILD_RECIPE
    axes = ",".join(f"{name}={lo}/{opt}/{hi}" for name, (lo, opt, hi) in sorted(profile.items()))
    return f"fp16;axes={axes};workspace={WORKSPACE_BYTES}"


def engine_cache_key(onnx_path: Path, gpu_name: str, trt_version: str, recipe: str = BUILD_RECIPE) -> str:
    """sha256 over the ONNX bytes, the GPU name, the TensorRT version and the build recipe."""
    onnx_digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
    return hashlib.sha256("\0".join((onnx_digest, gpu_name, trt_version, recipe)).encode()).hexdigest()


def engine_path(onnx_path: Path, cache_root: Path, gpu_name: str, trt_version: str,
                profile: Mapping[str, AxisRange] | None = None) -> Path:
    """Where the engine for these inputs is (or will be) cached."""
    key = engine_cache_key(onnx_path, gpu_name, trt_version, build_recipe(profile))
    return Path(cache_root) / f"{key}.engine"


def build_fp16_engine(onnx_path: Path, cache_root: Path, progress: Callable[[str], None] = print,
                      profile: Mapping[str, AxisRange] | None = None, gpu_name: str = "") -> Path | None:
    """The cached or freshly built engine's path; None (said through ``progress``) where TensorRT cannot run.

    ``profile`` maps the ONNX's named dynamic axes to (min, opt, max) sizes; None keeps the batch profile
    (axis 0 of every input, MIN/OPT/MAX_BATCH). ``gpu_name`` is the device the engine is for (default:
    the first GPU nvidia-smi lists).
    """
    trt = _import_tensorrt()
    if trt is None:
        progress("TensorRT engine skipped: the tensorrt package is not installed")
        return None
    gpus = accelerators.nvidia_gpus()
    if not gpus:
        progress("TensorRT engine skipped: no NVIDIA GPU found (nvidia-smi)")
        return None
    gpu_name = gpu_name or gpus[0]
    path = engine_path(onnx_path, cache_root, gpu_name, trt.__version__, profile)
    if path.is_file():
        progress(f"reusing cached TensorRT engine {path}")
        return path
    progress(f"building fp16 TensorRT {trt.__version__} engine for {gpu_name} from {Path(onnx_path).name}…")
    _write_atomic(path, _build(trt, Path(onnx_path), profile, progress))
    progress(f"wrote {path}")
    return path


def _import_tensorrt() -> ModuleType | None:
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        return None


def _build(trt: ModuleType, onnx_path: Path, profile: Mapping[str, AxisRange] | None = None,
           progress: Callable[[str], None] = lambda line: None) -> bytes:
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
    if profile is None:
        config.add_optimization_profile(_batch_profile(builder, network))
    else:
        config.add_optimization_profile(_named_profile(builder, network, onnx_path, profile))
    monitor = tensorrt_progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor  # fraction and phase on the export's progress line
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


def _named_profile(builder, network, onnx_path: Path, profile: Mapping[str, AxisRange]):
    """Each input's dynamic axes take the (min, opt, max) that ``profile`` gives their ONNX name."""
    names = input_dim_names(onnx_path)
    trt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = names.get(tensor.name, [])
        shapes: list[list[int]] = [[], [], []]
        for axis, size in enumerate(tuple(tensor.shape)):
            if size >= 0:
                for shape in shapes:
                    shape.append(size)
                continue
            name = dims[axis] if axis < len(dims) else ""
            if name not in profile:
                raise RuntimeError(f"{onnx_path}: input {tensor.name} axis {axis} ({name or 'unnamed'}) is dynamic "
                                   f"but the profile gives sizes only for {sorted(profile)}")
            for shape, size_ in zip(shapes, profile[name]):
                shape.append(int(size_))
        trt_profile.set_shape(tensor.name, *(tuple(shape) for shape in shapes))
    return trt_profile


def input_dim_names(onnx_path: Path) -> dict[str, list[str | int]]:
    """Each graph input's axes: the symbolic name of a dynamic axis, the size of a fixed one.
    Reads the ONNX with onnx where installed (export extra), else with onnxruntime."""
    try:
        import onnx
    except ImportError:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return {meta.name: list(meta.shape) for meta in session.get_inputs()}
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return {value.name: [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in graph.input if value.name not in initializers}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
