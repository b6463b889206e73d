"""moodwire's affect stream as ROS4HRI messages (REP-155, hri_msgs), as plain data: no rclpy here.

``Ros4hriMapper.messages(msg)`` turns one ``affect.frame`` or ``affect.utterance`` into the ROS
messages a ROS4HRI system expects, each a ``RosMessage(topic, msg_type, fields)`` whose
``fields`` are exactly the ROS message's fields (nested maps for ``header``).
examples/ros4hri_bridge.py publishes them with rclpy; docs/ros4hri.md is the mapping table.

- Each person with a face: ``hri_msgs/Expression`` on ``/humans/faces/<face_id>/expression`` per
  frame, and ``/humans/faces/tracked`` (``hri_msgs/IdsList``) lists the faces of every frame.
- The person without a face (voice and text only): there is one microphone and no speaker
  separation, so it is the one voice ``<prefix>voice``: its Expression goes on
  ``/humans/voices/<voice_id>/expression`` (REP-155 defines no expression for voices: an extension
  that standard consumers ignore). The voice is listed on ``/humans/voices/tracked`` while voice or
  text is present in the frame (an utterance is recent).
- Each utterance: ``hri_msgs/LiveSpeech`` (final text) on ``/humans/voices/<voice_id>/speech``, its
  fused Expression on ``/humans/voices/<voice_id>/utterance_expression`` (an extension), and, when
  fusion named the face that spoke it, ``hri_msgs/IdsMatch`` face <-> voice on
  ``/humans/candidate_matches``. The utterance's first record (stage ``acoustic``, at the end of
  speech, no words) gives the Expression and the match at once; its final record all three.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from moodwire.pipeline.core.affect import top_label
from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance, Message, PersonAffect, Word

EXPRESSION_TYPE = "hri_msgs/msg/Expression"
IDS_LIST_TYPE = "hri_msgs/msg/IdsList"
LIVE_SPEECH_TYPE = "hri_msgs/msg/LiveSpeech"
IDS_MATCH_TYPE = "hri_msgs/msg/IdsMatch"

FACES_TRACKED = "/humans/faces/tracked"
VOICES_TRACKED = "/humans/voices/tracked"
CANDIDATE_MATCHES = "/humans/candidate_matches"

# our 7 classes (face.tracks' expression_labels) -> (hri_msgs/Expression constant, its value)
EXPRESSIONS: dict[str, tuple[str, str]] = {
    "angry": ("ANGRY", "angry"),
    "disgust": ("DISGUSTED", "disgusted"),
    "fear": ("SCARED", "scared"),
    "happy": ("HAPPY", "happy"),
    "sad": ("SAD", "sad"),
    "surprise": ("SURPRISED", "surprised"),
    "neutral": ("NEUTRAL", "neutral"),
}
FACE_TYPE, VOICE_TYPE = 2, 4  # hri_msgs/IdsMatch constants FACE and VOICE
SPEECH_MODALITIES = ("voice", "text")


class Ros4hriError(ValueError):
    """A message that cannot be expressed in ROS4HRI terms; the text says which field and why."""


@dataclass(frozen=True)
class RosMessage:
    """One ROS message to publish: topic, type (``package/msg/Name``) and its fields."""

    topic: str
    msg_type: str
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "type": self.msg_type, "msg": self.fields}


@dataclass(frozen=True)
class Ros4hriIds:
    """ROS4HRI ids for moodwire's tracks. A face keeps its id while fusion keeps its ``track_id``
    (the face node's track: a face unseen for 0.5 s comes back as a new one)."""

    prefix: str = "mw_"

    def face(self, track_id: int) -> str:
        return f"{self.prefix}f{track_id}"

    def voice(self) -> str:
        return f"{self.prefix}voice"


@dataclass
class RosClock:
    """Capture times (CLOCK_MONOTONIC ns, as on the wire) as ROS stamps on the wall clock.

    The offset is read once, so stamps of one bridge run keep their spacing exactly.
    """

    offset_ns: int = field(default_factory=lambda: time.time_ns() - time.monotonic_ns())

    def stamp(self, t_ns: int) -> dict[str, int]:
        sec, nanosec = divmod(t_ns + self.offset_ns, 1_000_000_000)
        return {"sec": sec, "nanosec": nanosec}


@dataclass
class Ros4hriMapper:
    """Maps ``affect.frame`` / ``affect.utterance`` onto ROS4HRI messages (see the module doc)."""

    ids: Ros4hriIds = field(default_factory=Ros4hriIds)
    clock: RosClock = field(default_factory=RosClock)
    frame_id: str = ""

    def messages(self, msg: Message) -> list[RosMessage]:
        """The ROS messages for one moodwire message ([] for topics the mapping does not cover)."""
        if isinstance(msg, AffectFrame):
            return self.frame_messages(msg)
        if isinstance(msg, AffectUtterance):
            return self.utterance_messages(msg)
        return []

    def frame_messages(self, frame: AffectFrame) -> list[RosMessage]:
        """Per-face Expressions, the voice's when a person has no face, and both tracked lists.

        An invalid frame (no modality had anything) publishes the lists only: no estimates."""
        header = self.header(frame.t_capture)
        persons = frame.persons if frame.valid else []
        faces = [p for p in persons if p.track_id is not None]
        voice_heard = frame.valid and any(m not in frame.missing for m in SPEECH_MODALITIES)
        out = [RosMessage(FACES_TRACKED, IDS_LIST_TYPE,
                          {"header": header, "ids": [self.ids.face(p.track_id) for p in faces]}),
               RosMessage(VOICES_TRACKED, IDS_LIST_TYPE,
                          {"header": header, "ids": [self.ids.voice()] if voice_heard else []})]
        for person in persons:
            topic = self.voice_topic("expression") if person.track_id is None else \
                f"/humans/faces/{self.ids.face(person.track_id)}/expression"
            out.append(RosMessage(topic, EXPRESSION_TYPE, self.person_expression(person, header)))
        return out

    def utterance_messages(self, u: AffectUtterance) -> list[RosMessage]:
        """LiveSpeech with the final text (the final record only), the utterance's Expression, and the face
        that spoke it (both records: the acoustic one at the end of speech, the final one with the words)."""
        header = self.header(u.t_end)
        out = [] if u.stage != "final" else [RosMessage(self.voice_topic("speech"), LIVE_SPEECH_TYPE,
                                                        {"header": header, "incremental": "", "final": u.text,
                                                         "confidence": speech_confidence(u.words)})]
        if u.valid:
            out.append(RosMessage(self.voice_topic("utterance_expression"), EXPRESSION_TYPE,
                                  expression_fields(u.labels, u.probs, u.valence, u.arousal, u.confidence,
                                                    header)))
        if u.speaker_track_id is not None:
            out.append(RosMessage(CANDIDATE_MATCHES, IDS_MATCH_TYPE, self.speaker_match(u)))
        return out

    def person_expression(self, person: PersonAffect, header: dict[str, Any]) -> dict[str, Any]:
        return expression_fields(person.labels, person.probs, person.valence, person.arousal,
                                 person.confidence, header)

    def speaker_match(self, u: AffectUtterance) -> dict[str, Any]:
        """Face <-> voice. Confidence: the speaker rule's score for that face, clipped to (0, 1]
        (0 would mean "not associated" in IdsMatch); 1 where fusion gave no score."""
        score = u.speaker_scores.get(str(u.speaker_track_id), 1.0)
        return {"id1": self.ids.face(u.speaker_track_id), "id1_type": FACE_TYPE,
                "id2": self.ids.voice(), "id2_type": VOICE_TYPE,
                "confidence": min(1.0, max(0.01, _finite(score, "speaker score")))}

    def voice_topic(self, leaf: str) -> str:
        return f"/humans/voices/{self.ids.voice()}/{leaf}"

    def header(self, t_ns: int) -> dict[str, Any]:
        return {"stamp": self.clock.stamp(t_ns), "frame_id": self.frame_id}


def expression_name(labels: Sequence[str], probs: Sequence[float]) -> str:
    """The hri_msgs/Expression value of the most probable class; "" when there are no probabilities
    (an utterance with voice arousal only: its valence/arousal still count)."""
    label = top_label(labels, probs)
    if not label:
        return ""
    if label not in EXPRESSIONS:
        raise Ros4hriError(f"class {label!r} has no hri_msgs/Expression constant; mapped classes: "
                           f"{', '.join(EXPRESSIONS)} (update moodwire.ros4hri.EXPRESSIONS)")
    return EXPRESSIONS[label][1]


def expression_fields(labels: Sequence[str], probs: Sequence[float], valence: float, arousal: float,
                      confidence: float, header: dict[str, Any]) -> dict[str, Any]:
    """hri_msgs/Expression: the top class, valence and arousal in [-1, 1], and the fused confidence
    in [0, 1] (how far to trust the whole estimate, not the top class's probability)."""
    return {"header": header, "expression": expression_name(labels, probs),
            "valence": _clip(_finite(valence, "valence"), -1.0, 1.0),
            "arousal": _clip(_finite(arousal, "arousal"), -1.0, 1.0),
            "confidence": _clip(_finite(confidence, "confidence"), 0.0, 1.0)}


def speech_confidence(words: Sequence[Word]) -> float:
    """LiveSpeech confidence: the mean of Whisper's word probabilities (a rule); 0 without words."""
    if not words:
        return 0.0
    return _clip(sum(w.probability for w in words) / len(words), 0.0, 1.0)


def _finite(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Ros4hriError(f"{name} is {value!r}; a ROS4HRI message needs a finite number")
    return float(value)


def _clip(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))
