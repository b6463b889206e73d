"""The one clock of the pipeline: the bus host's CLOCK_MONOTONIC.

All capture timestamps are ``now_ns()``. On the host that runs the bus it is
``time.monotonic_ns()``: CLOCK_MONOTONIC is shared by every process on a host,
so audio, video and downstream messages from different processes compare
directly. A host that joins another host's bus (``bus.join``) has its own
monotonic clock, hours apart from the bus host's; its manager measures the
offset over the bus (pipeline/runtime/clock_sync.py) and writes it to an
offset file in its run directory, and each of its nodes follows that file
(``follow_offset_file``). So every time a node makes (``t_capture``,
``t_publish``, arrival times) is on the bus host's clock, and latency,
freshness, the future-timestamp check and fusion's joins need no change.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

_SLOT = struct.Struct("<q")
OFFSET_FILE_BYTES = 2 * _SLOT.size  # the offset twice: a reader retries when the copies differ (a torn read)


class OffsetFile:
    """An offset in nanoseconds, shared through a small memory-mapped file: one writer, many readers."""

    def __init__(self, path: str | Path, create: bool = False) -> None:
        self.path = Path(path)
        if create:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, bytes(OFFSET_FILE_BYTES))
        else:
            fd = os.open(self.path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, OFFSET_FILE_BYTES)
        finally:
            os.close(fd)

    def write(self, offset_ns: int) -> None:
        _SLOT.pack_into(self._map, 0, offset_ns)
        _SLOT.pack_into(self._map, _SLOT.size, offset_ns)

    def read(self) -> int:
        while True:
            first, second = _SLOT.unpack_from(self._map, 0)[0], _SLOT.unpack_from(self._map, _SLOT.size)[0]
            if first == second:
                return first


_offset: OffsetFile | None = None


def follow_offset_file(path: str | Path) -> None:
    """From now on ``now_ns`` is this host's monotonic clock plus the offset in ``path`` (the bus host's clock)."""
    global _offset
    _offset = OffsetFile(path)


def now_ns() -> int:
    """The bus host's monotonic clock, in nanoseconds."""
    offset = _offset
    return time.monotonic_ns() + (offset.read() if offset is not None else 0)


def local_ns() -> int:
    """This host's own monotonic clock (what the offset is measured against)."""
    return time.monotonic_ns()
