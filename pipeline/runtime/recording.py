"""Record topics to a file and replay them with their original timing.

File format (``.mwrec``): the line ``MOODWIRE-REC 1\\n``, then a stream of
msgpack arrays ``[t_receive_ns, [frame, frame, ...]]``, one per message, the
frames exactly as they were on the wire. No pickle.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import msgpack

from moodwire.pipeline.core.bus import Publisher, Subscriber
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.wire import MAX_BUFFER_BYTES, WireError, decode, split_frames
from moodwire.pipeline.sources.pacing import wait_until

MAGIC = b"MOODWIRE-REC 1\n"


class RecordingError(ValueError):
    """A file that is not a readable moodwire recording."""


@dataclass
class Record:
    t_receive: int
    frames: list[bytes]

    @property
    def topic(self) -> str:
        return self.frames[0].decode("utf-8", "replace")


class RecordWriter:
    def __init__(self, path: str | Path) -> None:
        self._fh: BinaryIO = open(path, "wb")
        self._fh.write(MAGIC)
        self.count = 0

    def write(self, t_receive: int, frames: Iterable) -> None:
        payload = [t_receive, [bytes(getattr(f, "buffer", f)) for f in frames]]
        self._fh.write(msgpack.packb(payload, use_bin_type=True))
        self.count += 1

    def close(self) -> None:
        self._fh.close()


def read_records(path: str | Path) -> Iterator[Record]:
    """Records in file order; a bad header or a damaged record raises RecordingError."""
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise RecordingError(f"{path} is not a moodwire recording (it lacks the {MAGIC!r} header); "
                                 f"make one with 'moodwire record FILE'")
        unpacker = msgpack.Unpacker(fh, raw=False, max_buffer_size=4 * MAX_BUFFER_BYTES)
        try:
            for i, item in enumerate(unpacker):
                if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int)
                        or not isinstance(item[1], list) or len(item[1]) < 2):
                    raise RecordingError(f"{path}: record {i} is damaged (expected [t, [topic, header, ...]])")
                yield Record(item[0], item[1])
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
            if isinstance(exc, RecordingError):
                raise
            raise RecordingError(f"{path}: damaged after {unpacker.tell()} bytes: {exc}") from None


def record(endpoint: str, path: str | Path, prefixes: list[str], stop: threading.Event,
           duration_s: float | None = None, count: int | None = None, curve: CurveClient | None = None,
           stream: str | None = None) -> int:
    """Write every message under ``prefixes`` (none dropped, frames included) until stopped.

    ``curve``: the client keys of a CURVE-secured public endpoint (docs/security.md).
    """
    writer = RecordWriter(path)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    with Subscriber(endpoint, prefixes or [""], queue_everything=True, curve=curve, stream=stream) as sub:
        try:
            while not stop.is_set() and (count is None or writer.count < count):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                got = sub.recv_raw(timeout=0.1)
                if got is not None:
                    writer.write(got[2], got[1])
        finally:
            writer.close()
    return writer.count


def restamp(frames: list[bytes], offset_ns: int) -> list[bytes]:
    """The same message with ``t_capture`` shifted by ``offset_ns`` and ``t_publish`` set now."""
    topic, header, _ = split_frames(frames)
    header["t_capture"] = header.get("t_capture", 0) + offset_ns
    header["t_publish"] = now_ns()
    return [frames[0], msgpack.packb(header, use_bin_type=True), *frames[2:]]


def replay(path: str | Path, publisher: Publisher, stop: threading.Event, *, speed: float = 1.0,
           keep_timestamps: bool = False, prefixes: list[str] | None = None,
           warn=print) -> int:
    """Publish the recorded messages with their recorded spacing; returns how many were sent.

    By default timestamps are shifted so that the first record's receive time
    is now: latencies measured downstream then mean what they meant live.
    """
    sent = 0
    start = now_ns()
    first: int | None = None
    for rec in read_records(path):
        if prefixes and not any(rec.topic.startswith(p) for p in prefixes):
            continue
        first = rec.t_receive if first is None else first
        if not wait_until(start + int((rec.t_receive - first) / speed), stop):
            break
        try:
            decode(rec.frames)
        except WireError as exc:
            warn(f"moodwire replay: skipping a malformed message: {exc}")
            continue
        frames = rec.frames if keep_timestamps else restamp(rec.frames, start - first)
        publisher.send_raw(frames)
        sent += 1
    return sent
