"""Flow control of a run over a file: readiness, watermarks, back-pressure and the end of the run.

Every node speaks on ``system.progress`` (``Progress`` messages):

- **ready**: a node's sockets are up and its subscriptions have reached the bus (it has heard its
  own ready message come back), so what a source sends from then on reaches it.
- **watermark** (lossless mode, ``sources.pace = "lossless"``, ``moodwire analyze``): node N on
  stream S will publish nothing more whose *event time* (``event_time``) is below W. A source's
  watermark follows what it has sent; any other node's is the smallest of its producers' (the
  nodes whose topics it takes, ``FlowPlan.upstream``), taken after it has processed everything
  they sent before, and held back further by state it still holds (``holdback``: the VAD's
  unclassified audio). ``END`` says the node has processed its whole input and published
  everything: the run is over when every node has said it. This is event time with watermarks
  as in Apache Flink and Beam; fusion decides a frame or an utterance only once the watermark of
  every input has passed it (pipeline/fusion/ordered.py), so what it publishes does not depend on
  arrival order or machine speed.
- **back-pressure**: a lossless source sends a message of event time t only once every node
  downstream has a watermark of at least t - ``AHEAD_S`` (t - ``TAKES_AHEAD_S`` for the nodes that
  take the source's own topic, whose queues hold its frames): the run goes as fast as its slowest
  node, and no queue grows without bound.
- In real time only ``END`` travels: at the end of a file each node says when it has finished
  what it holds, so the last utterance is published before the run stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moodwire.pipeline.core.messages import (Message, Progress, SpeechEvent, TextAffect, Transcript, UtteranceAudio,
                                             VoiceAffect)

END = 1 << 62  # the watermark of a node that has finished: later than any capture time
TAKES_AHEAD_S = 0.3  # a node that takes the source's own topic (its frames queue there) is at most this far behind
AHEAD_S = 8.0  # any other node downstream (it holds no frames: the ASR, fusion) is at most this far behind
PROGRESS_TOPIC = "system.progress"
WATERMARK_STEP_NS = 100_000_000  # a watermark is published when it has moved this far (or ends): a lower one is
# always safe, and fusion and back-pressure need no finer steps; it keeps system.progress to about 10 Hz a node
LOSSLESS_HWM = 100_000  # lossless mode: ZeroMQ never drops (back-pressure bounds what is in flight instead)


def due(watermark: int, published: int | None) -> bool:
    """Whether a node publishes ``watermark``, having published ``published`` last."""
    return published is None or watermark >= END or watermark - published >= WATERMARK_STEP_NS


def event_time(msg: Message) -> int:
    """The capture time a message is about, by which fusion orders it: the end of the audio or utterance it
    covers for speech messages (they are complete only then), else ``t_capture``."""
    if isinstance(msg, UtteranceAudio):
        return msg.t_capture + round(len(msg.samples) * 1e9 / msg.sample_rate) if msg.sample_rate else msg.t_capture
    if isinstance(msg, SpeechEvent):
        return msg.t_end if msg.kind == "end" else msg.t_capture
    if isinstance(msg, (Transcript, VoiceAffect, TextAffect)):
        return msg.t_end
    return msg.t_capture


@dataclass(frozen=True)
class FlowPlan:
    """Who a node waits for: the producers of its inputs (``upstream``), and for a source every node its
    messages reach (``downstream``), those that take its own topic in ``takes``."""

    lossless: bool
    upstream: tuple[str, ...] = ()
    downstream: tuple[str, ...] = ()
    takes: tuple[str, ...] = ()

    def ahead_s(self, node: str) -> float:
        return TAKES_AHEAD_S if node in self.takes else AHEAD_S


@dataclass
class Watermarks:
    """The newest watermark of each upstream node on one stream; the input watermark is their smallest."""

    upstream: tuple[str, ...]
    marks: dict[str, int] = field(default_factory=dict)

    def update(self, msg: Progress) -> bool:
        """Take a watermark; True when the input watermark moved."""
        if msg.kind != "watermark" or msg.node not in self.upstream:
            return False
        before = self.value
        self.marks[msg.node] = max(msg.watermark, self.marks.get(msg.node, msg.watermark))
        return self.value != before

    @property
    def value(self) -> int | None:
        """The input watermark; None until every upstream node has given one."""
        if not self.upstream or any(n not in self.marks for n in self.upstream):
            return None
        return min(self.marks[n] for n in self.upstream)


class Backpressure:
    """What a lossless source waits for: every downstream node within its window of the next message."""

    def __init__(self, plan: FlowPlan, stream: str) -> None:
        self.plan = plan
        self.stream = stream
        self.marks: dict[str, int] = {}

    def on_progress(self, msg: Progress) -> None:
        if msg.kind == "watermark" and msg.stream == self.stream and msg.node in self.plan.downstream:
            self.marks[msg.node] = max(msg.watermark, self.marks.get(msg.node, msg.watermark))

    def behind(self, t: int, start: int) -> list[str]:
        """The nodes too far behind for a message of event time ``t`` (a node that has said nothing yet
        counts as being at ``start``, the first message's time)."""
        return [n for n in self.plan.downstream if self.marks.get(n, start) < t - int(self.plan.ahead_s(n) * 1e9)]
