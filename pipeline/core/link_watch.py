"""What a client says when nothing arrives: once, after a few seconds, what it waits for and how to check.

A ``Subscriber`` given a ``LinkWatch`` feeds it from its receiver thread: the socket's connection events
(ZeroMQ's monitor), each message, a refused CURVE handshake, and a tick on every poll. The note tells a
subscriber that never reached the endpoint (no pipeline there, or the wrong address) from one that is
connected but has had nothing under its prefixes yet (an utterance comes only when someone speaks).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

QUIET_NOTE_S = 5.0  # a client says what it waits for after this long with nothing received


@dataclass
class LinkWatch:
    endpoint: str
    prefixes: Sequence[str]
    say: Callable[[str], None]
    after_s: float = QUIET_NOTE_S
    connected: bool = False
    received: bool = False
    refused: str = ""
    _since: float = field(default_factory=time.monotonic)
    _said: set[str] = field(default_factory=set)
    _noted: bool = False

    def on_connected(self, up: bool) -> None:
        self.connected = up

    def on_message(self, topic: str) -> None:
        if not self.received and any(topic.startswith(p) for p in self.prefixes):  # every message passes here
            self.received = True

    def on_refused(self, problem: str) -> None:
        """A refused CURVE handshake: said at once (each new reason once)."""
        self.refused = problem
        self._once(f"moodwire: {problem}")

    def tick(self) -> None:
        if time.monotonic() - self._since >= self.after_s:
            self.tell()

    def tell(self) -> None:
        """Say the note now, unless said already or something has arrived (a client's wait that failed)."""
        if not self.received and not self._noted:
            self._noted = True
            self.say(self.note())

    def note(self) -> str:
        """What this subscriber is waiting for, and how to check."""
        topics = ", ".join(repr(p) for p in self.prefixes)
        check = f"check with: moodwire listen system.health --endpoint {self.endpoint}"
        if self.refused:
            return f"moodwire: nothing received from {self.endpoint}: {self.refused}"
        if self.connected:
            return (f"moodwire: connected to {self.endpoint}, but nothing under {topics} in {self.after_s:g} s "
                    f"(affect.utterance comes only when someone speaks; is that node on?); {check}")
        return (f"moodwire: no connection to {self.endpoint} after {self.after_s:g} s: is a moodwire pipeline "
                f"running there (bus.public of its config)? {check}")

    def _once(self, text: str) -> None:
        if text not in self._said:
            self._said.add(text)
            self.say(text)


def say_on_stderr(text: str) -> None:
    """A command line tool's way of saying a note."""
    print(text, file=sys.stderr, flush=True)
