"""faster-whisper, loaded from a local directory only, set up for short utterances.

Settings and why: the VAD has already cut the speech (``vad_filter=False``); each utterance is
decoded on its own (``condition_on_previous_text=False``: no text carried between utterances,
which also stops a hallucination from repeating); word timestamps give the voice node its
speaking rate and fusion its word alignment. The first decode of a fresh model is slower than the
next ones (allocations, caches), so ``warm_up`` pays that before the first utterance arrives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moodwire.engines.registry import ModelError
from moodwire.pipeline.asr.models import AsrModel
from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.config import AsrConfig

WARM_UP_S = 1.0


@dataclass(frozen=True)
class TimedWord:
    word: str
    start_s: float  # from the first sample given to transcribe()
    end_s: float
    probability: float


@dataclass(frozen=True)
class Transcription:
    text: str
    words: list[TimedWord] = field(default_factory=list)
    audio_s: float = 0.0
    decode_ms: float = 0.0


class Transcriber:
    """One WhisperModel; ``transcribe`` takes 16 kHz mono int16 (or float32 in [-1, 1])."""

    def __init__(self, model: AsrModel, config: AsrConfig) -> None:
        self.model = model
        self.config = config
        self._whisper = _load(model, config)

    def transcribe(self, samples: np.ndarray) -> Transcription:
        audio = _as_float(samples)
        audio_s = audio.size / AUDIO_RATE
        if audio.size == 0:
            return Transcription("", [], 0.0, 0.0)
        t0 = time.perf_counter()
        segments, _ = self._whisper.transcribe(
            audio, language=self.config.language or None, beam_size=self.config.beam_size,
            vad_filter=False, word_timestamps=True, condition_on_previous_text=False)
        segments = list(segments)  # decoding happens while the generator is consumed
        decode_ms = (time.perf_counter() - t0) * 1000.0
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        words = [TimedWord(w.word.strip(), _clamp(w.start, audio_s), _clamp(w.end, audio_s), float(w.probability))
                 for s in segments for w in (s.words or []) if w.word.strip()]
        return Transcription(text, words, audio_s, decode_ms)

    def warm_up(self) -> float:
        """Decode WARM_UP_S of faint noise once; returns how long it took (ms)."""
        noise = np.random.default_rng(0).normal(0, 30, int(WARM_UP_S * AUDIO_RATE)).astype(np.int16)
        return self.transcribe(noise).decode_ms


def _load(model: AsrModel, config: AsrConfig) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise ModelError("ASR needs faster-whisper: pip install --no-deps faster-whisper==1.2.1 and "
                         "pip install -e '.[speech]' (bash tools/setup.sh does both)") from None
    try:
        return WhisperModel(str(model.directory), device=config.device, compute_type=config.compute_type,
                            cpu_threads=config.threads, num_workers=1, local_files_only=True)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"cannot load the ASR model {model.name} from {model.directory} on "
                         f"{config.device}/{config.compute_type}: {exc}") from None


def _as_float(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples).reshape(-1)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)


def _clamp(value: float, hi: float) -> float:
    return float(min(max(value, 0.0), hi))
