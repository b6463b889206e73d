"""One node, several streams: a step per stream, sharing the models.

A node's step holds two kinds of things: models (loaded once, costly) and state that belongs to one
camera or microphone (face tracks, the VAD's segmenter, open utterances, a speaker's voice baseline,
fusion's pending frames). ``PerStream`` gives each stream seen on the bus a step of its own, made by
the first step's ``fresh()`` (the same models, new state), and tags what each step publishes with
its stream. The first stream gets the step the node built, so a one-stream run has exactly one.

Topics that are not per stream (``Topic.per_stream``: ``system.health``) go to every stream's step,
each seeing only the nodes that serve all streams or its own (``NodeHealth.stream``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

from moodwire.pipeline.core.bus import Received
from moodwire.pipeline.core.messages import Message, SystemHealth
from moodwire.pipeline.core.node import Outputs, Step
from moodwire.pipeline.core.topics import get_topic, split_topic, stream_topic

class StreamStep(Step, Protocol):
    def fresh(self) -> "StreamStep":
        """A step with the same models and no state: for another stream."""
        ...


def for_stream(msg: Message, stream: str) -> Message:
    """What one stream's step sees of a message shared by all streams."""
    if isinstance(msg, SystemHealth):
        return dataclasses.replace(msg, nodes=[n for n in msg.nodes if n.stream in ("", stream)])
    return msg


class PerStream:
    """A ``Step`` that keeps one ``StreamStep`` per stream."""

    def __init__(self, first: StreamStep) -> None:
        self.inputs = first.inputs
        self._first = first
        self.steps: dict[str, StreamStep] = {}

    def process(self, topic: str, msg: Message) -> Outputs:
        name, stream = split_topic(topic)
        if not get_topic(name).per_stream:
            return [out for s, step in self.steps.items() for out in self._tagged(s, step.process(name,
                                                                                                  for_stream(msg, s)))]
        return self._tagged(stream, self.step(stream).process(name, msg))

    def idle(self, now: int) -> Outputs:
        return [out for stream, step in self.steps.items() for out in self._tagged(stream, step.idle(now))]

    def advance_stream(self, stream: str, watermark: int) -> Outputs:
        """``advance`` of the stream's step, where it has one (pipeline/core/flow.py)."""
        step = self.steps.get(stream)
        return self._tagged(stream, step.advance(watermark)) if hasattr(step, "advance") else []

    def holdback_stream(self, stream: str) -> int | None:
        step = self.steps.get(stream)
        return step.holdback() if hasattr(step, "holdback") else None

    def step(self, stream: str) -> StreamStep:
        """The step of ``stream``, made on its first message."""
        if stream not in self.steps:
            self.steps[stream] = self._first.fresh() if self.steps else self._first
        return self.steps[stream]

    def close(self) -> None:
        for step in self.steps.values() or [self._first]:
            close = getattr(step, "close", None)
            if close is not None:
                close()

    @staticmethod
    def _tagged(stream: str, outputs: Outputs) -> list[tuple[str, Message]]:
        return [(stream_topic(topic, stream), msg) for topic, msg in outputs]


class OneStream:
    """For a client that shows one camera (viewer, dashboard): the stream it was given, else the first one
    it sees. When another stream turns up, that is said once through ``announce``; a one-camera run says
    nothing. Messages about no stream (``system.*``) always pass."""

    def __init__(self, chosen: str | None, announce: Callable[[str], None]) -> None:
        self.chosen = chosen
        self._announce = announce
        self._picked = chosen is None  # not the user's choice: say so when it matters
        self._said = False

    def wants(self, got: Received) -> bool:
        if not get_topic(got.topic).per_stream:
            return True
        if self.chosen is None:
            self.chosen = got.stream
        if got.stream == self.chosen:
            return True
        if self._picked and not self._said:
            self._said = True
            self._announce(f"several streams on the bus: showing {self.chosen or '(default)'}, the first seen; "
                           "--stream picks another")
        return False
