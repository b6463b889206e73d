"""Speech made by espeak-ng (Debian package espeak-ng): single sentences and scripts of
sentences with silences between them, at 16 kHz mono int16, with where each sentence lies.

Used by the sample clip, the speech tests and the ASR tools (tools/asr_wer.py). espeak-ng's
-s (words per minute), -p (pitch 0-99) and -a (amplitude 0-200) make the same words faster,
higher or louder.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_RATE, resample_linear


class EspeakMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Voice:
    speed_wpm: int = 150
    pitch: int = 50
    amplitude: int = 100
    name: str = "en-us"

    def args(self) -> list[str]:
        return ["-v", self.name, "-s", str(self.speed_wpm), "-p", str(self.pitch), "-a", str(self.amplitude)]


@dataclass(frozen=True)
class Span:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class SpokenScript:
    samples: np.ndarray  # (n,) int16 at AUDIO_RATE
    spans: list[Span]  # where each sentence's audio lies


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(sentence: str, voice: Voice = Voice()) -> np.ndarray:
    """espeak-ng's rendering of ``sentence`` at 16 kHz mono int16."""
    if not espeak_available():
        raise EspeakMissing("espeak-ng is not installed: apt-get install espeak-ng (tools/setup.sh does it)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", *voice.args(), "-w", str(wav), sentence], check=True, capture_output=True)
        rate, samples = read_wav(wav)
    return resample_linear(samples, rate, AUDIO_RATE)


def spoken_script(sentences: list[str], gap_s: float = 1.5, lead_s: float = 0.5,
                  voice: Voice = Voice()) -> SpokenScript:
    """The sentences one after another: ``lead_s`` of silence first, ``gap_s`` after each one."""
    return joined_script([(speak(sentence, voice), sentence) for sentence in sentences], gap_s, lead_s)


def joined_script(clips: Sequence[tuple[np.ndarray, str]], gap_s: float = 1.5, lead_s: float = 0.5) -> SpokenScript:
    """16 kHz clips (with their text) one after another: ``lead_s`` of silence first, ``gap_s`` after each."""
    pieces = [np.zeros(int(lead_s * AUDIO_RATE), np.int16)]
    spans, cursor = [], pieces[0].size
    for speech, text in clips:
        spans.append(Span(cursor / AUDIO_RATE, (cursor + speech.size) / AUDIO_RATE, text))
        pieces += [np.asarray(speech, np.int16), np.zeros(int(gap_s * AUDIO_RATE), np.int16)]
        cursor += speech.size + pieces[-1].size
    return SpokenScript(np.concatenate(pieces), spans)


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """(sample rate, mono int16 samples) of a 16-bit PCM WAV file."""
    with wave.open(str(path)) as fh:
        if fh.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * fh.getsampwidth()}-bit samples; only 16-bit PCM WAV is read here")
        data = np.frombuffer(fh.readframes(fh.getnframes()), dtype=np.int16)
        return fh.getframerate(), data.reshape(-1, fh.getnchannels())[:, 0].copy()


def write_wav(path: str | Path, samples: np.ndarray, rate: int = AUDIO_RATE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(np.asarray(samples, dtype=np.int16).tobytes())
    return path


def load_sentences(path: str | Path) -> list[str]:
    """One sentence per line; blank lines and lines starting with # are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
