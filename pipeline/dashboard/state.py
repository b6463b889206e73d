"""The dashboard's view of the stream: messages in, one JSON-ready dict out (docs/dashboard.md).

Pure: ``add(msg, t_receive)`` folds a decoded message in and ``view(now)`` builds what the page
shows at monotonic time ``now`` (ns). No sockets, no threads, no clock of its own, so the tests
drive it with made-up times. Every field of the view is documented in docs/dashboard.md.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from moodwire.pipeline.core.affect import modalities_used, top_label
from moodwire.pipeline.core.messages import (AffectFrame, AffectUtterance, FaceTracks, Message, ModalityInput,
                                             PersonAffect, SystemHealth, TextAffect, Transcript, VoiceAffect)

VIEW_VERSION = 1
TOPICS = ["affect.frame", "affect.utterance", "system.health", "speech.transcript", "face.tracks",
          "voice.affect", "text.affect"]
TRAIL_S = 2.0  # circumplex trail per person
SERIES_S = 30.0  # rolling valence/arousal plot
SERIES_STEP_S = 0.1  # at most 10 points a second per person in the plot
RATE_WINDOW_S = 2.0  # frames per second, over the last arrivals
LATENCY_FRAMES = 90  # latency percentiles over the last 3 s at 30 fps
STALE_S = 1.0  # no affect.frame for this long: the page says the stream stopped
UTTERANCES = 20  # transcript lines kept
NO_FACE_KEY = "voice"  # the person without a face (voice and text only), track_id nil on the wire
NS = 1_000_000_000


def person_key(track_id: int | None) -> str:
    """A stable text key per person, for JSON maps and DOM ids."""
    return NO_FACE_KEY if track_id is None else str(track_id)


def _num(value: float | None, digits: int = 4) -> float | None:
    """Rounded for the page; NaN and infinities (JSON has none) as None."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass
