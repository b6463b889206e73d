"""The ASR node's logic: speech.audio pieces in, speech.transcript out.

Pieces are joined per utterance (by ``utterance_id``, in offset order). Decoding work is placed
so that it never stands in front of a final transcript:

* The final piece is decoded at once, in ``process``.
* Everything else is decoded in ``idle``, which the node loop calls only when no input is
  waiting, so never while a final piece is already queued.
* Speculative final: when the audio received so far ends in a pause of ``PAUSE_S`` (by the VAD's
  ``speech_end``: the speaker may have stopped and the VAD is counting its hangover), it is decoded
  in ``idle`` straight away. If the speech has not gone on by the final piece, that decode IS the
  final transcript, published the moment the final piece arrives; the VAD's hangover is spent
  decoding instead of waiting.
* A partial transcript (``final=False``) comes once the utterance is longer than
  ``partial_after_s``, at the first pause after ``partial_every_s`` of new audio (the speculative
  decode serves as the partial), or after ``NO_PAUSE_FACTOR`` times that without a pause (counted
  from the last partial, or from ``partial_after_s``). Partials wait for pauses
  because a decode cannot be stopped: one begun mid-word just before the speaker stops would
  stand in front of the final.

Faults do not stop the node: a gap between pieces is filled with silence (word times stay
right) and named in ``Transcript.error`` with ``valid`` kept True, as the words are usable; a
failed decode gives a Transcript with ``valid=False`` and the error. An utterance whose final
piece never comes (VAD restarted) is closed when a newer utterance starts or after ``stale_s``.
"""

from __future__ import annotations

import collections
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_RATE, PAUSE_S
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import AsrConfig, Config
from moodwire.pipeline.core.messages import Message, Transcript, UtteranceAudio, Word
from moodwire.pipeline.core.node import BadInput, Outputs

if TYPE_CHECKING:
    from moodwire.pipeline.asr.transcriber import Transcription

TOPIC_OUT = "speech.transcript"
SPECULATE_MIN_S = 0.5  # shorter audio is not worth a speculative decode
NO_PAUSE_FACTOR = 3  # without a pause, a partial after this many partial periods of new audio


class Transcribes(Protocol):
    def transcribe(self, samples: np.ndarray) -> Transcription: ...


@dataclass(frozen=True)
class StepSettings:
    partial_every_s: float = 1.0
    partial_after_s: float = 3.0
    language: str = "en"
    stale_s: float = 10.0  # no piece for this long (wall time): close the utterance with what came

    @classmethod
    def from_config(cls, config: AsrConfig) -> "StepSettings":
        return cls(config.partial_every_s, config.partial_after_s, config.language)


@dataclass
class _Decoded:
    """A decode of the first ``length`` samples (speech up to ``speech_end``): its result, or why it failed."""

    length: int
    speech_end: int
    result: Transcription | None = None
    error: str = ""


