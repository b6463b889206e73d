"""The voice node's logic: speech.audio (+ speech.transcript) in, one voice.affect per utterance out.

An utterance's audio comes in contiguous pieces; the piece with ``final`` closes it. By default
(``voice.wait_transcript_s`` = 0) the step publishes at once, so fusion's first record of the utterance
has the voice at the end of speech, and the rate comes from syllable nuclei. With a wait it waits up to
that long for the utterance's final transcript, whose word timings give the speaking rate
("asr-words"); when none comes in time (no ASR node, a slow or failed
decode, no words) or the ASR is unsure of its words (another language than its model's, noise:
prosody.MIN_WORD_PROBABILITY), the rate comes from syllable nuclei of the energy envelope ("energy-peaks").
A final transcript that arrives before the audio's final piece is kept until the audio closes.

Out: prosody features, the rule's arousal (pipeline/voice/arousal_rule.py) against the stream's speaker
baseline (pipeline/voice/baseline.py, which learns from each utterance), and, only when a trained
model (voice.model) or a model profile (voice.profile) is configured, its 7 probabilities and a
low-confidence valence. Without a model ``valence``
is None: speech without words says little about valence. ``t_capture`` is the capture time just after
the utterance's last sample, so ``t_publish - t_capture`` is the delay after the end of speech.
An utterance with no voiced frame (silence, noise, empty audio) is published with ``valid: false``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from moodwire.engines.engine import Stopwatch
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.messages import Message, Transcript, UtteranceAudio, VoiceAffect
from moodwire.pipeline.core.node import Outputs
from moodwire.pipeline.voice.arousal_rule import RULE_NAME, estimate_arousal
from moodwire.pipeline.voice.baseline import SpeakerBaseline
from moodwire.pipeline.voice.model import VoiceClassifier
from moodwire.pipeline.voice.prosody import prosody_features, words_per_second

STALE_NS = 60 * 1_000_000_000  # an utterance or transcript untouched this long is dropped (its peer never came)
MAX_WAITING_TRANSCRIPTS = 64
REMEMBER_DONE = 256  # ids of published utterances: late pieces and transcripts for them are ignored


@dataclass
class _Utterance:
    utterance_id: int
    t_start: int
    sample_rate: int
    pieces: list[tuple[int, np.ndarray]] = field(default_factory=list)
    valid: bool = True
    closed_at: int | None = None  # step clock when the final piece came
    touched_at: int = 0

    def t_end(self) -> int:
        """Capture ns just after its last sample."""
        samples = max((off + len(s) for off, s in self.pieces), default=0)
        return self.t_start + round(samples * 1e9 / self.sample_rate)

    def audio(self) -> np.ndarray:
        """The pieces joined by their offsets; a gap (a lost piece) is filled with silence."""
        if not self.pieces:
            return np.zeros(0, np.int16)
        first = min(off for off, _ in self.pieces)
        out = np.zeros(max(off + len(s) for off, s in self.pieces) - first, np.int16)
        for off, samples in self.pieces:
            out[off - first:off - first + len(samples)] = samples
        return out


class VoiceStep:
    inputs = ("speech.audio", "speech.transcript")

    def __init__(self, wait_transcript_s: float = 1.0, model: VoiceClassifier | None = None,
                 clock: Callable[[], int] = now_ns) -> None:
        self.wait_transcript_s = wait_transcript_s
        self.wait_ns = int(wait_transcript_s * 1e9)
        self.model = model
        self.clock = clock
        self._open: dict[int, _Utterance] = {}
        self._transcripts: OrderedDict[int, tuple[Transcript, int]] = OrderedDict()
        self._done: deque[int] = deque(maxlen=REMEMBER_DONE)
        self._watches = {k: Stopwatch() for k in ("prosody_ms", "model_ms", "total_ms")}
        self.baseline = SpeakerBaseline()  # one stream, one voice at a time: it restarts for a new voice

    def fresh(self) -> "VoiceStep":
        """For another stream: the same model, its own utterances and speaker baseline."""
        return VoiceStep(self.wait_transcript_s, self.model, self.clock)

    @property
    def timings(self) -> dict[str, float]:
        """Stage times of the last published utterance, in milliseconds."""
        return {k: w.last_ms for k, w in self._watches.items()}

    def process(self, topic: str, msg: Message) -> Outputs:
        now = self.clock()
        if isinstance(msg, UtteranceAudio):
            yield from self._on_audio(msg, now)
        elif isinstance(msg, Transcript):
            yield from self._on_transcript(msg, now)
        yield from self.idle(now)

    def idle(self, now: int) -> Outputs:
        """Publish utterances whose transcript wait ran out; forget what went stale."""
        for utt in [u for u in self._open.values() if u.closed_at is not None and now - u.closed_at >= self.wait_ns]:
            yield "voice.affect", self._finish(utt, None)
        for uid in [u for u, x in self._open.items() if x.closed_at is None and now - x.touched_at > STALE_NS]:
            del self._open[uid]
        for uid in [u for u, (_, seen) in self._transcripts.items() if now - seen > STALE_NS]:
            del self._transcripts[uid]

    def advance(self, watermark: int) -> Outputs:
        """Every transcript of an utterance ending below ``watermark`` has come (pipeline/core/flow.py):
        an utterance still waiting for one gets none, whatever the wall clock says."""
        for utt in [u for u in self._open.values() if u.closed_at is not None and u.t_end() < watermark]:
            yield "voice.affect", self._finish(utt, None)

    def _on_audio(self, msg: UtteranceAudio, now: int) -> Outputs:
        if msg.utterance_id in self._done:
            return
        utt = self._open.setdefault(msg.utterance_id, _Utterance(msg.utterance_id, msg.t_start, msg.sample_rate))
        utt.pieces.append((msg.offset, np.asarray(msg.samples, np.int16).ravel()))
        utt.valid = utt.valid and msg.valid
        utt.touched_at = now
        if not msg.final:
            return
        utt.closed_at = now
        waiting = self._transcripts.pop(msg.utterance_id, None)
        if waiting is not None or self.wait_ns == 0:
            yield "voice.affect", self._finish(utt, waiting[0] if waiting else None)

    def _on_transcript(self, msg: Transcript, now: int) -> Outputs:
        if not msg.final or msg.utterance_id in self._done:
            return  # partials change while the utterance goes on: only the final one counts
        utt = self._open.get(msg.utterance_id)
        if utt is not None and utt.closed_at is not None:
            yield "voice.affect", self._finish(utt, msg)
            return
        self._transcripts[msg.utterance_id] = (msg, now)
        while len(self._transcripts) > MAX_WAITING_TRANSCRIPTS:
            self._transcripts.popitem(last=False)

    def _finish(self, utt: _Utterance, transcript: Transcript | None) -> VoiceAffect:
        del self._open[utt.utterance_id]
        self._done.append(utt.utterance_id)
        with self._watches["total_ms"]:
            return self.analyse(utt.utterance_id, utt.t_start, utt.audio(), utt.sample_rate,
                                transcript, utt.valid)

    def analyse(self, utterance_id: int, t_start: int, samples: np.ndarray, sample_rate: int,
                transcript: Transcript | None = None, valid: bool = True) -> VoiceAffect:
        """One utterance's voice.affect (also usable on its own, e.g. by tools)."""
        usable = transcript is not None and transcript.valid  # a gap note keeps word times right
        words_rate = words_per_second(transcript.words) if usable else None
        with self._watches["prosody_ms"]:
            features = prosody_features(samples, sample_rate, words_rate)
        baseline = self.baseline.observe(features)
        estimate = estimate_arousal(features, baseline)
        voiced = features.voiced_fraction > 0
        msg = VoiceAffect(utterance_id=utterance_id, t_start=t_start,
                          t_end=t_start + int(len(samples) * 1e9 / sample_rate), features=features,
                          arousal=estimate.arousal, arousal_rule=RULE_NAME, confidence=estimate.confidence,
                          valid=valid and voiced, baseline=baseline)
        msg.t_capture = msg.t_end
        self._watches["model_ms"].last_ms = 0.0
        if self.model is not None and voiced:
            with self._watches["model_ms"]:
                pred = self.model.predict(samples, sample_rate)
            msg.labels, msg.probs, msg.model = pred.labels, pred.probs, self.model.description
            msg.valence, msg.valence_confidence = pred.valence, pred.valence_confidence
        return msg


def build_voice_step(config: Config | None = None) -> VoiceStep:
    """The step with the configured trained model, if any (checked and warmed up here)."""
    from moodwire.pipeline.voice.model import load_voice_model
    from moodwire.pipeline.voice.profile_model import load_profile_voice_model

    config = config or Config()
    voice = config.voice
    if voice.model and voice.profile:
        raise ValueError(f"voice.model ({voice.model}) and voice.profile ({voice.profile}) are both set; "
                         "set one of them")
    model: VoiceClassifier | None = None
    if voice.profile:
        model = load_profile_voice_model(voice.profile, voice.engine, voice.threads)
    elif voice.model:
        model = load_voice_model(voice.model, voice.engine, voice.threads)
    return VoiceStep(voice.wait_transcript_s, model)
