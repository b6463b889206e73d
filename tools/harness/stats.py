"""The figures every benchmark computes the same way: one percentile summary, one count of lost messages.

Imports only numpy: tools/fer_baseline.py uses ``summary`` inside the fer venv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np


def summary(values: Iterable[float], digits: int = 3) -> dict[str, Any]:
    """p50, p90, p99 (numpy's default, linear interpolation), mean and max of ``values``, rounded to
    ``digits``, and their count ``n``. No values: every figure None and n 0 (never a made-up 0)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {"p50": None, "p90": None, "p99": None, "mean": None, "max": None, "n": 0}
    p50, p90, p99 = np.percentile(arr, (50, 90, 99))
    return {"p50": round(float(p50), digits), "p90": round(float(p90), digits), "p99": round(float(p99), digits),
            "mean": round(float(arr.mean()), digits), "max": round(float(arr.max()), digits), "n": int(arr.size)}


@dataclass
class SeqGaps:
    """One publisher's ``seq`` on one topic, in arrival order, and how many of its messages were lost.

    Every ``Publisher`` numbers its messages per topic from 0, one up per message (pipeline/core/bus.py).
    **Lost** means sent by the publisher but never received here, counted from the first message this
    subscriber saw of it (a subscriber that joins late has lost nothing):

    - ``seq`` jumps from a to b > a + 1: the b - a - 1 messages in between were lost;
    - ``seq`` steps back to b <= a: the publisher restarted (a new process counts from 0 again), and its
      first b messages (0 .. b - 1) were lost: the subscriber was connected, so it should have had them.
    """

    received: int = 0
    lost: int = 0
    restarts: int = 0
    last: int | None = None

    def add(self, seq: int) -> None:
        if self.last is not None:
            if seq > self.last:
                self.lost += seq - self.last - 1
            else:
                self.restarts += 1
                self.lost += seq
        self.received += 1
        self.last = seq


def seq_gaps(seqs: Iterable[int]) -> SeqGaps:
    """SeqGaps of one publisher's topic from its ``seq`` numbers in arrival order."""
    gaps = SeqGaps()
    for seq in seqs:
        gaps.add(seq)
    return gaps


def index_gaps(indices: Iterable[int]) -> int:
    """Indices missing between the smallest and largest one seen (duplicates count once)."""
    seen = set(indices)
    return max(seen) - min(seen) + 1 - len(seen) if seen else 0


def cpu_share(before: Any, after: Any, wall_s: float) -> float | None:
    """% of one core: user+system seconds between two psutil ``cpu_times`` samples over ``wall_s``;
    None when either sample is missing (the process was gone) or no time passed."""
    if before is None or after is None or wall_s <= 0:
        return None
    used = (after.user - before.user) + (after.system - before.system)
    return round(100.0 * used / wall_s, 1)


def ratio(ours: float | None, peer: float | None) -> float | None:
    """ours / peer, rounded; None when either is missing or the peer's is 0."""
    return round(ours / peer, 2) if ours is not None and peer else None


def rate_hz(times_ns: Sequence[int], t0: int, t1: int) -> float | None:
    """How many of ``times_ns`` fall in [t0, t1), per second; None for an empty span."""
    if t1 <= t0:
        return None
    return round(sum(t0 <= t < t1 for t in times_ns) / ((t1 - t0) / 1e9), 1)