@dataclass
class _Utterance:
    """Audio of one utterance so far; ``base`` is the offset of its first sample kept."""

    utterance_id: int
    t_start: int
    sample_rate: int
    base: int
    chunks: list[np.ndarray] = field(default_factory=list)
    length: int = 0
    valid: bool = True
    notes: list[str] = field(default_factory=list)
    partial_at: int = 0  # length at the last partial
    speech_end: int = -1  # from the VAD, counted from ``base`` like ``length``; -1: not known (all speech)
    speculation: _Decoded | None = None
    last_arrival: int = 0

    def add(self, msg: UtteranceAudio) -> None:
        samples = msg.samples
        expected = self.base + self.length
        if msg.offset > expected:
            missing = msg.offset - expected
            self.notes.append(f"gap: {self._ms(missing)} ms missing before offset {msg.offset} (filled with silence)")
            self._append(np.zeros(missing, np.int16))
        elif msg.offset < expected:
            repeated = min(expected - msg.offset, samples.size)
            self.notes.append(f"overlap: {self._ms(repeated)} ms at offset {msg.offset} already received (dropped)")
            samples = samples[repeated:]
        self._append(samples)
        self.valid = self.valid and msg.valid
        self.speech_end = msg.speech_end - self.base if msg.speech_end >= 0 else -1

    def _append(self, samples: np.ndarray) -> None:
        if samples.size:
            self.chunks.append(samples)
            self.length += samples.size

    def _ms(self, samples: int) -> int:
        return round(samples * 1000 / self.sample_rate)

    def audio(self) -> np.ndarray:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0] if self.chunks else np.zeros(0, np.int16)

    def ns_at(self, sample: float) -> int:
        """Capture time of a sample index counted from ``base``."""
        return self.t_start + round((self.base + sample) * 1e9 / self.sample_rate)

    def in_pause(self) -> bool:
        """Whether the audio so far ends in a pause of PAUSE_S, by the VAD's ``speech_end`` (not known: no). The
        VAD sends a pause's audio but its last sample, kept for the final piece: one sample short counts."""
        return self.speech_end >= 0 and self.length + 1 - self.speech_end >= round(PAUSE_S * self.sample_rate)


class AsrStep:
    inputs = ("speech.audio",)

    def __init__(self, transcriber: Transcribes, model_name: str, settings: StepSettings = StepSettings(),
                 clock: Callable[[], int] = now_ns) -> None:
        self.transcriber = transcriber
        self.model_name = model_name
        self.settings = settings
        self.clock = clock
        self.reused_speculations = 0  # finals published from a speculative decode (tests, benchmarks)
        self._open: dict[int, _Utterance] = {}
        self._closed: collections.deque[int] = collections.deque(maxlen=64)  # late pieces of these are dropped

    def fresh(self) -> "AsrStep":
        """For another stream: the same transcriber, no open utterances."""
        return AsrStep(self.transcriber, self.model_name, self.settings, self.clock)

    def process(self, topic: str, msg: Message) -> Outputs:
        _check(topic, msg)
        if msg.utterance_id in self._closed:
            return ()
        out = [self._finish(u, "final piece never arrived: a newer utterance started")
               for uid, u in list(self._open.items()) if uid < msg.utterance_id]
        u = self._open.get(msg.utterance_id)
        if u is None:
            u = self._open[msg.utterance_id] = _Utterance(msg.utterance_id, msg.t_start, msg.sample_rate, msg.offset)
            if msg.offset > 0:
                u.notes.append(f"started mid-utterance: audio before offset {msg.offset} never arrived")
        u.add(msg)
        u.last_arrival = self.clock()
        if msg.final:
            out.append(self._finish(u))
        return [(TOPIC_OUT, t) for t in out]

    def idle(self, now: int) -> Outputs:
        """Close stale utterances; else make at most one decode: a partial and/or a speculative final."""
        stale = [u for u in self._open.values() if now - u.last_arrival > self.settings.stale_s * 1e9]
        if stale:
            return [(TOPIC_OUT, self._finish(u, f"final piece never arrived within {self.settings.stale_s:g} s"))
                    for u in stale]
        for u in self._open.values():
            speculate = self._speculation_due(u)
            partial = self._partial_due(u, at_pause=u.in_pause())
            if not (partial or speculate):
                continue
            decoded = self._decode(u)
            if speculate:
                u.speculation = decoded
            if partial:
                u.partial_at = u.length
                return [(TOPIC_OUT, self._transcript(u, decoded, final=False))]
            return ()
        return ()

    def _partial_due(self, u: _Utterance, at_pause: bool) -> bool:
        s = self.settings
        if u.length < s.partial_after_s * u.sample_rate:
            return False
        if at_pause:
            return u.length - u.partial_at >= s.partial_every_s * u.sample_rate
        since = max(u.partial_at, round(s.partial_after_s * u.sample_rate))  # the first: counted from partial_after_s
        return u.length - since >= NO_PAUSE_FACTOR * s.partial_every_s * u.sample_rate

    def _speculation_due(self, u: _Utterance) -> bool:
        """At a pause whose speech has not been decoded yet (more silence changes nothing)."""
        return (u.length >= SPECULATE_MIN_S * u.sample_rate and u.in_pause()
                and (u.speculation is None or u.speculation.speech_end != u.speech_end))

    def _finish(self, u: _Utterance, note: str = "") -> Transcript:
        del self._open[u.utterance_id]
        self._closed.append(u.utterance_id)
        if note:
            u.notes.append(note)
        spec = u.speculation
        if spec is not None and not spec.error and 0 <= u.speech_end <= spec.length:
            self.reused_speculations += 1
            return self._transcript(u, spec, final=True)
        return self._transcript(u, self._decode(u), final=True)

    def _decode(self, u: _Utterance) -> _Decoded:
        audio = u.audio()
        if u.sample_rate != AUDIO_RATE:
            from moodwire.pipeline.core.audio import resample_linear

            audio = resample_linear(audio, u.sample_rate, AUDIO_RATE)
        if audio.size == 0:
            return _Decoded(u.length, u.speech_end, error="no audio arrived for this utterance")
        try:
            return _Decoded(u.length, u.speech_end, self.transcriber.transcribe(audio))
        except Exception as exc:  # a bad decode must not take the node down
            return _Decoded(u.length, u.speech_end, error=f"decode failed: {type(exc).__name__}: {exc}")

    def _transcript(self, u: _Utterance, decoded: _Decoded, final: bool) -> Transcript:
        """The message for the audio up to now; ``decoded`` may cover less of it (a speculative
        decode followed by silence only)."""
        result = decoded.result
        words = [Word(word=w.word, t_start=u.ns_at(w.start_s * u.sample_rate),
                      t_end=u.ns_at(w.end_s * u.sample_rate), probability=w.probability)
                 for w in (result.words if result else [])]
        t_end = u.ns_at(u.length)
        return Transcript(t_capture=t_end, valid=u.valid and not decoded.error, utterance_id=u.utterance_id,
                          t_start=u.t_start, t_end=t_end, text=result.text if result else "", words=words,
                          final=final, language=self.settings.language, model=self.model_name,
                          audio_s=u.length / u.sample_rate, decode_ms=round(result.decode_ms, 1) if result else 0.0,
                          error="; ".join([*u.notes, decoded.error] if decoded.error else u.notes))


