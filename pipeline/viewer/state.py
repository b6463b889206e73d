"""What the viewer holds between messages: recent video frames, their face.tracks and affect.frame
(joined by ``frame_index``), a short valence-arousal trail per person, and the last words heard.

A video frame is drawn once its affect.frame has come (fusion publishes it after the frame's
face.tracks), or ``WAIT_NS`` after it came without one (fusion down or slow): the viewer shows
what it has and says what is missing rather than stall.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, FaceTracks, Message, Transcript, VideoFrame
from moodwire.pipeline.viewer.draw import Overlay

TRAIL_LENGTH = 30  # points per person: one second at 30 fps
KEEP_FRAMES = 60  # video frames / face.tracks / affect.frame kept while waiting to be joined
WAIT_NS = 250_000_000


@dataclass
class ViewState:
    frames: OrderedDict[int, tuple[int, VideoFrame]] = field(default_factory=OrderedDict)  # index -> (arrival, frame)
    tracks: OrderedDict[int, FaceTracks] = field(default_factory=OrderedDict)
    affect: OrderedDict[int, AffectFrame] = field(default_factory=OrderedDict)
    trails: dict[int | None, deque] = field(default_factory=dict)
    transcript: str = ""

    def add(self, msg: Message, now: int) -> None:
        if isinstance(msg, VideoFrame):
            _keep(self.frames, msg.frame_index, (now, msg))
        elif isinstance(msg, FaceTracks):
            _keep(self.tracks, msg.frame_index, msg)
        elif isinstance(msg, AffectFrame):
            _keep(self.affect, msg.frame_index, msg)
        elif isinstance(msg, Transcript):
            self.transcript = f"> {msg.text.strip()}" + ("" if msg.final else " ...")
        elif isinstance(msg, AffectUtterance) and msg.text:
            top = top_label(msg.labels, msg.probs) or "?"
            who = f"#{msg.speaker_track_id}" if msg.speaker_track_id is not None else "?"
            self.transcript = f"{who} [{top}, v {msg.valence:+.2f}] {msg.text.strip()}"

    def ready(self, now: int) -> list[tuple[np.ndarray, Overlay]]:
        """The frames to draw now, oldest first, each with its overlay; they leave the state."""
        out = []
        for index in list(self.frames):
            arrived, frame = self.frames[index]
            affect = self.affect.get(index)
            if affect is None and now - arrived < WAIT_NS:
                break  # frames go out in order: a later one waits for this one
            del self.frames[index]
            if affect is not None:
                self._extend_trails(affect)
            out.append((frame.image, Overlay(self.tracks.get(index), affect,
                                             {k: list(v) for k, v in self.trails.items()}, self.transcript)))
        return out

    def _extend_trails(self, affect: AffectFrame) -> None:
        seen = set()
        for person in affect.persons:
            seen.add(person.track_id)
            self.trails.setdefault(person.track_id, deque(maxlen=TRAIL_LENGTH)).append(
                (person.valence, person.arousal))
        for gone in set(self.trails) - seen:
            del self.trails[gone]  # a person no longer in view keeps no trail


def _keep(store: OrderedDict, key: int, value) -> None:
    store[key] = value
    while len(store) > KEEP_FRAMES:
        store.popitem(last=False)
