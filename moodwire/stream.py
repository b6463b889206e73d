"""``subscribe``: typed messages under topic prefixes, as an iterator that closes its socket."""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator

from moodwire.endpoint import DEFAULT_ENDPOINT
from moodwire.pipeline.core.bus import Received
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.messages import Message
from moodwire.watch import client_subscriber

_POLL_S = 0.25  # a blocked iteration wakes this often, so Ctrl-C and close() are seen promptly


class Stream:
    """Messages under one or more topic prefixes, decoded into ``moodwire.pipeline.core.messages`` dataclasses.

    Latest-only topics (``affect.frame``) give the newest unread message when the reader falls
    behind; queued topics (``affect.utterance``) give every message in order. With
    ``queue_everything=True`` every message of every topic is queued (for logging). ``curve``: the
    keys for a CURVE-secured endpoint (``moodwire.curve_keys("server.key", "client.key_secret")``).
    Extra keyword arguments go to ``moodwire.pipeline.core.bus.Subscriber``.
    """

    def __init__(self, prefixes: str | Iterable[str] = "affect.", endpoint: str = DEFAULT_ENDPOINT, *,
                 queue_everything: bool = False, curve: CurveClient | None = None,
                 **subscriber_kwargs: Any) -> None:
        self.prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
        if not self.prefixes:
            raise ValueError("subscribe to at least one topic prefix ('' means every topic)")
        self.endpoint = endpoint
        self.subscriber = client_subscriber(endpoint, self.prefixes, queue_everything=queue_everything,
                                            curve=curve, **subscriber_kwargs)
        self._closed = False

    def receive(self, timeout: float | None = None) -> Received | None:
        """The next ``Received(topic, msg, t_receive)``, or None after ``timeout`` seconds or once closed."""
        if self._closed:
            return None
        return self.subscriber.recv(timeout)

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after ``timeout`` seconds (None: wait for ever) or once closed."""
        got = self.receive(timeout)
        return None if got is None else got.msg

    def messages(self, idle_timeout: float | None = None) -> Iterator[Message]:
        """Messages as they come; ends after ``idle_timeout`` seconds without one (None: never) or on close."""
        last = time.monotonic()
        while not self._closed:
            wait = _POLL_S if idle_timeout is None else min(_POLL_S, max(0.0, last + idle_timeout - time.monotonic()))
            got = self.receive(wait)
            if got is not None:
                last = time.monotonic()
                yield got.msg
            elif idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                return

    def __iter__(self) -> Iterator[Message]:
        return self.messages()

    def close(self) -> None:
        """Close the socket; iteration ends. Safe to call twice."""
        if not self._closed:
            self._closed = True
            self.subscriber.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe(prefix: str | Iterable[str] = "affect.", endpoint: str = DEFAULT_ENDPOINT, *,
              queue_everything: bool = False, curve: CurveClient | None = None, **subscriber_kwargs: Any) -> Stream:
    """Open a ``Stream`` of typed messages under ``prefix`` (a string or several).

        with moodwire.subscribe("affect.utterance") as stream:
            for msg in stream:
                print(msg.text, msg.valence)

    Messages published before the subscription reaches the publisher (a few ms after this
    returns) are not delivered: ZeroMQ PUB/SUB (docs/schema.md, section 1). A CURVE-secured
    endpoint needs ``curve=moodwire.curve_keys("server.key", "client.key_secret")``; without the
    right keys nothing arrives, and ``stream.subscriber.handshake_error`` says why (it is logged too).

    A prefix that no topic starts with (``"affect.utterances"``) raises ``UnknownPrefixError``, an endpoint
    ZeroMQ cannot use (``"localhost:5560"``) ``ConfigError``; with nothing received for 5 s the stream logs
    once (logger ``moodwire``) what it waits for and how to check.
    """
    return Stream(prefix, endpoint, queue_everything=queue_everything, curve=curve, **subscriber_kwargs)
