"""SIGINT/SIGTERM as a ``threading.Event``, safely.

Setting an Event inside a Python signal handler can deadlock: the handler runs
in the main thread, possibly while that thread holds the Event's own lock
inside ``Event.wait``. Instead the signal's C-level wakeup fd wakes a watcher
thread, which sets the Event. This also works when the main thread sits in C
code (libzmq) and would not run a Python handler for a long time.
"""

from __future__ import annotations

import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """Install handlers so SIGINT or SIGTERM sets ``stop`` (a new Event if None); main thread only."""
    stop = stop or threading.Event()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _ignore)  # a Python handler must exist for the wakeup fd to be written

    def watch() -> None:
        os.read(read_fd, 1)
        stop.set()

    threading.Thread(target=watch, name="moodwire-signals", daemon=True).start()
    return stop


def _ignore(signum: int, frame: object) -> None:
    """The stop is done by the watcher thread; nothing to do here."""
