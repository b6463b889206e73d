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
from moodwire.pipeline.core.flow import END, PROGRESS_TOPIC, Backpressure, FlowPlan, Watermarks, due, event_time
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.message_checks import problem
from moodwire.pipeline.core.messages import Message, NodeStats, Progress
from moodwire.pipeline.core.topics import get_topic, split_topic, stream_topic

Outputs = Iterable[tuple[str, Message]]
REPORT_PERIOD_NS = 1_000_000_000
READY_PROBE_S = 0.05  # a node repeats its ready message this often until it hears it back
READY_TIMEOUT_S = 10.0
WAITING_REPEAT_S = 0.25


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
    flow: FlowPlan = FlowPlan(lossless=False)  # whose watermarks it follows (pipeline/core/flow.py)

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
    """Logic of a source node: yields messages, paced, until exhausted or stopped. A source whose timeline the
    manager starts (a file played in real time) also has ``start_at(t0_ns)``."""

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]: ...


class NodeIO:
    """A node's sockets, with the bookkeeping for ``system.node``."""

    def __init__(self, ctx: NodeContext, inputs: Iterable[str] = ()) -> None:
        self._ctx = ctx
        self.pub = Publisher(ctx.endpoints.internal_pub, ctx.name, hwm=ctx.config.bus.hwm, curve=ctx.curve)
        # every node hears system.progress (readiness, the end of a file; watermarks in lossless mode), and in
        # lossless mode takes every message of its inputs in order: nothing is latest-only
        self.sub = Subscriber(ctx.endpoints.internal_sub, (*inputs, PROGRESS_TOPIC), hwm=ctx.config.bus.hwm,
                              curve=ctx.curve, queue_everything=ctx.flow.lossless)
        self.has_inputs = bool(tuple(inputs))
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
        malformed = self.refused + self.sub.malformed
        error = self.last_error or self.sub.last_error
        stats = NodeStats(name=self._ctx.name, pid=os.getpid(), published=counts, rates_hz=rates,
                          malformed_inputs=malformed, last_error=error, t_capture=now, host=self._ctx.host)
        self.pub.send("system.node", stats)
        self._last_report, self._last_counts = now, counts

    def progress(self, kind: str, stream: str = "", watermark: int = 0) -> None:
        self.pub.send(PROGRESS_TOPIC, Progress(node=self._ctx.name, kind=kind, stream=stream, watermark=watermark,
                                               host=self._ctx.host, t_capture=now_ns()))

    def announce_ready(self) -> list:
        """Say "ready" until this node hears itself: its subscriptions have then reached the bus, so nothing
        sent from now on is lost to it. Returns what else arrived meanwhile, in order."""
        others = []
        deadline = now_ns() + int(READY_TIMEOUT_S * 1e9)
        while not self._ctx.stop.is_set() and now_ns() < deadline:
            self.progress("ready")
            end = now_ns() + int(READY_PROBE_S * 1e9)
            while (got := self.sub.recv(timeout=max(0.0, (end - now_ns()) / 1e9))) is not None:
                if isinstance(got.msg, Progress) and got.msg.kind == "ready" and got.msg.node == self._ctx.name:
                    return others
                others.append(got)
        if not self._ctx.stop.is_set():
            print(f"{self._ctx.name}: did not hear its own ready message within {READY_TIMEOUT_S:g} s; going on",
                  file=sys.stderr, flush=True)
        return others

    def await_downstream(self, nodes: tuple[str, ...], timeout_s: float | None) -> list[str]:
        """A source: say "hello" until every node of ``nodes`` has answered "ready" (it is subscribed: what is
        sent now reaches it), or ``timeout_s`` passes (None: until stopped). The nodes that did not answer."""
        waiting = set(nodes)
        deadline = None if timeout_s is None else now_ns() + int(timeout_s * 1e9)
        while waiting and not self._ctx.stop.is_set() and (deadline is None or now_ns() < deadline):
            self.progress("hello")
            end = now_ns() + int(READY_PROBE_S * 1e9)
            while (got := self.sub.recv(timeout=max(0.0, (end - now_ns()) / 1e9))) is not None:
                if isinstance(got.msg, Progress) and got.msg.kind == "ready":
                    waiting.discard(got.msg.node)
        return sorted(waiting)

    def await_start(self) -> int:
        """A real-time file source: say "waiting" until the manager starts the timeline; its t0 (0 if stopped).
        Repeated, so a manager that subscribed late still hears it."""
        while not self._ctx.stop.is_set():
            self.progress("waiting")
            end = now_ns() + int(WAITING_REPEAT_S * 1e9)
            while (got := self.sub.recv(timeout=max(0.0, (end - now_ns()) / 1e9))) is not None:
                if isinstance(got.msg, Progress) and got.msg.kind == "start" and got.msg.host == self._ctx.host:
                    return got.msg.t0
        return 0

    def refuse(self, topic: str, exc: BadInput) -> None:
        self.refused += 1
        self.last_error = f"refused a {topic} message: {exc}"
        print(f"{self._ctx.name}: {self.last_error}", file=sys.stderr, flush=True)

    def close(self) -> None:
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


