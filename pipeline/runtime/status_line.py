"""The one-line live status ``moodwire run`` prints (unless ``--quiet``): frame rate and latency of
``affect.frame``, faces in view, nodes up, what is missing, and the last utterance.

On a terminal the line is rewritten in place every second; into a file or pipe a full line goes
out every ``LOG_INTERVAL_S`` instead, so logs stay readable. It reads the bus like any client and
never slows the pipeline: a missed message only makes the line a little less exact.
"""

from __future__ import annotations

import statistics
import sys
import threading
from dataclasses import dataclass, field
from typing import TextIO

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, SystemHealth

TTY_INTERVAL_S = 1.0
LOG_INTERVAL_S = 10.0
TOPICS = ["affect.frame", "affect.utterance", "system.health"]


@dataclass
class StatusCounts:
    """What came in since the last line, and the newest of each kind."""

    interval_s: float
    latencies_ms: list[float] = field(default_factory=list)
    frame: AffectFrame | None = None
    utterance: AffectUtterance | None = None
    health: SystemHealth | None = None

    def add(self, msg) -> None:
        if isinstance(msg, AffectFrame):
            self.latencies_ms.append(msg.latency_ms)
            self.frame = msg
        elif isinstance(msg, AffectUtterance):
            self.utterance = msg
        elif isinstance(msg, SystemHealth):
            self.health = msg

    def line(self) -> str:
        parts = [f"{len(self.latencies_ms) / self.interval_s:4.1f} fps"]
        if self.latencies_ms:
            parts.append(f"latency {statistics.median(self.latencies_ms):.0f} ms")
        if self.frame is not None:
            parts.append(f"faces {sum(p.track_id is not None for p in self.frame.persons)}")
            if self.frame.missing:
                parts.append("missing " + ",".join(self.frame.missing))
        else:
            parts.append("no affect.frame")
        if self.health is not None:
            up = sum(n.alive and n.state != "stalled" for n in self.health.nodes)
            parts.append(f"nodes {up}/{len(self.health.nodes)} up")
        if self.utterance is not None:
            parts.append(f"last: {utterance_summary(self.utterance)}")
        return "moodwire: " + " | ".join(parts)

    def next_interval(self) -> None:
        self.latencies_ms = []


def utterance_summary(utt: AffectUtterance, width: int = 40) -> str:
    who = f"#{utt.speaker_track_id}" if utt.speaker_track_id is not None else "?"
    top = top_label(utt.labels, utt.probs) or "?"
    words = utt.text.strip()
    words = words if len(words) <= width else words[: width - 3] + "..."
    return f'{who} {top} "{words}"'


class StatusLine:
    """A daemon thread printing the status of the stream on ``endpoint`` until ``stop``."""

    def __init__(self, endpoint: str, out: TextIO = sys.stderr, curve: CurveClient | None = None) -> None:
        self.endpoint, self.out, self.curve = endpoint, out, curve
        self.tty = out.isatty()
        self.interval_s = TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="moodwire-status", daemon=True)

    def start(self) -> "StatusLine":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        if self.tty:
            self.out.write("\n")

    def _run(self) -> None:
        import time

        from moodwire.pipeline.core.bus import Subscriber

        counts = StatusCounts(self.interval_s)
        with Subscriber(self.endpoint, TOPICS, queue_everything=True, curve=self.curve) as sub:
            next_line = time.monotonic() + self.interval_s
            while not self._stop.is_set():
                got = sub.recv(timeout=min(0.2, max(0.0, next_line - time.monotonic())))
                if got is not None:
                    counts.add(got.msg)
                if time.monotonic() >= next_line:
                    self._write(counts.line())
                    counts.next_interval()
                    next_line += self.interval_s

    def _write(self, line: str) -> None:
        if self.tty:
            self.out.write("\r" + line + "\033[K")
        else:
            self.out.write(line + "\n")
        self.out.flush()
