"""``Client``: call functions on messages, by topic prefix, until ``stop()``."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from moodwire.endpoint import DEFAULT_ENDPOINT
from moodwire.pipeline.core.bus import check_endpoint
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.link_watch import LinkWatch
from moodwire.pipeline.core.messages import Message, SystemHealth
from moodwire.pipeline.core.topics import check_prefix
from moodwire.stream import Stream
from moodwire.watch import log

Callback = Callable[[Message], Any]
_POLL_S = 0.1  # how soon run() notices stop()


class Client:
    """Dispatches each message to the callbacks registered for a prefix of its topic.

        client = Client().on("affect.utterance", lambda u: print(u.text))
        client.run()          # blocks until stop() (from a callback or another thread) or Ctrl-C

    ``start()`` runs the same loop in a background thread. A callback's exception stops the
    client: ``run()`` raises it; after ``start()``, ``stop()`` raises it. ``curve``: keys for a
    CURVE-secured endpoint (``moodwire.curve_keys``). Extra keyword arguments go to
    ``moodwire.pipeline.core.bus.Subscriber``. ``on_run(callback)`` hears of each new pipeline run.

    An endpoint ZeroMQ cannot use raises ``ConfigError`` here, a prefix no topic starts with
    ``UnknownPrefixError`` in ``on``; with nothing received for 5 s the client logs once (logger
    ``moodwire``) what it waits for and how to check.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, queue_everything: bool = False,
                 curve: CurveClient | None = None, **subscriber_kwargs: Any) -> None:
        check_endpoint(endpoint)
        self.endpoint = endpoint
        self._stream_kwargs = dict(subscriber_kwargs, queue_everything=queue_everything, curve=curve)
        self._handlers: list[tuple[str, Callback]] = []
        self._run_handlers: list[Callable[[str], Any]] = []
        self.run_id = ""  # the pipeline run last seen (on_run)
        self._stop = threading.Event()
        self._running = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def on(self, prefix: str, callback: Callback) -> "Client":
        """Call ``callback(msg)`` for every message whose topic starts with ``prefix``; returns self."""
        if not callable(callback):
            raise TypeError(f"callback for {prefix!r} must be callable, got {type(callback).__name__}")
        if self._running.locked():
            raise RuntimeError("register callbacks before run()/start(): the subscription is fixed then")
        check_prefix(prefix)
        self._handlers.append((prefix, callback))
        return self

    def on_run(self, callback: Callable[[str], Any]) -> "Client":
        """Call ``callback(run_id)`` when the pipeline's run is first seen and whenever a new run starts
        (``system.health``'s ``run_id``: a restarted pipeline counts frames and utterances from 0 again);
        returns self."""
        if not callable(callback):
            raise TypeError(f"on_run callback must be callable, got {type(callback).__name__}")
        self._run_handlers.append(callback)
        return self

    def run(self, seconds: float | None = None) -> None:
        """Receive and dispatch until ``stop()``, or for ``seconds`` when given."""
        self._stop.clear()
        self._loop(seconds)

    def _loop(self, seconds: float | None) -> None:
        if not self._handlers and not self._run_handlers:
            raise ValueError("no callbacks: call on(prefix, callback) first")
        if not self._running.acquire(blocking=False):
            raise RuntimeError("this client is already running")
        try:
            deadline = None if seconds is None else time.monotonic() + seconds
            prefixes = sorted({prefix for prefix, _ in self._handlers})
            health = ["system.health"] if self._run_handlers else []
            watch = LinkWatch(self.endpoint, prefixes or health, log.warning)
            with Stream(prefixes + health, self.endpoint, watch=watch, **self._stream_kwargs) as stream:
                while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    got = stream.receive(_POLL_S)
                    if got is None:
                        continue
                    if isinstance(got.msg, SystemHealth):
                        self._check_run(got.msg.run_id)
                    for prefix, callback in self._handlers:
                        if got.topic.startswith(prefix):
                            callback(got.msg)
        finally:
            self._running.release()

    def _check_run(self, run_id: str) -> None:
        if run_id and run_id != self.run_id:
            self.run_id = run_id
            for callback in self._run_handlers:
                callback(run_id)

    def start(self) -> "Client":
        """Run in a background (daemon) thread; returns self."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("this client is already running")
        self._error = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_in_thread, name="moodwire-client", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop running; after ``start()``, wait for the thread and raise a callback's exception."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            self._thread = None
            error, self._error = self._error, None
            if error is not None:
                raise error

    def _run_in_thread(self) -> None:
        try:
            self._loop(None)
        except BaseException as exc:  # handed to stop(): a thread's exception is otherwise lost
            self._error = exc

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def on(prefix: str, callback: Callback, endpoint: str = DEFAULT_ENDPOINT, **client_kwargs: Any) -> Client:
    """A ``Client`` with one callback, not yet running: ``on("affect.utterance", print).run()``."""
    return Client(endpoint, **client_kwargs).on(prefix, callback)
