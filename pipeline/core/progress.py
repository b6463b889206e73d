"""Progress of long steps (model export, engine build, model load and warm-up), for a person watching.

A step has a name, its elapsed time, a fraction where one is known, and the latest thing it said.
On a terminal one status line is rewritten in place; anywhere else (a log file, a node's stderr
that the manager forwards) each thing said is a line, and while nothing is said a status line
comes every ``every_s`` seconds, so a long silent call (an ONNX export, a model load) still shows
it is alive. A step is also a plain ``progress(line)`` callable, the convention of the exporters
and loaders, so it can be handed to them as it is.

    with Progress().step("export face-expression") as step:
        export_slot(model, progress=step)      # its lines appear as "export face-expression: ..."
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Callable, Protocol, TextIO

Say = Callable[[str], None]
BAR_WIDTH = 20


class Reporting(Protocol):
    """What a long step can tell: lines (kept), a detail (the status only), a fraction."""

    def __call__(self, line: str) -> None: ...
    def detail(self, text: str) -> None: ...
    def fraction(self, done: float | None) -> None: ...


class Progress:
    """Makes ``Step``s that write to ``out``: a text stream (a terminal is rewritten in place unless
    ``tty=False``) or a ``progress(line)`` callable (always line by line)."""

    def __init__(self, out: TextIO | Say | None = None, *, tty: bool | None = None, every_s: float = 5.0,
                 refresh_s: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        out = sys.stderr if out is None else out
        self._stream = out if hasattr(out, "write") else None
        self._say: Say = self._write_line if self._stream is not None else out  # type: ignore[assignment]
        self.tty = bool(self._stream is not None and _isatty(self._stream)) if tty is None else tty
        self.every_s, self.refresh_s, self.clock = every_s, refresh_s, clock
        self._lock = threading.Lock()
        self._shown = ""  # the status line now on the terminal (tty)

    def step(self, name: str) -> Step:
        return Step(self, name)

    # --- output: called by Step with the lock held

    def line(self, text: str) -> None:
        """A line that stays (above the status line on a terminal)."""
        if self.tty:
            self._clear()
        self._say(text)

    def status(self, text: str) -> None:
        """The status: rewritten in place on a terminal, a line elsewhere."""
        if not self.tty:
            self._say(text)
            return
        self._clear()
        text = text[:max(20, shutil.get_terminal_size().columns - 1)]  # a wrapped line cannot be rewritten
        self._stream.write(text)
        self._stream.flush()
        self._shown = text

    def end_status(self) -> None:
        if self.tty:
            self._clear()

    def _clear(self) -> None:
        if self._shown:
            self._stream.write("\r" + " " * len(self._shown) + "\r")
            self._shown = ""

    def _write_line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()


class Step:
    """One long step: a context manager that reports its start, its progress and its end.

    ``step(line)`` says something (kept as a line), ``detail(text)`` changes only the status,
    ``fraction(x)`` / ``count(done, total)`` say how far it is. On exit: ``done in S s`` or
    ``failed after S s`` (the exception goes on).
    """

    def __init__(self, progress: Progress, name: str) -> None:
        self.progress, self.name = progress, name
        self._started = self._last_line = progress.clock()
        self._detail = ""
        self.last_line = ""  # the last thing said, e.g. why a step was skipped
        self._fraction: float | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def elapsed_s(self) -> float:
        return self.progress.clock() - self._started

    def __call__(self, line: str) -> None:
        with self.progress._lock:
            self.last_line = line
            self.progress.line(f"{self.name}: {line}")
            self._last_line = self.progress.clock()
            self._redraw()

    def detail(self, text: str) -> None:
        self._detail = text

    def fraction(self, done: float | None) -> None:
        self._fraction = None if done is None else min(1.0, max(0.0, float(done)))

    def count(self, done: int, total: int) -> None:
        self.fraction(done / total if total > 0 else None)

    def status(self) -> str:
        """``name: [####......]  45% 12.3 s, detail``: what the status line shows now. In a log, without
        a detail, the last line said stands in (on a terminal it is right above)."""
        parts = [f"{self.name}:"]
        if self._fraction is not None:
            filled = round(self._fraction * BAR_WIDTH)
            parts.append(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self._fraction * 100:3.0f}%")
        detail = self._detail or ("" if self.progress.tty else self.last_line)
        parts.append(f"{self.elapsed_s:.1f} s" + (f", {detail}" if detail else ""))
        return " ".join(parts)

    def tick(self) -> None:
        """Show the status if it is due: always on a terminal, after ``every_s`` without a line elsewhere."""
        with self.progress._lock:
            if self.progress.tty:
                self._redraw()
            elif self.progress.clock() - self._last_line >= self.progress.every_s:
                self.progress.status(self.status())
                self._last_line = self.progress.clock()

    def _redraw(self) -> None:
        if self.progress.tty:
            self.progress.status(self.status())

    def __enter__(self) -> Step:
        with self.progress._lock:
            self.progress.line(f"{self.name}: started")
            self._redraw()
        self._ticker = threading.Thread(target=self._tick_until_done, name="progress", daemon=True)
        self._ticker.start()
        return self

    def _tick_until_done(self) -> None:
        wait = self.progress.refresh_s if self.progress.tty else min(self.progress.every_s, 0.5)
        while not self._stop.wait(wait):
            self.tick()

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        outcome = "done in" if exc_type is None else "failed after"
        with self.progress._lock:
            self.progress.end_status()
            self.progress.line(f"{self.name}: {outcome} {self.elapsed_s:.1f} s")


class LineReporting:
    """A plain ``progress(line)`` callable with the ``Reporting`` interface: details and fractions
    are dropped (a callable has no status line to show them on)."""

    def __init__(self, say: Say) -> None:
        self._say = say

    def __call__(self, line: str) -> None:
        self._say(line)

    def detail(self, text: str) -> None:
        pass

    def fraction(self, done: float | None) -> None:
        pass


def reporting(progress: Say) -> Reporting:
    """``progress`` itself when it is a ``Step``, else a ``LineReporting`` around it."""
    return progress if isinstance(progress, Step) else LineReporting(progress)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
