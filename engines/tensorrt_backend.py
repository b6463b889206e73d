"""Native TensorRT backend: an fp16 engine built from ONNX, cached, run with the TensorRT 10 tensor API.

The engine is built once per (ONNX content, GPU, TensorRT version, build
recipe incl. the dynamic-axis profile) by engines/tensorrt_build.py and
reloaded from its cache afterwards. Buffers are torch CUDA tensors, so no
package beyond tensorrt and torch is needed. tensorrt and torch are imported
only when an engine is constructed; without them, or without a CUDA GPU,
construction raises EngineError saying which is missing.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import numpy as np

from moodwire.engines.engine import EngineError, Stopwatch
from moodwire.pipeline.core.progress import Progress

AxisRange = tuple[int, int, int]
DEFAULT_AXIS_RANGE: AxisRange = (1, 4, 16)  # min, opt, max for a dynamic axis the profile does not name


class TensorRTEngine:
    """One deserialized TensorRT engine and its execution context, with the engine interface.

    ``profile`` maps named dynamic ONNX axes to (min, opt, max); dynamic axes it does not name get
    DEFAULT_AXIS_RANGE. ``from_cache`` says whether the engine was reloaded rather than built.
    """

    def __init__(self, onnx_path: Path, cache_dir: Path, profile: Mapping[str, AxisRange] | None = None,
                 progress=lambda line: None) -> None:
        self.onnx_path = Path(onnx_path)
        if not self.onnx_path.is_file():
            raise EngineError(f"cannot load ONNX model {self.onnx_path}: no such file")
        trt, torch = _import_runtimes()
        self._torch = torch
        self.device = torch.device("cuda", torch.cuda.current_device())
        gpu = torch.cuda.get_device_name(self.device)
        self.profile = _full_profile(self.onnx_path, profile or {})
        from moodwire.engines.tensorrt_build import build_fp16_engine, engine_path

        path = engine_path(self.onnx_path, Path(cache_dir), gpu, trt.__version__, self.profile)
        self.from_cache = path.is_file()
        self.engine_path = path
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # must outlive the engine
        self._engine = None
        try:
            if self.from_cache:
                self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
                if self._engine is None:  # damaged, or made by another build: rebuild over it
                    progress(f"cached TensorRT engine {path} cannot be loaded: building it again")
                    path.unlink(missing_ok=True)
                    self.from_cache = False
            if self._engine is None:
                with Progress(progress).step("TensorRT engine") as step:  # a build takes minutes
                    built = build_fp16_engine(self.onnx_path, Path(cache_dir), step, self.profile, gpu)
                if built is None:
                    raise EngineError(step.last_line or "TensorRT engine build skipped")
                self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        except RuntimeError as exc:
            if isinstance(exc, EngineError):
                raise
            raise EngineError(f"cannot build a TensorRT engine from {self.onnx_path}: {exc}") from exc
        if self._engine is None:
            raise EngineError(f"TensorRT cannot load the engine it built from {self.onnx_path} ({path})")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = [n for n in names if is_input[n]]
        self.output_names = [n for n in names if not is_input[n]]
        self._dtypes = {n: _torch_dtype(trt, torch, self._engine.get_tensor_dtype(n)) for n in names}
        self._stream = torch.cuda.Stream(self.device)  # TensorRT syncs extra on the default stream
        self.backend = f"tensorrt-native:{trt.__version__}:fp16"
        self._watch = Stopwatch()

    @property
    def last_run_ms(self) -> float:
        return self._watch.last_ms

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in the engine's output order (the ONNX's), as host float arrays."""
        torch = self._torch
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise EngineError(f"{self.onnx_path.name}: missing input(s) {missing}; it takes {self.input_names}")
        with self._watch, torch.cuda.stream(self._stream):
            keep: list[Any] = []  # device buffers must outlive the launch
            for name in self.input_names:
                host = np.ascontiguousarray(inputs[name])
                if not host.flags.writeable:  # torch.from_numpy wants a writeable array
                    host = host.copy()
                tensor = torch.from_numpy(host).to(self.device, self._dtypes[name])
                if not self._context.set_input_shape(name, tuple(tensor.shape)):
                    raise EngineError(f"{self.onnx_path.name}: input {name} shape {tuple(tensor.shape)} is outside "
                                      f"the engine's profile {self.profile}")
                self._context.set_tensor_address(name, tensor.data_ptr())
                keep.append(tensor)
            outputs = []
            for name in self.output_names:
                shape = tuple(self._context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                self._context.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise EngineError(f"{self.onnx_path.name}: TensorRT execution failed (see its log)")
            result = [out.cpu().numpy() for out in outputs]  # .cpu() waits for the stream's work
            self._stream.synchronize()
            return result

    def warm_up(self, runs: int = 3) -> None:
        """Run zeros at the profile's opt shapes, so the first real call pays no allocation."""
        feeds = {}
        for name in self.input_names:
            _, opt, _ = self._engine.get_tensor_profile_shape(name, 0)
            feeds[name] = self._torch.zeros(tuple(opt), dtype=self._dtypes[name]).numpy()
        for _ in range(runs):
            self.run(feeds)


def _import_runtimes() -> tuple[ModuleType, ModuleType]:
    """tensorrt and torch with a CUDA device, or EngineError with the reason."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise EngineError(f"the native TensorRT backend needs the tensorrt package, which is not installed "
                          f"({exc}); use engine 'tensorrt' (ONNX Runtime) or 'cpu'") from None
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise EngineError("the native TensorRT backend keeps its buffers in torch CUDA tensors: install torch "
                          "with CUDA (the export extra)") from None
    if not torch.cuda.is_available():
        raise EngineError("the native TensorRT backend needs a CUDA GPU; torch finds none "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda})")
    return trt, torch


def _full_profile(onnx_path: Path, profile: Mapping[str, AxisRange]) -> dict[str, AxisRange]:
    """``profile`` plus DEFAULT_AXIS_RANGE for every other named dynamic axis of the inputs; checks the ranges."""
    from moodwire.engines.tensorrt_build import input_dim_names

    full = {name: tuple(int(v) for v in sizes) for name, sizes in profile.items()}
    for dims in input_dim_names(onnx_path).values():
        for d in dims:
            if isinstance(d, str) and d:
                full.setdefault(d, DEFAULT_AXIS_RANGE)
    for name, sizes in full.items():
        if len(sizes) != 3 or not 1 <= sizes[0] <= sizes[1] <= sizes[2]:
            raise EngineError(f"profile for axis {name!r} must be (min, opt, max) with 1 <= min <= opt <= max, "
                              f"got {sizes}")
    return full  # type: ignore[return-value]


def _torch_dtype(trt: ModuleType, torch: ModuleType, dtype: Any):
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
             trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool}
    if hasattr(trt.DataType, "INT64"):
        table[trt.DataType.INT64] = torch.int64
    if dtype not in table:
        raise EngineError(f"TensorRT tensor type {dtype} is not supported by this backend")
    return table[dtype]
