"""Log-mel features of the voice-emotion model, in numpy: the ONE implementation that both
tools/train_voice.py (training) and pipeline/voice/model.py (run time) call, so the model sees the
same numbers in both. ``RECIPE`` is written into the model's sidecar; the run time refuses a model
whose recipe differs from this code's.

Levels are kept absolute (dB re full scale, one fixed affine map, no per-utterance normalisation):
loudness is part of what the model may learn from.
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 512
WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
F_MIN, F_MAX = 50.0, 8000.0
DB_OFFSET, DB_SCALE = -50.0, 20.0  # feature = (dB - DB_OFFSET) / DB_SCALE: speech lands near [-1, 2]
FLOOR_POWER = 1e-10  # -100 dB: digital silence
MIN_FRAMES = 32  # shorter input is padded with silence (the model pools over 8x in time)

RECIPE: dict[str, object] = {
    "name": "logmel-v1", "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "win": WIN, "hop": HOP,
    "window": "hann", "n_mels": N_MELS, "f_min": F_MIN, "f_max": F_MAX, "mel": "htk",
    "db_offset": DB_OFFSET, "db_scale": DB_SCALE, "floor_power": FLOOR_POWER, "min_frames": MIN_FRAMES,
    "input": "int16 mono at 16 kHz, scaled to [-1, 1]", "layout": "(batch, 1, n_mels, frames) float32",
}


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10 ** (mel / 2595.0) - 1.0)


@functools.cache
def mel_filterbank() -> np.ndarray:
    """(N_MELS, N_FFT // 2 + 1) triangular HTK-mel filters, each with unit peak."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.float64(F_MIN)), _hz_to_mel(np.float64(F_MAX)), N_MELS + 2))
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None, :] - lo) / (mid - lo)
    down = (hi - bins[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def logmel(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N_MELS, frames) float32 features of mono audio (int16, or float in [-1, 1]) at 16 kHz."""
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"log-mel features need {SAMPLE_RATE} Hz audio, got {sample_rate} Hz: resample first")
    x = np.asarray(samples)
    x = x.astype(np.float32) / 32768.0 if x.dtype.kind in "iu" else x.astype(np.float32)
    x = np.nan_to_num(x.ravel())
    n_frames = max(MIN_FRAMES, 1 + max(0, x.size - WIN) // HOP)
    x = np.pad(x, (0, max(0, (n_frames - 1) * HOP + WIN - x.size)))
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP][:n_frames]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(WIN).astype(np.float32), N_FFT)) ** 2
    mel = spectrum.astype(np.float32) @ mel_filterbank().T
    db = 10.0 * np.log10(np.maximum(mel, FLOOR_POWER))
    return ((db - DB_OFFSET) / DB_SCALE).T.astype(np.float32)


def model_input(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(1, 1, N_MELS, frames): one utterance as the model's input."""
    return logmel(samples, sample_rate)[None, None]