class DashboardState:
    """Everything the page shows, kept between messages."""

    frame: AffectFrame | None = None
    frame_received: int = 0
    arrivals: deque = field(default_factory=lambda: deque(maxlen=LATENCY_FRAMES))  # (t_receive, fusion ms, receive ms)
    trails: dict[str, deque] = field(default_factory=dict)  # key -> (t_capture, v, a)
    series: dict[str, deque] = field(default_factory=dict)  # key -> (t_capture, v, a), SERIES_STEP_S apart
    utterances: deque = field(default_factory=lambda: deque(maxlen=UTTERANCES))  # (AffectUtterance, t_receive)
    hearing: Transcript | None = None
    health: SystemHealth | None = None
    health_received: int = 0
    rules: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------ in

    def _add_utterance(self, msg: AffectUtterance, t_receive: int) -> None:
        """An utterance's final record replaces its first (acoustic) one in place."""
        for i, (shown, _) in enumerate(self.utterances):
            if shown.utterance_id == msg.utterance_id:
                self.utterances[i] = (msg, t_receive)
                return
        self.utterances.append((msg, t_receive))

    def add(self, msg: Message, t_receive: int) -> None:
        if isinstance(msg, AffectFrame):
            self._add_frame(msg, t_receive)
        elif isinstance(msg, AffectUtterance):
            self._add_utterance(msg, t_receive)
            if self.hearing is not None and self.hearing.utterance_id == msg.utterance_id:
                self.hearing = None
        elif isinstance(msg, Transcript):
            self.hearing = None if msg.final else msg
        elif isinstance(msg, SystemHealth):
            self.health, self.health_received = msg, t_receive
        else:
            self._add_rule(msg)

    def _add_frame(self, frame: AffectFrame, t_receive: int) -> None:
        if self.frame is not None and frame.frame_index <= self.frame.frame_index and \
                frame.t_capture <= self.frame.t_capture:
            return  # an older frame after a newer one: the view only moves forward
        self.frame, self.frame_received = frame, t_receive
        self.arrivals.append((t_receive, frame.latency_ms, (t_receive - frame.t_capture) / 1e6))
        seen = set()
        for person in frame.persons:
            key = person_key(person.track_id)
            seen.add(key)
            point = (frame.t_capture, person.valence, person.arousal)
            trail = self.trails.setdefault(key, deque())
            trail.append(point)
            _drop_before(trail, frame.t_capture - int(TRAIL_S * NS))
            series = self.series.setdefault(key, deque())
            if not series or frame.t_capture - series[-1][0] >= SERIES_STEP_S * NS:
                series.append(point)
        for gone in set(self.trails) - seen:
            del self.trails[gone]  # a person no longer in view keeps no trail
        for series in self.series.values():
            _drop_before(series, frame.t_capture - int(SERIES_S * NS))
        for key in [k for k, s in self.series.items() if not s]:
            del self.series[key]

    def _add_rule(self, msg: Message) -> None:
        """How each modality's valence/arousal is derived, as the messages name it."""
        if isinstance(msg, FaceTracks) and (msg.va_rule or msg.va_source):
            self.rules["face"] = msg.va_rule or msg.va_source  # a rule's name, or "model:<profile>"
        elif isinstance(msg, VoiceAffect) and msg.arousal_rule:
            baseline = f" (speaker baseline {msg.baseline.state})" if msg.baseline else ""
            self.rules["voice"] = msg.arousal_rule + baseline + (f" + model {msg.model}" if msg.model else "")
        elif isinstance(msg, TextAffect) and msg.method:
            self.rules["text"] = msg.method

    # ------------------------------------------------------------ out

    def view(self, now: int) -> dict[str, Any]:
        """The JSON view at monotonic time ``now`` (ns); its fields are documented in docs/dashboard.md."""
        return {
            "view": VIEW_VERSION,
            "stream": self._stream(now),
            "frame": _frame_view(self.frame),
            "persons": [self._person(p) for p in (self.frame.persons if self.frame else [])],
            "series": {"window_s": SERIES_S, "persons": {
                key: [[_num((t - now) / NS, 2), _num(v), _num(a)] for t, v, a in points]
                for key, points in self.series.items()}},
            "utterances": [_utterance_view(u, now) for u, _ in reversed(self.utterances)],
            "hearing": self.hearing.text.strip() if self.hearing is not None else "",
            "health": self._health(now),
            "latency": self._latency(),
            "rules": dict(self.rules),
        }

    def _stream(self, now: int) -> dict[str, Any]:
        age = None if self.frame is None else (now - self.frame_received) / NS
        recent = [t for t, _, _ in self.arrivals if now - t <= RATE_WINDOW_S * NS]
        span_s = (recent[-1] - recent[0]) / NS if recent else 0.0
        fps = (len(recent) - 1) / span_s if span_s > 0 else 0.0
        return {"alive": age is not None and age <= STALE_S, "frame_age_s": _num(age, 2), "fps": _num(fps, 1)}

    def _person(self, person: PersonAffect) -> dict[str, Any]:
        key = person_key(person.track_id)
        return {
            "key": key,
            "track_id": person.track_id,
            "label": top_label(person),
            "labels": list(person.labels),
            "probs": [_num(p) for p in person.probs],
            "valence": _num(person.valence),
            "arousal": _num(person.arousal),
            "valence_raw": _num(person.valence_raw),
            "arousal_raw": _num(person.arousal_raw),
            "confidence": _num(person.confidence),
            "modalities": {m: _num(w) for m, w in person.modalities.items()},
            "inputs": [_input_view(i) for i in person.inputs],
            "trail": [[_num(v), _num(a)] for _, v, a in self.trails.get(key, ())],
        }

    def _health(self, now: int) -> dict[str, Any] | None:
        if self.health is None:
            return None
        nodes = [{"name": n.name, "alive": n.alive, "state": n.state, "pid": n.pid, "restarts": n.restarts,
                  "uptime_s": _num(n.uptime_s, 1), "rate_hz": _num(n.rate_hz, 1), "last_error": n.last_error}
                 for n in self.health.nodes]
        return {"age_s": _num((now - self.health_received) / NS, 2), "nodes": nodes, "notes": list(self.health.notes)}

    def _latency(self) -> dict[str, Any]:
        fusion = [f for _, f, _ in self.arrivals]
        received = [r for _, _, r in self.arrivals]
        last = self.utterances[-1][0] if self.utterances else None
        return {
            "frames": len(fusion),
            "fusion_ms_p50": _num(_percentile(fusion, 50), 1), "fusion_ms_p90": _num(_percentile(fusion, 90), 1),
            "receive_ms_p50": _num(_percentile(received, 50), 1),
            "receive_ms_p90": _num(_percentile(received, 90), 1),
            "utterance_delay_ms": None if last is None else _num((last.t_publish - last.t_end) / 1e6, 1),
        }


def _drop_before(points: deque, t_min: int) -> None:
    while points and points[0][0] < t_min:
        points.popleft()


def _frame_view(frame: AffectFrame | None) -> dict[str, Any] | None:
    if frame is None:
        return None
    return {"frame_index": frame.frame_index, "valid": frame.valid, "missing": list(frame.missing),
            "notes": dict(frame.notes), "note": frame.note, "latency_ms": _num(frame.latency_ms, 1),
            "fusion_backend": frame.fusion_backend}


def _input_view(inp: ModalityInput) -> dict[str, Any]:
    return {"modality": inp.modality, "present": inp.present, "weight": _num(inp.weight),
            "valence": _num(inp.valence), "arousal": _num(inp.arousal), "confidence": _num(inp.confidence),
            "age_ms": _num(inp.age_ms, 1), "reason": inp.reason}


def _utterance_view(utt: AffectUtterance, now: int) -> dict[str, Any]:
    return {
        "utterance_id": str(utt.utterance_id),  # ns: beyond what a JS number holds exactly
        "text": utt.text.strip(), "stage": utt.stage,
        "label": top_label(utt.labels, utt.probs),
        "valence": _num(utt.valence), "arousal": _num(utt.arousal), "confidence": _num(utt.confidence),
        "duration_s": _num((utt.t_end - utt.t_start) / NS, 2),
        "age_s": _num((now - utt.t_end) / NS, 1),
        "speaker_track_id": utt.speaker_track_id, "speaker_reason": utt.speaker_reason,
        "modalities": modalities_used(utt.inputs),
        "missing": list(utt.missing), "notes": dict(utt.notes),
    }
