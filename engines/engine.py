"""The one inference interface every backend implements.

A backend loads a model file, runs it on named numpy inputs, warms up (the
first runs of a session allocate and compile), and reports what it runs on
and how long the last run took. Nodes hold an ``Engine`` and never touch a
runtime's own API.
"""

from __future__ import annotations

import time
from typing import Mapping, Protocol

import numpy as np


class Engine(Protocol):
    #: What the model actually runs on, e.g. "onnxruntime:CPUExecutionProvider".
    backend: str
    #: Wall time of the last ``run`` in milliseconds.
    last_run_ms: float

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]: ...

    def warm_up(self, runs: int = 3) -> None: ...


class EngineError(RuntimeError):
    """A model that cannot be loaded or run; the text names the file and the problem."""


class Stopwatch:
    """Milliseconds of the last timed block (``with watch: ...``)."""

    def __init__(self) -> None:
        self.last_ms = 0.0
        self._start = 0

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.last_ms = (time.perf_counter_ns() - self._start) / 1e6
