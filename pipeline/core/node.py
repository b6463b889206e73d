"""The thin loop around a node's logic.

A node's logic lives in a step object (tests drive it directly, without
sockets). ``run_step`` feeds it messages from the bus; ``run_source`` forwards
what a source yields. Both count what they publish and send ``system.node``
once a second, and both stop when ``ctx.stop`` is set (SIGINT or SIGTERM).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

from moodwire.pipeline.core.bus import BusEndpoints, Publisher, Subscriber
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.message_checks import problem
from moodwire.pipeline.core.messages import Message, NodeStats
from moodwire.pipeline.core.topics import get_topic, split_topic, stream_topic

Outputs = Iterable[tuple[str, Message]]
REPORT_PERIOD_NS = 1_000_000_000


@dataclass
class NodeContext:
    name: str
    config: Config
    endpoints: BusEndpoints
    outputs: tuple[str, ...]
    t0_ns: int  # the run's shared start time; file and synthetic sources pace from it
    stop: threading.Event
    host: str = ""
    curve: CurveClient | None = None  # a joined host's keys for the bus host's endpoints

    @classmethod
    def for_test(cls, name: str, config: Config, run_dir: str | Path,
                 outputs: tuple[str, ...] = ()) -> "NodeContext":
        return cls(name, config, BusEndpoints.in_dir(str(run_dir), config.bus.public),
                   outputs, now_ns(), threading.Event())


class BadInput(ValueError):
    """A well-formed message a step cannot use (wrong sample rate, missing audio...). ``run_step``
    reports it (stderr, ``system.node`` last_error and malformed count) and goes on with the next."""


def accept(inputs: tuple[str, ...], topic: str, msg: Message) -> None:
    """BadInput unless ``msg`` is what ``topic`` carries, the node takes ``topic``, and the message passes its
    type's checks (pipeline/core/message_checks.py ``problem``): finite numbers, array shapes, capture times."""
    if split_topic(topic)[0] not in inputs:
        raise BadInput(f"{topic} is not an input of this node (it takes {', '.join(inputs)}); skipped")
    expected = get_topic(topic).msg_type
    if type(msg) is not expected:
        raise BadInput(f"{topic} carries {expected.__name__}, got {type(msg).__name__}; skipped")
    found = problem(msg, now_ns())
    if found:
        raise BadInput(f"{found}; skipped: the publisher ({msg.source or 'unknown'}) must send {topic} as "
                       f"docs/schema.md describes")


def handle(step: "Step", topic: str, msg: Message) -> list[tuple[str, Message]]:
    """What ``step`` makes of one received message, checked first (BadInput leaves the step untouched)."""
    accept(step.inputs, topic, msg)
    return list(step.process(topic, msg))


class Step(Protocol):
    """Logic of a consuming node: messages in, messages out."""

    inputs: tuple[str, ...]

    def process(self, topic: str, msg: Message) -> Outputs: ...

    def idle(self, now: int) -> Outputs: ...


class Source(Protocol):
    """Logic of a source node: yields messages, paced, until exhausted or stopped."""

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]: ...


