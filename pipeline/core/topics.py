"""The topic registry: the one place that lists every topic on the bus.

Nothing may publish a topic that is not listed here (``Publisher`` checks).
``rate_hz`` is the nominal rate (None for irregular events); ``policy`` says
how subscribers deliver it: LATEST keeps only the newest unread message of the
topic (frames), QUEUED delivers every message in order (events).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from moodwire.pipeline.core.messages import (AffectFrame, AffectUtterance, AudioChunk, ClockProbe, FaceTracks,
                                             Message, NodeStats, Progress, SpeechEvent, SystemHealth, TextAffect, Transcript,
                                             UtteranceAudio, VideoFrame, VoiceAffect)


class Policy(enum.Enum):
    LATEST = "latest"
    QUEUED = "queued"


@dataclass(frozen=True)
class Topic:
    name: str
    msg_type: type[Message]
    rate_hz: float | None
    policy: Policy
    description: str
    # An irregular topic counts as alive for this long after its last message.
    event_alive_s: float = 10.0
    per_stream: bool = True  # False: about the whole pipeline (system.*), on no stream

    def alive_within_s(self, periods: float = 3.0) -> float:
        """How long after its last message the topic still counts as alive."""
        if self.rate_hz:
            return periods / self.rate_hz
        return self.event_alive_s


class UnknownTopicError(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown topic {name!r}: every topic must be listed in pipeline/core/topics.py "
            f"(known: {', '.join(sorted(TOPICS))})"
        )
        self.name = name

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic("video.frame", VideoFrame, 30.0, Policy.LATEST,
              "camera or file frames, BGR uint8"),
        Topic("audio.chunk", AudioChunk, 50.0, Policy.QUEUED,
              "16 kHz mono int16 PCM in 20 ms chunks"),
        Topic("face.tracks", FaceTracks, 30.0, Policy.LATEST,
              "per video frame: tracked faces, landmarks, blendshapes, head pose, expression, rule-based valence/arousal"),
        Topic("speech.vad", SpeechEvent, None, Policy.QUEUED,
              "an utterance starts or ends (capture times; end says why)"),
        Topic("speech.audio", UtteranceAudio, None, Policy.QUEUED,
              "each utterance's audio, in contiguous pieces while it is heard; the final piece closes it"),
        Topic("speech.transcript", Transcript, None, Policy.QUEUED,
              "faster-whisper text with word times: partials during long utterances, then the final"),
        Topic("voice.affect", VoiceAffect, None, Policy.QUEUED,
              "per utterance: prosody features, rule-based arousal, trained-model probabilities if configured"),
        Topic("text.affect", TextAffect, None, Policy.QUEUED,
              "per transcript: 7-class emotion and valence/arousal by similarity to prototype sentences"),
        Topic("affect.frame", AffectFrame, 30.0, Policy.LATEST,
              "fused affect per video frame, per tracked person"),
        Topic("affect.utterance", AffectUtterance, None, Policy.QUEUED,
              "per utterance: transcript, fused affect over its span, per-modality breakdown, speaking face"),
        Topic("system.health", SystemHealth, 1.0, Policy.QUEUED,
              "per node: alive, restarts, output rate, last error", per_stream=False),
        Topic("system.node", NodeStats, 1.0, Policy.QUEUED,
              "each node's own report: messages published, rates, malformed inputs", per_stream=False),
        Topic("system.host", SystemHealth, 1.0, Policy.QUEUED,
              "a joined host's manager: its nodes and its clock offset; merged into system.health",
              per_stream=False),
        Topic("system.progress", Progress, None, Policy.QUEUED,
              "a node is ready; how far it has processed its input (watermarks); the timeline starts",
              per_stream=False),
        Topic("system.clock", ClockProbe, 1.0, Policy.QUEUED,
              "clock probes between a joined host's manager and the bus host's, and their replies",
              per_stream=False),
    )
}


# ------------------------------------------------------------------ streams
# Several cameras and microphones share one bus as streams. The default stream's topics are the names
# above; stream S's are NAME@S (docs/schema.md section 1.1), so a subscriber's prefix "affect.frame"
# takes every stream's, and each stream's messages keep their own latest-only slot.

STREAM_SEPARATOR = "@"  # a stream's id is checked by the config schema (config.STREAM_ID)


def split_topic(topic: str) -> tuple[str, str]:
    """``("affect.frame", "cam2")`` for ``affect.frame@cam2``; the default stream is ``""``."""
    name, _, stream = topic.partition(STREAM_SEPARATOR)
    return name, stream


def stream_topic(name: str, stream: str) -> str:
    """The topic ``name`` carries on ``stream``."""
    return f"{name}{STREAM_SEPARATOR}{stream}" if stream else name


def find_topic(topic: str) -> Topic | None:
    """The registry entry of ``topic`` on any stream, or None."""
    return TOPICS.get(split_topic(topic)[0])


def get_topic(topic: str) -> Topic:
    """The registry entry of ``topic`` (on any stream); UnknownTopicError if it is not registered."""
    spec = find_topic(topic)
    if spec is None:
        raise UnknownTopicError(topic)
    return spec


def topics_with_prefix(prefix: str) -> list[Topic]:
    return [t for name, t in TOPICS.items() if name.startswith(prefix)]


class UnknownPrefixError(ValueError):
    """A subscription prefix that no registered topic (on any stream) starts with: it would deliver nothing."""


def check_prefix(prefix: str) -> None:
    """UnknownPrefixError, listing the topics, unless some topic of the registry, or a stream of one
    (``NAME@STREAM``), starts with ``prefix`` ('' takes every topic)."""
    name, sep, _ = prefix.partition(STREAM_SEPARATOR)
    if sep and name in TOPICS and TOPICS[name].per_stream:
        return
    if not sep and any(topic.startswith(prefix) for topic in TOPICS):
        return
    raise UnknownPrefixError(f"no topic starts with {prefix!r}, so it would deliver nothing; the topics are: "
                             f"{', '.join(TOPICS)} (a prefix such as 'affect.' takes several; a stream's "
                             "topics are NAME@STREAM)")