def _check(topic: str, msg: Message) -> None:
    """BadInput (run_step reports it and goes on) for what cannot be utterance audio."""
    if not isinstance(msg, UtteranceAudio):
        raise BadInput(f"{topic}: expected UtteranceAudio, got {type(msg).__name__}")
    if msg.sample_rate <= 0 or msg.samples.ndim != 1 or msg.samples.dtype != np.int16:
        raise BadInput(f"speech.audio of utterance {msg.utterance_id}: samples {msg.samples.dtype} "
                       f"{msg.samples.shape} at {msg.sample_rate} Hz; expected mono int16, shape (n,)")


def build_asr_step(config: Config | None = None, progress: Callable[[str], None] | None = None) -> AsrStep:
    """Find (or join) the configured model, load it offline, warm it up. Progress goes to ``progress``
    (default: stderr, the node's log), with a status line every few seconds while a part is slow."""
    from moodwire.pipeline.asr.models import asr_model
    from moodwire.pipeline.asr.transcriber import Transcriber
    from moodwire.pipeline.core.progress import Progress

    config = config or Config()
    with Progress(progress or sys.stderr).step("asr model") as step:
        model = asr_model(config.asr)
        step(f"loading {model.name} on {config.asr.device}/{config.asr.compute_type}, {config.asr.threads} "
             f"thread(s), beam {config.asr.beam_size}")
        transcriber = Transcriber(model, config.asr)
        step("warming up (one decode)")
        step(f"warm-up decode {transcriber.warm_up():.0f} ms")
    return AsrStep(transcriber, model.name, StepSettings.from_config(config.asr))

