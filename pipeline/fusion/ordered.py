"""Fusion in lossless mode: inputs joined by capture time, decided once every input has passed it.

In real time fusion decides by the wall clock: a frame waits ``fusion.frame_wait_s`` for its
face, an utterance ``fusion.utterance_wait_s`` for its results. Over a recording that would make
the output depend on machine speed. ``EventOrder`` instead holds every input message until the
watermark of every producer has passed its event time (pipeline/core/flow.py), then hands the
held messages to the ``FusionStep`` in event-time order, with the step's clock set to each one's
event time. So the step sees the same sequence, at the same "times", whatever order and speed
they arrived at: a frame's face.tracks comes just before the frame; an utterance's audio, end,
transcript, voice and text come together at its end, and an utterance the watermark has passed
is published with what came (``FusionStep.decide_utterances``). ``latency_ms`` is then 0.

Video frames are held without their pixels (fusion needs only their index and time). With the
face node on, fusion does not take ``video.frame`` at all: ``face.tracks`` comes for every frame.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import replace

import numpy as np

from moodwire.pipeline.core.flow import END, event_time
from moodwire.pipeline.core.messages import Message, VideoFrame
from moodwire.pipeline.core.node import Outputs
from moodwire.pipeline.fusion.step import FusionStep

# at one event time: a frame's faces before the frame; an utterance's last audio, then its end, then its results
RANK = {name: i for i, name in enumerate(("face.tracks", "video.frame", "speech.audio", "speech.vad",
                                          "speech.transcript", "voice.affect", "text.affect"))}
NO_PIXELS = np.zeros((0, 0, 3), np.uint8)


class EventOrder:
    """A lossless ``FusionStep``: ``process`` holds, ``advance`` decides."""

    def __init__(self, step: FusionStep, takes_video: bool = True) -> None:
        self.step = step
        self.takes_video = takes_video
        self.inputs = tuple(t for t in step.inputs if t in RANK and (takes_video or t != "video.frame"))
        self._now = 0
        step.clock = lambda: self._now
        self._held: list[tuple[int, int, int, str, Message]] = []
        self._order = itertools.count()

    def fresh(self) -> "EventOrder":
        return EventOrder(self.step.fresh(), self.takes_video)

    def process(self, topic: str, msg: Message) -> Outputs:
        if isinstance(msg, VideoFrame):
            msg = replace(msg, image=NO_PIXELS)
        heapq.heappush(self._held, (event_time(msg), RANK[topic], next(self._order), topic, msg))
        return ()

    def idle(self, now: int) -> Outputs:
        return ()

    def advance(self, watermark: int) -> Outputs:
        """Hand over every held message whose event time is below ``watermark``, in event-time order, then
        publish the utterances the watermark has passed; at ``END``, everything."""
        out = []
        while self._held and self._held[0][0] < watermark:
            t, _, _, topic, msg = heapq.heappop(self._held)
            self._now = max(self._now, t)
            out.extend(self.step.process(topic, msg))
        if watermark >= END:
            return out + self.step.flush(self._now)
        return out + self.step.decide_utterances(watermark, self._now)
