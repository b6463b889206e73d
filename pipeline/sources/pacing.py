"""Pacing against the shared clock, so a restarted source rejoins the timeline."""

from __future__ import annotations

import threading

from moodwire.pipeline.core.clock import now_ns


def wait_until(t_ns: int, stop: threading.Event) -> bool:
    """Sleep until ``t_ns`` (monotonic); False when stopped first."""
    delay = (t_ns - now_ns()) / 1e9
    if delay > 0:
        return not stop.wait(delay)
    return not stop.is_set()


def elapsed_index(t0_ns: int, period_ns: float) -> int:
    """Index of the first sample not yet due at the current time (0 before t0)."""
    return max(0, int((now_ns() - t0_ns) // period_ns))
