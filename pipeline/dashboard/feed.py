"""Keeps a ``DashboardState`` current from the public endpoint, in a background thread.

Every topic the page uses is queued (none latest-only), so the frame rate and latency figures
count every frame; the thread only decodes and folds, so it keeps up with 30 fps easily.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.streams import OneStream
from moodwire.pipeline.dashboard.state import TOPICS, DashboardState

QUEUE_LIMIT = 1000  # messages waiting in the subscriber: about 15 s of every topic at their rates


class Feed:
    """A subscriber thread folding the stream into a state; ``view()`` and ``view_json()`` read it."""

    def __init__(self, endpoint: str, curve: CurveClient | None = None, stream: str | None = None) -> None:
        self.endpoint = endpoint
        self._state = DashboardState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sub = Subscriber(endpoint, TOPICS, queue_everything=True, queue_limit=QUEUE_LIMIT, curve=curve,
                               stream=stream)
        self._thread = threading.Thread(target=self._run, name="moodwire-dashboard-feed", daemon=True)
        self._shown = OneStream(stream, lambda line: print(f"moodwire dashboard: {line}", file=sys.stderr))

    def start(self) -> "Feed":
        self._thread.start()
        return self

    def view(self) -> dict[str, Any]:
        """The page's view now, with where it comes from and why nothing may be arriving."""
        with self._lock:
            view = self._state.view(now_ns())
        view["subscriber"] = {"endpoint": self.endpoint, "handshake_error": self._sub.handshake_error,
                              "malformed": self._sub.malformed, "last_error": self._sub.last_error}
        return view

    def view_json(self) -> bytes:
        return json.dumps(self.view(), allow_nan=False, separators=(",", ":")).encode()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sub.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self._sub.recv(timeout=0.1)
            if got is not None and self._shown.wants(got):
                with self._lock:
                    self._state.add(got.msg, got.t_receive)
