"""ONNX Runtime backend: TensorRT, then CUDA, then CPU execution providers.

The preference order is DESIGN.md's. Providers this onnxruntime build lacks
are skipped; CPU is always last and always works. ``backend`` says which
provider the session really got, so a silent fallback shows in messages and
in ``moodwire doctor``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from moodwire.engines.engine import EngineError, Stopwatch

PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
SHORT_NAMES = {"tensorrt": PREFERENCE[0], "cuda": PREFERENCE[1], "cpu": PREFERENCE[2]}
# config face.engine -> the providers asked for, best first (CPU is always added last)
ENGINE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "auto": tuple(SHORT_NAMES), "cpu": ("cpu",), "cuda": ("cuda", "cpu"), "tensorrt": ("tensorrt", "cpu"),
}


def choose_providers(available: Sequence[str], wanted: Sequence[str] = ENGINE_PROVIDERS["auto"]) -> list[str]:
    """The wanted providers this build has, in preference order, always ending with CPU."""
    chosen = [SHORT_NAMES[w] for w in wanted if SHORT_NAMES[w] in available]
    if PREFERENCE[-1] not in chosen:
        chosen.append(PREFERENCE[-1])
    return chosen


class OrtEngine:
    """One ONNX Runtime session with the engine interface."""

    def __init__(self, path: Path, wanted: Sequence[str] = ENGINE_PROVIDERS["auto"], threads: int = 1) -> None:
        import onnxruntime as ort

        unknown = [w for w in wanted if w not in SHORT_NAMES]
        if unknown:
            raise EngineError(f"unknown execution provider(s) {unknown}; use any of {list(SHORT_NAMES)}")
        options = ort.SessionOptions()
        # Nodes share two cores with other nodes: a bounded pool avoids oversubscription.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        providers = choose_providers(ort.get_available_providers(), wanted)
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError(f"cannot load ONNX model {path}: {exc}; re-export it with `moodwire export`") from exc
        self.backend = "onnxruntime:" + self._session.get_providers()[0]
        self._watch = Stopwatch()

    @property
    def last_run_ms(self) -> float:
        return self._watch.last_ms

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with self._watch:
            return self._session.run(None, dict(inputs))

    def warm_up(self, runs: int = 3) -> None:
        """Run zeros shaped like the inputs (dynamic axes as 1) so the first real call is not slow."""
        feeds = {}
        for meta in self._session.get_inputs():
            shape = [d if isinstance(d, int) else 1 for d in meta.shape]
            feeds[meta.name] = np.zeros(shape, dtype=_numpy_type(meta.type))
        for _ in range(runs):
            self.run(feeds)


def _numpy_type(onnx_type: str) -> np.dtype:
    names = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}
    try:
        return np.dtype(names[onnx_type])
    except KeyError:
        raise EngineError(f"input type {onnx_type} is not supported by warm_up") from None
