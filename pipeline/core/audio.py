"""The bus's audio format (``audio.chunk``: 16 kHz mono int16 in 20 ms chunks) and the two signal helpers
every audio consumer shares: resampling to that rate, and the loudness of frames."""

from __future__ import annotations

import numpy as np

AUDIO_RATE = 16000
AUDIO_CHUNK = 320  # 20 ms at 16 kHz, a frame size webrtcvad accepts
# A pause in speech this long may be the end of the utterance: the VAD sends what it has heard at once and
# ASR starts decoding it while the VAD's hangover (vad.hangover_s) decides whether the speaker goes on.
# Three frames of either VAD (webrtcvad 30 ms, Silero 32 ms); shorter gaps come inside words.
PAUSE_S = 0.09


def resample_linear(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear interpolation to ``target`` Hz, as int16: enough for band-limited speech (espeak-ng's, or a
    resampled utterance handed to a model that wants another rate)."""
    if rate == target:
        return samples.astype(np.int16, copy=False)
    positions = np.arange(0, samples.size, rate / target)
    return np.interp(positions, np.arange(samples.size), samples).astype(np.int16)


def frame_rms(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of each whole ``frame``-sample frame of ``samples`` (a trailing partial frame is dropped),
    in the samples' own units: the one loudness measure of the speaker's voice envelope and the two-face
    clip's speech carrier."""
    x = np.asarray(samples).reshape(-1)
    count = x.size // frame
    frames = x[: count * frame].astype(np.float64).reshape(count, frame)
    return np.sqrt((frames ** 2).mean(axis=1))