def advance(step: object, stream: str, watermark: int) -> Outputs:
    """Tell ``step`` that its input on ``stream`` is complete below ``watermark`` (``END``: complete), for
    the steps that decide by it: ``advance(watermark)`` of a one-stream step, ``advance_stream`` of
    ``PerStream``. What it publishes then."""
    inner = step.step if isinstance(step, OneAtATime) else step
    if hasattr(inner, "advance_stream"):
        return inner.advance_stream(stream, watermark)
    return inner.advance(watermark) if hasattr(inner, "advance") else ()


def holdback(step: object, stream: str) -> int | None:
    """The earliest event time ``step`` may still publish on ``stream`` from what it holds (None: no limit)."""
    inner = step.step if isinstance(step, OneAtATime) else step
    if hasattr(inner, "holdback_stream"):
        return inner.holdback_stream(stream)
    return inner.holdback() if hasattr(inner, "holdback") else None


class InputFlow:
    """A consuming node's side of pipeline/core/flow.py: its producers' watermarks per stream; in lossless
    mode its own, published after each change; everywhere its ``END`` once its producers have all ended."""

    def __init__(self, ctx: NodeContext, io: NodeIO, step: object) -> None:
        self.plan = ctx.flow
        self.io, self.step = io, step
        self.inputs: dict[str, Watermarks] = {}
        self.published: dict[str, int] = {}

    def on_progress(self, msg: Progress) -> Outputs:
        """Outputs the step makes as its input watermark moves; its own watermark published after them. A
        source's "hello" is answered "ready": this node hears it, so it will hear what the source sends."""
        if msg.kind == "hello":
            self.io.progress("ready")
            return []
        marks = self.inputs.setdefault(msg.stream, Watermarks(self.plan.upstream))
        if not marks.update(msg) or marks.value is None:
            return []
        wm = marks.value
        if not self.plan.lossless and wm < END:
            return []
        out = list(advance(self.step, msg.stream, wm))
        self._after(msg.stream, wm, out)
        return out

    def _after(self, stream: str, wm: int, out: list) -> None:
        """Publish ``out``, then this node's watermark: ``wm``, held back by what the step still holds."""
        for topic, m in out:
            self.io.publish(topic, m)
        out.clear()
        held = holdback(self.step, stream) if wm < END else None  # at the end the step has let go of everything
        own = wm if held is None else min(wm, held)
        last = self.published.get(stream)
        if (last is None or own > last) and due(own, last):
            self.published[stream] = own
            self.io.progress("watermark", stream, own)


def run_step(ctx: NodeContext, step: Step, poll_s: float = 0.1) -> None:
    """Feed ``step`` each message from the bus, checked first (``accept``), and ``idle`` after ``poll_s``
    without one; publish what it makes. A refused message (BadInput) is reported and the next one follows."""
    run_batch_step(ctx, OneAtATime(step), poll_s, max_batch=1)


