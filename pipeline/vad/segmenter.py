"""Utterances from per-frame speech decisions: pre-roll, hangover, minimum speech, maximum length.

Pure logic, no audio and no clock: positions are sample indices of one continuous stream
(the step maps them to capture times). Frames are pushed in order and back to back; each may
produce ``Opened`` / ``Closed`` events. An utterance opens only once ``min_speech`` of speech is
seen (so a click is never announced and then taken back), reaching back ``pre_roll`` before the
first speech frame, but never into the previous utterance or across a stream break.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from moodwire.pipeline.core.config import VadConfig
from moodwire.pipeline.vad import SAMPLE_RATE


@dataclass(frozen=True)
class SegmenterSettings:
    """Durations in samples."""

    pre_roll: int
    hangover: int
    min_speech: int
    max_utterance: int
    split_pause: int
    hard_max: int

    @classmethod
    def from_config(cls, vad: VadConfig, rate: int = SAMPLE_RATE) -> "SegmenterSettings":
        def n(seconds: float) -> int:
            return round(seconds * rate)

        return cls(pre_roll=n(vad.pre_roll_s), hangover=n(vad.hangover_s), min_speech=n(vad.min_speech_s),
                   max_utterance=n(vad.max_utterance_s), split_pause=n(vad.split_pause_s),
                   hard_max=n(vad.hard_max_s))


@dataclass(frozen=True)
class Opened:
    start: int  # first sample of the utterance (pre-roll included)
    onset: int  # first sample of the first speech frame
    decided_at: int  # end of the frame that completed min_speech


@dataclass(frozen=True)
class Closed:
    start: int
    end: int  # just after the last sample of the utterance (hangover or pause included)
    speech_end: int  # end of the last frame judged speech
    reason: str  # "pause" | "max_length" | "stream_end"


Event = Union[Opened, Closed]

SILENCE, PENDING, OPEN = "silence", "pending", "open"


class Segmenter:
    """SILENCE -> PENDING (speech seen, less than min_speech) -> OPEN -> SILENCE."""

    def __init__(self, settings: SegmenterSettings, position: int = 0) -> None:
        self.settings = settings
        self.state = SILENCE
        self.position = position  # end of the last frame pushed
        self.floor = position  # pre-roll never reaches before this (last utterance end, stream break)
        self._onset = self._start = self._speech_end = 0
        self._speech_total = 0

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    @property
    def speech_end(self) -> int:
        """End of the last frame judged speech (of the open or last utterance)."""
        return self._speech_end

    @property
    def keep_from(self) -> int:
        """Earliest sample a future ``Opened`` may start at: the caller's audio buffer keeps from here."""
        if self.state == OPEN:
            return self._start
        anchor = self._onset if self.state == PENDING else self.position
        return max(self.floor, anchor - self.settings.pre_roll)

    def push(self, end: int, speech: bool) -> list[Event]:
        """One frame ``[position, end)`` and whether it is speech."""
        start, self.position = self.position, end
        s = self.settings
        if speech:
            if self.state == SILENCE:
                self.state, self._onset, self._speech_total = PENDING, start, 0
            self._speech_end = end
            if self.state == PENDING:
                self._speech_total += end - start
                if self._speech_total >= s.min_speech:
                    return [self._open(end)]
        elif self.state == PENDING and end - self._speech_end >= s.hangover:
            self.state = SILENCE  # a burst shorter than min_speech: dropped
        elif self.state == OPEN:
            pause = end - self._speech_end
            if pause >= s.hangover:
                return [self._close(end, "pause")]
            if end - self._start >= s.max_utterance and pause >= s.split_pause:
                return [self._close(end, "max_length")]
        if self.state == OPEN and end - self._start >= s.hard_max:
            return [self._close(end, "max_length")]
        return []

    def finish(self, reason: str = "stream_end") -> list[Event]:
        """The stream ends or breaks at ``position``: close an open utterance, drop a pending one."""
        events: list[Event] = [self._close(self.position, reason)] if self.state == OPEN else []
        self.state, self.floor = SILENCE, self.position
        return events

    def skip_to(self, position: int) -> None:
        """Continue at a later stream position (after ``finish``), e.g. past a dropped partial frame."""
        if self.state != SILENCE:
            raise RuntimeError("skip_to needs a finished segmenter")
        self.position = self.floor = position

    def _open(self, at: int) -> Opened:
        self.state = OPEN
        self._start = max(self.floor, self._onset - self.settings.pre_roll)
        return Opened(start=self._start, onset=self._onset, decided_at=at)

    def _close(self, end: int, reason: str) -> Closed:
        self.state, self.floor = SILENCE, end
        return Closed(start=self._start, end=end, speech_end=self._speech_end, reason=reason)
