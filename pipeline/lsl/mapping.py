"""What moodwire's messages become on the Lab Streaming Layer (docs/lsl.md): samples and markers, as plain data.

- ``moodwire-affect`` (type ``Affect``, regular at the video's frame rate): one sample per ``affect.frame``
  with ``frame_index`` and, per person slot, fused valence, arousal, confidence and the 7 class
  probabilities. Slot 0 is the person without a face (voice and text only); slots 1..N are faces, each
  given the first free slot when it appears and keeping it while it is in view. An empty slot is NaN.
- ``moodwire-utterances`` (type ``Markers``, irregular, one string channel): one JSON marker per
  ``affect.utterance`` record (both stages), stamped at the utterance's end.

Timestamps are the messages' capture times. On the bus host moodwire's clock (``now_ns``) and LSL's
``local_clock()`` are both CLOCK_MONOTONIC, so a frame's stamp is its capture time exactly; run the outlet
there (docs/lsl.md). A new pipeline run (``system.health``'s ``run_id``) is marked with a marker
``{"event": "run started"}``; the outlets stay. A message that cannot be mapped is skipped and counted.
pylsl itself is only in pipeline/lsl/outlet.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, Message, PersonAffect, SystemHealth

AFFECT_STREAM, MARKER_STREAM = "moodwire-affect", "moodwire-utterances"
PER_PERSON = ("valence", "arousal", "confidence", *(f"p_{label}" for label in LABELS))
VOICE_SLOT = "voice"  # slot 0's name: the person without a face
NS = 1_000_000_000


def channel_names(face_slots: int) -> list[str]:
    """``frame_index``, then each slot's channels: ``voice_valence``, ..., ``face1_valence``, ..."""
    slots = [VOICE_SLOT] + [f"face{i}" for i in range(1, face_slots + 1)]
    return ["frame_index"] + [f"{slot}_{name}" for slot in slots for name in PER_PERSON]


def unit(channel: str) -> str:
    """LSL's ``unit`` of a channel: valence and arousal are in [-1, 1], confidence in [0, 1]."""
    if channel == "frame_index":
        return "count"
    return "probability" if "_p_" in channel else "normalized"


@dataclass
class Slots:
    """Face track id -> slot 1..N: the first free slot when a face appears, kept while it is in view."""

    size: int
    by_track: dict[int, int] = field(default_factory=dict)
    overflow: int = 0  # faces that found no free slot (counted, not sent)

    def assign(self, track_ids: list[int]) -> dict[int, int]:
        for gone in [t for t in self.by_track if t not in track_ids]:
            del self.by_track[gone]
        for track in track_ids:
            if track in self.by_track:
                continue
            free = next((s for s in range(1, self.size + 1) if s not in self.by_track.values()), None)
            if free is None:
                self.overflow += 1
            else:
                self.by_track[track] = free
        return self.by_track


@dataclass
class LslMapper:
    """Turns moodwire messages into LSL samples and markers (plain data: no pylsl here)."""

    face_slots: int = 4
    slots: Slots = field(init=False)
    run_id: str = ""
    skipped: int = 0  # messages that could not be mapped
    last_error: str = ""

    def __post_init__(self) -> None:
        self.slots = Slots(self.face_slots)

    @property
    def channels(self) -> list[str]:
        return channel_names(self.face_slots)

    def sample(self, frame: AffectFrame) -> tuple[list[float], float]:
        """The frame's sample and its LSL timestamp (capture time, seconds)."""
        out = [float(frame.frame_index)] + [math.nan] * (len(self.channels) - 1)
        persons = frame.persons if frame.valid else []
        slots = self.slots.assign([p.track_id for p in persons if p.track_id is not None])
        for person in persons:
            slot = 0 if person.track_id is None else slots.get(person.track_id)
            if slot is not None:
                start = 1 + slot * len(PER_PERSON)
                out[start:start + len(PER_PERSON)] = person_values(person)
        return out, frame.t_capture / NS

    def marker(self, utt: AffectUtterance) -> tuple[str, float]:
        """The utterance's JSON marker and its timestamp (the utterance's end, seconds)."""
        body = {"utterance_id": utt.utterance_id, "stage": utt.stage, "text": utt.text.strip(),
                "label": top_label(utt.labels, utt.probs), "valence": _finite(utt.valence),
                "arousal": _finite(utt.arousal), "confidence": _finite(utt.confidence),
                "speaker_track_id": utt.speaker_track_id, "start_s_before_end": (utt.t_end - utt.t_start) / NS}
        return json.dumps(body, ensure_ascii=False), utt.t_end / NS

    def run_marker(self, health: SystemHealth) -> tuple[str, float] | None:
        """A marker when a new pipeline run starts (not for the first one seen); the face slots start afresh."""
        if not health.run_id or health.run_id == self.run_id:
            return None
        first, self.run_id = not self.run_id, health.run_id
        if first:
            return None
        self.slots = Slots(self.face_slots)
        return json.dumps({"event": "run started", "run_id": health.run_id}), health.t_capture / NS

    def map(self, msg: Message) -> tuple[str, Any, float] | None:
        """``("affect", sample, t)``, ``("marker", text, t)`` or None; a message it cannot map is skipped."""
        try:
            if isinstance(msg, AffectFrame):
                return ("affect", *self.sample(msg))
            if isinstance(msg, AffectUtterance):
                return ("marker", *self.marker(msg))
            if isinstance(msg, SystemHealth):
                marked = self.run_marker(msg)
                return None if marked is None else ("marker", *marked)
        except (TypeError, ValueError, IndexError) as exc:  # a message with fields of the wrong kind
            self.skipped += 1
            self.last_error = str(exc)
        return None


def person_values(person: PersonAffect) -> list[float]:
    probs = dict(zip(person.labels, person.probs))
    return [float(person.valence), float(person.arousal), float(person.confidence),
            *(float(probs.get(label, math.nan)) for label in LABELS)]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