class NodeIO:
    """A node's sockets, with the bookkeeping for ``system.node``."""

    def __init__(self, ctx: NodeContext, inputs: Iterable[str] = ()) -> None:
        self._ctx = ctx
        self.pub = Publisher(ctx.endpoints.internal_pub, ctx.name, hwm=ctx.config.bus.hwm, curve=ctx.curve)
        inputs = tuple(inputs)
        self.sub = (Subscriber(ctx.endpoints.internal_sub, inputs, hwm=ctx.config.bus.hwm, curve=ctx.curve)
                    if inputs else None)
        self.last_error = ""
        self.refused = 0
        self._last_report = now_ns()
        self._last_counts: dict[str, int] = {}

    def publish(self, topic: str, msg: Message) -> None:
        if split_topic(topic)[0] not in self._ctx.outputs:
            raise ValueError(f"node {self._ctx.name} may not publish {topic}: not among its outputs "
                             f"{self._ctx.outputs} in pipeline/runtime/process_table.py")
        self.pub.send(topic, msg)
        self.report_if_due()

    def report_if_due(self) -> None:
        now = now_ns()
        if now - self._last_report < REPORT_PERIOD_NS:
            return
        span = (now - self._last_report) / 1e9
        counts = {t: n for t, n in self.pub.sent.items() if t != "system.node"}
        rates = {t: (n - self._last_counts.get(t, 0)) / span for t, n in counts.items()}
        malformed = self.refused + (self.sub.malformed if self.sub else 0)
        error = self.last_error or (self.sub.last_error if self.sub else "")
        stats = NodeStats(name=self._ctx.name, pid=os.getpid(), published=counts, rates_hz=rates,
                          malformed_inputs=malformed, last_error=error, t_capture=now, host=self._ctx.host)
        self.pub.send("system.node", stats)
        self._last_report, self._last_counts = now, counts

    def refuse(self, topic: str, exc: BadInput) -> None:
        self.refused += 1
        self.last_error = f"refused a {topic} message: {exc}"
        print(f"{self._ctx.name}: {self.last_error}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.sub:
            self.sub.close()
        self.pub.close()


class BatchStep(Step, Protocol):
    """A step that does better with every message that is waiting at once (the face node: one frame per
    stream, their faces in one model call)."""

    def process_batch(self, items: list[tuple[str, Message]]) -> Outputs: ...


@dataclass
class OneAtATime:
    """A plain ``Step`` as a ``BatchStep`` of one message."""

    step: Step

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.step.inputs

    def process_batch(self, items: list[tuple[str, Message]]) -> Outputs:
        return [out for topic, msg in items for out in self.step.process(topic, msg)]

    def idle(self, now: int) -> Outputs:
        return self.step.idle(now)


def run_step(ctx: NodeContext, step: Step, poll_s: float = 0.1) -> None:
    """Feed ``step`` each message from the bus, checked first (``accept``), and ``idle`` after ``poll_s``
    without one; publish what it makes. A refused message (BadInput) is reported and the next one follows."""
    run_batch_step(ctx, OneAtATime(step), poll_s, max_batch=1)


def run_batch_step(ctx: NodeContext, step: BatchStep, poll_s: float = 0.1, max_batch: int = 64) -> None:
    """``run_step``, handing the step every message that has arrived (up to ``max_batch``) in one call."""
    io = NodeIO(ctx, step.inputs)
    try:
        while not ctx.stop.is_set():
            if io.sub is None:  # a step without inputs only idles, once a poll period
                ctx.stop.wait(poll_s)
            batch = _waiting(io.sub, poll_s, max_batch) if io.sub else []
            try:
                outputs = step.process_batch(_accepted(io, step.inputs, batch)) if batch else step.idle(now_ns())
                for topic, msg in outputs:
                    io.publish(topic, msg)
            except BadInput as exc:  # the step cannot use these: say so and go on with the next
                io.refuse(", ".join(sorted({got.topic for got in batch})) or "(idle)", exc)
            io.report_if_due()
    finally:
        io.close()


def _waiting(sub: Subscriber, poll_s: float, max_batch: int) -> list:
    """The next message (waiting up to ``poll_s``) and every other one already there, up to ``max_batch``."""
    first = sub.recv(timeout=poll_s)
    batch = [first] if first is not None else []
    while batch and len(batch) < max_batch and (more := sub.recv(timeout=0)) is not None:
        batch.append(more)
    return batch


def _accepted(io: NodeIO, inputs: tuple[str, ...], batch: list) -> list[tuple[str, Message]]:
    """The received messages that pass ``accept``; the others are refused (reported) and left out."""
    out = []
    for got in batch:
        try:
            accept(inputs, got.topic, got.msg)
            out.append((got.topic, got.msg))
        except BadInput as exc:
            io.refuse(got.topic, exc)
    return out


def run_source(ctx: NodeContext, source: Source) -> None:
    """Publish what ``source`` yields, on the stream ``sources.stream`` names."""
    io = NodeIO(ctx)
    stream = ctx.config.sources.stream
    try:
        for topic, msg in source.messages(ctx.stop):
            io.publish(stream_topic(topic, stream), msg)
    finally:
        io.close()
