"""``Latest``: the current fused estimate of a person, with its age, for control loops."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from moodwire.endpoint import DEFAULT_ENDPOINT
from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.keys import CurveClient
from moodwire.pipeline.core.link_watch import LinkWatch
from moodwire.pipeline.core.messages import AffectFrame, PersonAffect, SystemHealth
from moodwire.timing import age_s
from moodwire.watch import client_subscriber, log


@dataclass(frozen=True)
class PersonEstimate:
    """One person of the newest ``affect.frame``, and how old that frame is.

    ``age_s`` is now minus the frame's ``t_capture`` (the camera frame's capture time), measured
    when the estimate was read. ``stale`` is True when ``age_s`` exceeds the max age asked for:
    the stream has stopped or fallen behind, so do not act on the values.
    """

    person: PersonAffect
    frame_index: int
    t_capture: int  # monotonic ns (moodwire.pipeline.core.clock.now_ns), as on the wire
    age_s: float
    stale: bool

    @property
    def track_id(self) -> int | None:
        return self.person.track_id

    @property
    def valence(self) -> float:
        return self.person.valence

    @property
    def arousal(self) -> float:
        return self.person.arousal

    @property
    def confidence(self) -> float:
        return self.person.confidence

    @property
    def label(self) -> str:
        """The steady label: the most probable category once it has led for ``fusion.label_hold_s``."""
        return top_label(self.person)


class Latest:
    """Keeps the newest ``affect.frame``; ``person()`` reads it. Thread-safe.

    A background thread (the subscriber's) receives continuously and keeps only the newest frame,
    so reading is instant and never sees an old backlog. ``curve``: keys for a CURVE-secured
    endpoint (``moodwire.curve_keys``). Extra keyword arguments go to ``moodwire.pipeline.core.bus.Subscriber``.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, max_age_s: float = 0.5,
                 curve: CurveClient | None = None, **subscriber_kwargs: Any) -> None:
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s}")
        self.max_age_s = max_age_s
        self._watch = LinkWatch(endpoint, ["affect.frame"], log.warning)
        self._sub = client_subscriber(endpoint, ["affect.frame", "system.health"], curve=curve, watch=self._watch,
                                      **subscriber_kwargs)
        self._lock = threading.Lock()
        self._frame: AffectFrame | None = None
        self._run_id = ""
        self._run_changed = False

    def frame(self) -> AffectFrame | None:
        """The newest ``affect.frame`` received, or None before the first (or since a new run started)."""
        with self._lock:
            while (got := self._sub.recv(0)) is not None:
                if isinstance(got.msg, AffectFrame):
                    self._frame = got.msg
                elif isinstance(got.msg, SystemHealth) and got.msg.run_id and got.msg.run_id != self._run_id:
                    self._new_run(got.msg.run_id)
            return self._frame

    @property
    def run_id(self) -> str:
        """The pipeline run's id (``system.health``, once a second); "" before the first report."""
        self.frame()
        return self._run_id

    def run_changed(self) -> bool:
        """True once after the pipeline has restarted (a new ``run_id``): its frame indices, utterance ids
        and smoothing start again, so reset what the application keeps across frames."""
        self.frame()
        with self._lock:
            changed, self._run_changed = self._run_changed, False
        return changed

    def _new_run(self, run_id: str) -> None:
        if self._run_id:  # not the first run seen
            self._run_changed = True
            self._frame = None  # the old run's
        self._run_id = run_id

    def frame_age_s(self) -> float | None:
        """Seconds since the newest frame's capture; None before the first frame."""
        frame = self.frame()
        return None if frame is None else age_s(frame.t_capture)

    def persons(self, *, max_age_s: float | None = None) -> list[PersonEstimate]:
        """Every person of the newest frame ([] before the first frame, or when no one is seen)."""
        frame = self.frame()
        if frame is None:
            return []
        age = age_s(frame.t_capture)
        stale = age > (self.max_age_s if max_age_s is None else max_age_s)
        return [PersonEstimate(p, frame.frame_index, frame.t_capture, age, stale) for p in frame.persons]

    def person(self, track_id: int | None = None, *, max_age_s: float | None = None) -> PersonEstimate | None:
        """The person with face ``track_id`` or, when None, the most confident person of the newest frame.

        None when that person is not in the newest frame (or nothing has arrived). Check
        ``stale`` before acting: it is True when the frame is older than ``max_age_s``
        (default: the one given to ``Latest``).
        """
        everyone = self.persons(max_age_s=max_age_s)
        if track_id is not None:
            return next((e for e in everyone if e.track_id == track_id), None)
        # most confident; on a tie, a person with a face before the voice-only one
        return max(everyone, key=lambda e: (e.confidence, e.track_id is not None), default=None)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the first frame; True once there is one. On False it logs
        (once) what it waited for and how to check."""
        deadline = time.monotonic() + timeout
        while self.frame() is None:
            if time.monotonic() >= deadline:
                self._watch.tell()
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self._sub.close()

    def __enter__(self) -> "Latest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
