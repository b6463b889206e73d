"""The one memory sampler: resident memory of named processes over time, and a process's own peak.

psutil is imported when sampling starts (the fer venv, which runs ``peak_rss_mb``, does not have it).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Mapping

MB = 2**20


def peak_rss_mb() -> float:
    """This process's peak resident set size (the kernel's ru_maxrss), MB."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class MemorySampler:
    """RSS of a changing set of named processes, sampled on demand or every ``period_s`` in a thread.

    ``pids`` gives the processes to sample now, ``{name: pid}`` (read again at every sample: a node that
    restarted has a new pid). ``series[name]`` holds ``(seconds since start, MB)``; ``series["total"]``
    the sum over the processes of that sample (shared pages counted once per process).
    """

    def __init__(self, pids: Callable[[], Mapping[str, int]]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.series: dict[str, list[tuple[float, float]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        import psutil

        t, total = time.monotonic() - self.t0, 0.0
        for name, pid in dict(self.pids()).items():
            try:
                mb = psutil.Process(pid).memory_info().rss / MB
            except psutil.Error:  # gone (crashed, restarting): no sample, not a zero
                continue
            self.series.setdefault(name, []).append((t, mb))
            total += mb
        self.series.setdefault("total", []).append((t, total))

    def start(self, period_s: float) -> "MemorySampler":
        """Sample now and then every ``period_s`` until ``stop``."""
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, args=(period_s,), name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self, period_s: float) -> None:
        self.sample()
        while not self._stop.wait(period_s):
            self.sample()

    def max_mb(self, name: str) -> float | None:
        values = [mb for _, mb in self.series.get(name, [])]
        return round(max(values), 1) if values else None

    def last_mb(self, name: str) -> float | None:
        values = self.series.get(name, [])
        return round(values[-1][1], 1) if values else None

    def pss_mb(self) -> float | None:
        """Proportional set size summed over the processes now (shared pages split between their users):
        what they really hold together. It walks every mapping: read it once, at the end."""
        import psutil

        try:
            return round(sum(psutil.Process(pid).memory_full_info().pss for pid in self.pids().values()) / MB, 1)
        except (psutil.Error, AttributeError):  # a process gone, or no PSS on this platform
            return None
