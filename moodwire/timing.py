"""Message timestamps (monotonic ns, ``moodwire.pipeline.core.clock``) as ages and as wall-clock times."""

from __future__ import annotations

import time
from datetime import datetime

from moodwire.pipeline.core.clock import now_ns


def age_s(t_ns: int) -> float:
    """Seconds from ``t_ns`` (a ``t_capture``, ``t_end``, ...) to now: meaningful on the host that runs the bus."""
    return (now_ns() - t_ns) / 1e9


def wall_clock(t_ns: int) -> datetime:
    """The local wall-clock time of a message timestamp (only meaningful on the host that runs the bus)."""
    return datetime.fromtimestamp(time.time() - age_s(t_ns)).astimezone()
