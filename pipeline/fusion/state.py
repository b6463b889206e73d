"""What fusion knows: face estimates per track with capture times, the utterances heard, and the
liveness of its inputs. Messages go in; ``Estimate``s (pipeline/fusion/model.py) come out.

How each source becomes an ``Estimate`` (the rules are here, in one place):

- face: the track's 7 expression probabilities; valence/arousal of the face rule (circumplex-v1);
  confidence = how far the top probability stands above chance, ``(max p - 1/7) / (1 - 1/7)``
  (a uniform softmax says nothing: 0; a one-hot one: 1).
- voice: arousal of the prosody rule with ``VoiceAffect.confidence``; valence and class
  probabilities only when a trained voice model gave them (valence only with a
  ``valence_confidence`` above 0, which weighs the voice's valence on its own: the model's
  low valence confidence never borrows the prosody rule's). The modality's confidence (its
  weight, its say in the classes) is the arousal rule's. An utterance without a voiced frame
  (``valid: false``) gives none.
- text: ``TextAffect`` probabilities, valence, arousal and confidence; a failed or empty
  transcript (``valid: false``) gives none, and its note says why.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.core.messages import (FaceTrack, FaceTracks, SpeechEvent, SystemHealth, TextAffect, Transcript,
                                             UtteranceAudio, VoiceAffect)
from moodwire.pipeline.fusion.model import Estimate
from moodwire.pipeline.fusion.speaker import OPENNESS_WEIGHTS, audio_envelope, mouth_openness

CHANCE = 1.0 / len(LABELS)
FACE_HISTORY_S = 40.0  # face estimates kept per track: twice vad.hard_max_s's default, the longest utterance
TRACK_FORGET_S = 60.0  # a track unseen this long is dropped
UTTERANCE_STALE_S = 60.0  # an utterance untouched this long is dropped unpublished (its end never came)
HEALTH_FRESH_S = 3.0  # a system.health report counts for this long
REMEMBER_DONE = 256
NS = 1_000_000_000


def reorder(probs: list[float] | np.ndarray, labels: list[str]) -> np.ndarray | None:
    """``probs`` in ``LABELS`` order; None when they cannot be (missing classes, wrong length)."""
    p = np.asarray(probs, np.float32).ravel()
    if not labels:
        return p if len(p) == len(LABELS) else None
    if len(labels) != len(p) or set(LABELS) - set(labels):
        return None
    if tuple(labels) == LABELS:
        return p
    index = {name: i for i, name in enumerate(labels)}
    return p[[index[name] for name in LABELS]]


def face_confidence(probs: np.ndarray) -> float:
    return float(np.clip((float(np.max(probs)) - CHANCE) / (1.0 - CHANCE), 0.0, 1.0))


def face_estimate(track: FaceTrack, labels: list[str], t_capture: int, source: str = "") -> Estimate | None:
    """The face's estimate, dated by the frame the expression model last saw (``expression_age_ms``), so the
    published ``age_ms`` says how old its scores are."""
    probs = reorder(track.expression, labels)
    if probs is None:
        return None
    seen = t_capture - round(track.expression_age_ms * 1e6)
    return Estimate("face", probs, float(track.valence), float(track.arousal), face_confidence(probs), seen,
                    source=source)


def voice_estimate(msg: VoiceAffect) -> Estimate | str:
    """The voice estimate of one utterance, or why there is none."""
    if not msg.valid:
        return "no voiced speech in the utterance"
    probs = reorder(msg.probs, msg.labels) if msg.probs else None
    valence = msg.valence if msg.valence is not None and msg.valence_confidence > 0 else None
    note = "" if probs is not None else "arousal only: no trained voice model, no class probabilities"
    source = "; ".join(part for part in (f"arousal rule:{msg.arousal_rule}", msg.model) if part)
    return Estimate("voice", probs, valence, float(msg.arousal), float(msg.confidence), msg.t_end,
                    msg.utterance_id, note, va_confidence=(float(msg.valence_confidence), float(msg.confidence)),
                    source=source)


def text_estimate(msg: TextAffect) -> Estimate | str:
    """The text estimate of one transcript, or why there is none."""
    if not msg.valid:
        return msg.note or "text.affect not valid"
    probs = reorder(msg.probs, msg.labels)
    if probs is None:
        return f"text.affect labels {msg.labels} do not match the face classes"
    return Estimate("text", probs, float(msg.valence), float(msg.arousal), float(msg.confidence), msg.t_end,
                    msg.utterance_id, source=msg.method)


def envelope(msg: UtteranceAudio) -> list[tuple[int, float]]:
    """(capture ns, RMS in [0, 1]) of each 20 ms frame of one audio piece (speaker.py's envelope)."""
    return audio_envelope(np.asarray(msg.samples, np.int16), msg.t_capture, msg.sample_rate)


# ------------------------------------------------------------------ faces


@dataclass
class FaceSample:
    t_capture: int
    estimate: Estimate
    mouth: float | None


@dataclass
class LatestFaces:
    """The newest face.tracks: its capture time, validity and an estimate per track."""

    t_capture: int
    frame_index: int
    valid: bool
    tracks: dict[int, Estimate]


class FaceState:
    """The newest face.tracks, and per track a history of estimates and mouth openness."""

    def __init__(self) -> None:
        self.latest: LatestFaces | None = None
        self.history: dict[int, deque[FaceSample]] = {}

    def update(self, msg: FaceTracks) -> None:
        if self.latest is not None and msg.t_capture <= self.latest.t_capture:
            return  # an older frame than one already known (a restarted face node catching up)
        has_mouth = set(OPENNESS_WEIGHTS) <= set(msg.blendshape_names)
        source = msg.model_source()
        tracks = {}
        for track in msg.faces:
            est = face_estimate(track, msg.expression_labels, msg.t_capture, source)
            if est is None:
                continue
            tracks[track.track_id] = est
            mouth = mouth_openness(track.blendshapes, msg.blendshape_names) if has_mouth else None
            self._append(track.track_id, FaceSample(msg.t_capture, est, mouth))
        self.latest = LatestFaces(msg.t_capture, msg.frame_index, msg.valid, tracks)
        self._forget(msg.t_capture)

    def span(self, track_id: int, t_start: int, t_end: int) -> list[FaceSample]:
        return [s for s in self.history.get(track_id, ()) if t_start <= s.t_capture <= t_end]

    def tracks_in(self, t_start: int, t_end: int) -> list[int]:
        return [tid for tid, samples in self.history.items()
                if any(t_start <= s.t_capture <= t_end for s in samples)]

    def _append(self, track_id: int, sample: FaceSample) -> None:
        samples = self.history.setdefault(track_id, deque())
        samples.append(sample)
        while samples and sample.t_capture - samples[0].t_capture > FACE_HISTORY_S * NS:
            samples.popleft()

    def _forget(self, now_capture: int) -> None:
        for tid in [t for t, s in self.history.items() if now_capture - s[-1].t_capture > TRACK_FORGET_S * NS]:
            del self.history[tid]


# ------------------------------------------------------------------ speech


@dataclass
class Utterance:
    """One utterance as heard so far. ``ended_at`` is the step clock when its end became known."""

    utterance_id: int
    t_start: int
    t_end: int = 0
    t_speech_end: int = 0  # from speech.vad's end: the last audio judged speech
    ended_at: int | None = None
    acoustic_sent: bool = False  # its first record (stage "acoustic") is out
    end_reason: str = ""
    transcript: Transcript | None = None  # the final one
    voice: VoiceAffect | None = None
    text: TextAffect | None = None  # of the final transcript
    envelope: list[tuple[int, float]] = field(default_factory=list)
    touched_at: int = 0

    def end(self, t_end: int, now: int, reason: str = "") -> None:
        if self.ended_at is None:
            self.ended_at = now
        self.t_end = t_end or self.t_end
        self.end_reason = reason or self.end_reason


class SpeechState:
    """Utterances in progress or waiting for their results; the newest voice and text estimates."""

    def __init__(self) -> None:
        self.open: dict[int, Utterance] = {}
        self.done: deque[int] = deque(maxlen=REMEMBER_DONE)
        self.voice: Estimate | None = None  # newest usable voice estimate (any utterance)
        self.text: Estimate | None = None
        self.speakers: dict[int, int | None] = {}  # utterance id -> attributed track, once published
        self.failed: dict[str, tuple[int, str]] = {}  # modality -> (t_end, why) of its newest unusable estimate

    def on_vad(self, msg: SpeechEvent, now: int) -> None:
        utt = self._get(msg.utterance_id, msg.t_start, now)
        if utt is not None and msg.kind == "end":
            utt.end(msg.t_end, now, msg.reason)
            utt.t_speech_end = msg.t_speech_end

    def on_audio(self, msg: UtteranceAudio, now: int) -> None:
        utt = self._get(msg.utterance_id, msg.t_start, now)
        if utt is None:
            return
        utt.envelope.extend(envelope(msg))
        if msg.final:  # published before the vad end: the end is known even if that event is lost
            utt.end(msg.t_capture + int(len(msg.samples) * NS / msg.sample_rate), now)

    def on_transcript(self, msg: Transcript, now: int) -> None:
        if not msg.final:
            return
        utt = self._get(msg.utterance_id, msg.t_start, now)
        if utt is not None:
            utt.transcript = msg
            utt.end(msg.t_end, now)

    def on_voice(self, msg: VoiceAffect, now: int) -> None:
        self.voice = self._newer(self.voice, voice_estimate(msg), "voice", msg.t_end)
        utt = self._get(msg.utterance_id, msg.t_start, now)
        if utt is not None:
            utt.voice = msg
            utt.end(msg.t_end, now)

    def on_text(self, msg: TextAffect, now: int) -> None:
        est = text_estimate(msg)
        if msg.final or isinstance(est, Estimate):  # only a final transcript's failure counts
            self.text = self._newer(self.text, est, "text", msg.t_end)
        utt = self._get(msg.utterance_id, msg.t_start, now) if msg.final else None
        if utt is not None:
            utt.text = msg

    def _newer(self, current: Estimate | None, est: Estimate | str, modality: str, t_end: int) -> Estimate | None:
        """The newer of ``current`` and ``est``; an unusable ``est`` (why, as text) is kept as the failure."""
        if isinstance(est, str):
            self.failed[modality] = (t_end, est)
            return current
        return est if current is None or est.t_capture >= current.t_capture else current

    def in_progress(self) -> bool:
        return any(u.ended_at is None for u in self.open.values())

    def finish(self, utt: Utterance, speaker: int | None) -> None:
        self.open.pop(utt.utterance_id, None)
        self.done.append(utt.utterance_id)
        self.speakers[utt.utterance_id] = speaker
        while len(self.speakers) > 16:
            del self.speakers[next(iter(self.speakers))]

    def prune(self, now: int) -> None:
        for uid in [u for u, x in self.open.items() if now - x.touched_at > UTTERANCE_STALE_S * NS]:
            del self.open[uid]

    def _get(self, utterance_id: int, t_start: int, now: int) -> Utterance | None:
        if utterance_id in self.done:
            return None  # already published: a late message changes nothing
        utt = self.open.setdefault(utterance_id, Utterance(utterance_id, t_start))
        utt.touched_at = now
        return utt


# ------------------------------------------------------------------ liveness


class Liveness:
    """When each input topic last arrived (step clock), and which nodes system.health says are down."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self._down: dict[str, str] = {}
        self._health_at: int | None = None

    def seen(self, topic: str, now: int) -> None:
        self.last[topic] = now

    def silent_for(self, topic: str, now: int) -> float | None:
        """Seconds since ``topic`` last arrived; None if it never did."""
        t = self.last.get(topic)
        return None if t is None else (now - t) / NS

    def on_health(self, msg: SystemHealth, now: int) -> None:
        # "stalled" (alive, no report for a few seconds: e.g. a long decode) is not down: the
        # modality's own timeouts decide, as they would for a slow node
        self._down = {n.name: n.state for n in msg.nodes
                      if not n.alive or n.state not in ("running", "stalled")}
        self._health_at = now

    def node_down(self, name: str, now: int) -> str:
        """"" or why system.health says the node is not running (e.g. "backoff")."""
        if self._health_at is None or now - self._health_at > HEALTH_FRESH_S * NS:
            return ""
        return self._down.get(name, "")
