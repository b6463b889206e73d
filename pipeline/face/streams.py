"""The face node for every stream at once: landmarks in parallel, expressions in one model call.

The face node serves every camera on the bus. Each stream has its own ``FaceStep`` (its own
mediapipe landmarker, which keeps state between frames, and its own tracker: ``PerStream``); the
expression model is shared. The node loop (``run_batch_step``) hands over every frame that is
waiting, at most one per stream (video.frame is latest-only, per stream). Then:

1. ``see`` runs for each frame in a thread pool. Each landmarker is called only by its own
   stream's step, and mediapipe releases the GIL, so several cores landmark at once: two threads
   gave 1.9 times the frames of one on this 2-core machine.
2. ONE expression-model call scores the due faces of all those frames (``score_due``).
3. ``finish`` makes each stream's ``face.tracks``, published on that stream's topic.

With one stream this is the one-frame path of ``FaceStep.analyse``, without threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from moodwire.pipeline.core.messages import Message
from moodwire.pipeline.core.node import Outputs
from moodwire.pipeline.core.streams import PerStream
from moodwire.pipeline.core.topics import split_topic, stream_topic
from moodwire.pipeline.face.step import FaceStep, Seen, score_due


class FaceStreams:
    """A ``BatchStep`` over one ``FaceStep`` per stream."""

    def __init__(self, first: FaceStep, threads: int = 0) -> None:
        self.inputs = first.inputs
        self.expression = first.expression
        self.streams = PerStream(first)
        self.threads = threads or os.cpu_count() or 1
        self._pool: ThreadPoolExecutor | None = None

    def process(self, topic: str, msg: Message) -> Outputs:
        return self.process_batch([(topic, msg)])

    def process_batch(self, items: list[tuple[str, Message]]) -> Outputs:
        out: list[tuple[str, Message]] = []
        for round_ in _one_per_stream(items):
            work = [(split_topic(topic)[1], msg) for topic, msg in round_]
            steps = [self.streams.step(stream) for stream, _ in work]
            seen = self._see(steps, [frame for _, frame in work])
            for (stream, _), step, s, scores in zip(work, steps, seen, score_due(self.expression, seen)):
                out.append((stream_topic("face.tracks", stream), step.finish(s, scores)))
        return out

    def idle(self, now: int) -> Outputs:
        return ()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self.streams.close()

    def _see(self, steps: list[FaceStep], frames: list) -> list[Seen]:
        if len(frames) == 1 or self.threads == 1:
            return [step.see(frame) for step, frame in zip(steps, frames)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="moodwire-face")
        return list(self._pool.map(FaceStep.see, steps, frames))


def _one_per_stream(items: list[tuple[str, Message]]) -> list[list[tuple[str, Message]]]:
    """``items`` in rounds in which each stream has one frame, in arrival order (a stream's steps must see
    its frames one after another)."""
    rounds: list[list[tuple[str, Message]]] = []
    for topic, msg in items:
        stream = split_topic(topic)[1]
        target = next((r for r in rounds if all(split_topic(t)[1] != stream for t, _ in r)), None)
        if target is None:
            rounds.append(target := [])
        target.append((topic, msg))
    return rounds