def run_batch_step(ctx: NodeContext, step: BatchStep, poll_s: float = 0.1, max_batch: int = 64) -> None:
    """``run_step``, handing the step every message that has arrived (up to ``max_batch``) in one call.
    ``system.progress`` drives the flow (``InputFlow``); in lossless mode ``idle`` is never called: what a
    step decides by the wall clock it decides there by watermarks."""
    io = NodeIO(ctx, step.inputs)
    flow = InputFlow(ctx, io, step)
    try:
        early = io.announce_ready()
        while not ctx.stop.is_set():
            if not io.has_inputs:  # a step without inputs only idles, once a poll period
                ctx.stop.wait(poll_s)
            batch, early = (early, []) if early else (_waiting(io.sub, poll_s, max_batch), [])
            if not batch and ctx.flow.lossless:
                io.report_if_due()
                continue
            for part in _runs(batch):
                _handle_part(io, flow, step, part)
            io.report_if_due()
    finally:
        io.close()


def _runs(batch: list) -> list[list]:
    """``batch`` cut into runs of data messages and single progress messages, in order; [] stays [[]]
    (one idle turn)."""
    runs: list[list] = [[]]
    for got in batch:
        if isinstance(got.msg, Progress):
            runs.extend([[got], []])
        else:
            runs[-1].append(got)
    return [r for r in runs if r] or [[]]


def _handle_part(io: NodeIO, flow: InputFlow, step: BatchStep, part: list) -> None:
    if len(part) == 1 and isinstance(part[0].msg, Progress):
        for topic, msg in flow.on_progress(part[0].msg):
            io.publish(topic, msg)
        return
    try:
        outputs = step.process_batch(_accepted(io, step.inputs, part)) if part else step.idle(now_ns())
        for topic, msg in outputs:
            io.publish(topic, msg)
    except BadInput as exc:  # the step cannot use these: say so and go on with the next
        io.refuse(", ".join(sorted({got.topic for got in part})) or "(idle)", exc)
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
    """Publish what ``source`` yields, on the stream ``sources.stream`` names, once this node is heard on the
    bus; in lossless mode each message only when the nodes downstream have come near enough
    (``Backpressure``), followed by this source's watermark. At the end of its input, ``END``."""
    io = NodeIO(ctx)
    stream = ctx.config.sources.stream
    pressure = Backpressure(ctx.flow, stream) if ctx.flow.lossless else None
    start: int | None = None
    published: int | None = None
    try:
        io.announce_ready()
        # in lossless mode nothing may be lost, so every node downstream must be listening first, however long
        # its models take to load; in real time a node that is not there within the limit misses the start
        deaf = io.await_downstream(ctx.flow.downstream, None if ctx.flow.lossless else READY_TIMEOUT_S)
        if deaf and not ctx.stop.is_set():
            print(f"{ctx.name}: {', '.join(deaf)} not listening after {READY_TIMEOUT_S:g} s; sending anyway",
                  file=sys.stderr, flush=True)
        if ctx.t0_ns == 0 and hasattr(source, "start_at"):  # the manager starts the timeline once all are ready
            source.start_at(io.await_start())
        for topic, msg in source.messages(ctx.stop):
            t = event_time(msg)
            start = t if start is None else start
            _hear(io, pressure, timeout=0)
            while pressure is not None and pressure.behind(t, start) and not ctx.stop.is_set():
                _hear(io, pressure, timeout=0.05)
            io.publish(stream_topic(topic, stream), msg)
            if pressure is not None and due(t + 1, published):
                published = t + 1
                io.progress("watermark", stream, published)
        if not ctx.stop.is_set():
            io.progress("watermark", stream, END)
    finally:
        io.close()


def _hear(io: NodeIO, pressure: Backpressure | None, timeout: float) -> None:
    """Take the progress messages that have arrived (the first waiting up to ``timeout``)."""
    got = io.sub.recv(timeout=timeout)
    while got is not None:
        if pressure is not None and isinstance(got.msg, Progress):
            pressure.on_progress(got.msg)
        got = io.sub.recv(timeout=0)
