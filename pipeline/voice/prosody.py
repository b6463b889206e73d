"""Prosody of one utterance from its samples, in numpy only (fast enough to run per utterance on a CPU).

Everything here is numpy, chosen so a 5 s utterance costs tens of milliseconds (tools/bench_voice.py).
librosa's pYIN and spectral features were not adopted: they would bring librosa, scipy, scikit-learn
and numba into the default install for measures computed here from the tracker's own FFT; not measured.

- Frames of 40 ms every 10 ms (``FRAME_S``, ``HOP_S``): 40 ms holds two periods of a 50 Hz voice.
- F0: the autocorrelation method of Boersma (1993) without his path finder: per Hann-windowed frame,
  the normalised autocorrelation divided by the window's own autocorrelation, the best peak between
  ``F0_MAX_HZ`` and ``F0_MIN_HZ`` refined by a parabola, and a voicing decision (peak height at least
  ``VOICING_THRESHOLD`` in a frame loud enough to be speech). Isolated octave errors are not corrected.
- Energy: RMS level per frame in dBFS (0 dBFS = an RMS of full scale, so a full-scale sine is -3 dBFS).
  Frames within ``ACTIVE_RANGE_DB`` of the loudest and above ``SILENCE_DBFS`` count as "active" speech;
  the VAD's pre-roll and hangover silence is thereby left out of the levels and the rate.
- Speaking rate without words: syllable nuclei after de Jong & Wempe (2009), simplified: voiced peaks
  of the level track that stand out by ``NUCLEUS_DIP_DB`` from the dip before them, per second of
  active speech (an articulation rate, pauses excluded).
- Spectral balance (alpha ratio, Hammarberg index, spectral slopes: spectral.py) from the average
  power spectrum of the voiced frames, the same FFT as the pitch tracker's.
- Pauses: the share of frames between the first and the last active one that are not active.
- Voice quality: local jitter and shimmer from glottal cycles marked in the waveform (cycles.py,
  Praat's definitions); HNR from each voiced frame's autocorrelation peak r as 10 log10(r / (1 - r)),
  Boersma's (1993) frame-based method, which is how Praat's "Harmonicity (ac)" measures it too
  (Praat uses windows of 4.5 periods; 40 ms frames hold 2-20).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from moodwire.pipeline.core.messages import VoiceFeatures, Word
from moodwire.pipeline.voice.cycles import jitter_shimmer
from moodwire.pipeline.voice.spectral import NOT_MEASURED, spectral_balance

FRAME_S = 0.040
HOP_S = 0.010
F0_MIN_HZ = 50.0
F0_MAX_HZ = 500.0
VOICING_THRESHOLD = 0.5  # normalised autocorrelation peak; Boersma's default is 0.45
SILENCE_DBFS = -80.0  # a guard for digital silence: speech is found relative to the loudest frame, not by gain
ACTIVE_RANGE_DB = 35.0  # frames this far below the loudest frame are pauses or background
NUCLEUS_DIP_DB = 2.0  # de Jong & Wempe's dip between two syllable peaks
NUCLEUS_BELOW_MAX_DB = 25.0  # a syllable peak is at most this far below the loudest frame
HNR_R_MAX = 0.999  # caps HNR at 30 dB
OCTAVE_RATIO = 0.85  # a shorter-lag peak this close to the best one wins
OUTLIER_RATIO = 1.5  # F0 this far from its neighbours' median is a tracking error, dropped
OUTLIER_SPAN = 5  # frames either side for that median
OUTLIER_GLOBAL = 2 ** 1.5  # F0 over 1.5 octaves from the utterance's median F0 is dropped too

# Whisper's words for speech in a language its model does not know (espeak-ng German through tiny.en:
# mean word probability 0.27-0.43, and 1.4 times as many words per second as the real English clips)
# or for noise are not a speaking rate; the real English clips of tools/media/real_speech.py score
# 0.63-0.96 (one two-word clip, "five five", 0.39)
MIN_WORD_PROBABILITY = 0.5
RATE_FROM_WORDS = "asr-words"
RATE_FROM_PEAKS = "energy-peaks"


@dataclass(frozen=True)
class FrameTrack:
    """Per-frame measures of one utterance (10 ms apart)."""

    level_db: np.ndarray  # RMS level, dBFS
    f0_hz: np.ndarray  # NaN where unvoiced
    peak_r: np.ndarray  # autocorrelation peak height, 0 where unvoiced
    active: np.ndarray  # bool: loud enough to be speech
    spectrum: np.ndarray  # mean power spectrum of the voiced frames (empty without one)
    freqs_hz: np.ndarray  # the spectrum's frequencies

    @property
    def voiced(self) -> np.ndarray:
        return ~np.isnan(self.f0_hz)


def to_float(samples: np.ndarray) -> np.ndarray:
    """int16 (or float in [-1, 1]) -> float64 in [-1, 1], NaN and inf replaced by 0."""
    x = np.asarray(samples)
    x = x.astype(np.float64) / 32768.0 if x.dtype.kind in "iu" else x.astype(np.float64)
    return np.nan_to_num(x.ravel(), nan=0.0, posinf=0.0, neginf=0.0)


def frame_samples(sample_rate: int) -> tuple[int, int]:
    """(frame length, hop) in samples at ``sample_rate``."""
    return round(FRAME_S * sample_rate), round(HOP_S * sample_rate)


def frame_track(samples: np.ndarray, sample_rate: int) -> FrameTrack:
    """Level, F0 and voicing per 40 ms frame every 10 ms; an empty track for empty audio."""
    x = to_float(samples)
    length, hop = frame_samples(sample_rate)
    if x.size == 0:
        empty = np.zeros(0)
        return FrameTrack(empty, empty, empty, np.zeros(0, bool), empty, empty)
    if x.size < length:
        x = np.pad(x, (0, length - x.size))
    frames = sliding_window_view(x, length)[::hop]
    frames = frames - frames.mean(axis=1, keepdims=True)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    active = (level >= SILENCE_DBFS) & (level >= level.max() - ACTIVE_RANGE_DB)
    lag, r, power = _pitch_peaks(frames, sample_rate)
    voiced = active & (r >= VOICING_THRESHOLD)
    f0 = _drop_outliers(np.where(voiced, sample_rate / np.maximum(lag, 1e-9), np.nan))
    voiced = ~np.isnan(f0)
    spectrum = power[voiced].mean(axis=0) if voiced.any() else np.zeros(0)
    freqs = np.fft.rfftfreq(2 * (power.shape[1] - 1), 1.0 / sample_rate)
    return FrameTrack(level, f0, np.where(voiced, r, 0.0), active, spectrum, freqs)


def _pitch_peaks(frames: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: the lag (samples, sub-sample by a parabola) and height of the best autocorrelation
    peak, and the Hann-windowed power spectrum the autocorrelation came from."""
    length = frames.shape[1]
    window = np.hanning(length)
    nfft = 1 << (2 * length - 1).bit_length()
    power = np.abs(np.fft.rfft(frames * window, nfft)) ** 2
    ac = np.fft.irfft(power, nfft)[:, :length]
    ac_win = np.fft.irfft(np.abs(np.fft.rfft(window, nfft)) ** 2, nfft)[:length]
    lo = max(2, int(sample_rate / F0_MAX_HZ))
    hi = min(length // 2, int(math.ceil(sample_rate / F0_MIN_HZ)))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ac / ac[:, :1]) / (ac_win / ac_win[0])
    r = np.nan_to_num(r[:, lo - 1:hi + 2])  # one lag either side: peaks must be local maxima
    inner = r[:, 1:-1]
    is_peak = (inner > r[:, :-2]) & (inner >= r[:, 2:])
    top = np.max(np.where(is_peak, inner, -np.inf), axis=1, keepdims=True)
    # the shortest lag that comes close to the best peak: the window correction lifts the
    # subharmonic (twice the period) as high as the true peak, an octave-down error otherwise
    eligible = is_peak & (inner >= OCTAVE_RATIO * top)
    best = np.argmax(eligible, axis=1) + 1
    rows = np.arange(len(r))
    left, mid, right = r[rows, best - 1], r[rows, best], r[rows, best + 1]
    mid = np.where(eligible.any(axis=1), mid, 0.0)  # no peak in the range: unvoiced
    denom = left - 2 * mid + right
    shift = np.where(denom < 0, 0.5 * (left - right) / np.where(denom < 0, denom, -1.0), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    height = np.clip(mid - 0.25 * (left - right) * shift, 0.0, 1.0)
    return best + shift + (lo - 1), height, power


def _drop_outliers(f0: np.ndarray) -> np.ndarray:
    """NaN for a voiced frame over ``OUTLIER_RATIO`` away from the median of its voiced neighbours
    (isolated octave jumps, voicing-boundary spikes) or ``OUTLIER_GLOBAL`` from the utterance's
    median (a harmonic locked onto in creaky voice below ``F0_MIN_HZ``): either would widen the range."""
    if f0.size == 0:
        return f0
    padded = np.pad(f0, OUTLIER_SPAN, constant_values=np.nan)
    neighbourhood = sliding_window_view(padded, 2 * OUTLIER_SPAN + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods: unvoiced anyway
        median = np.nanmedian(neighbourhood, axis=1)
    ratio = np.maximum(f0, median) / np.minimum(f0, median)
    f0 = np.where(ratio > OUTLIER_RATIO, np.nan, f0)
    if np.isnan(f0).all():
        return f0
    overall = np.nanmedian(f0)
    return np.where(np.maximum(f0, overall) / np.minimum(f0, overall) > OUTLIER_GLOBAL, np.nan, f0)


def syllable_nuclei(track: FrameTrack) -> int:
    """Voiced level peaks that rise ``NUCLEUS_DIP_DB`` above the dip since the previous nucleus."""
    level = track.level_db
    if level.size < 3 or not track.active.any():
        return 0
    floor = max(float(np.median(level[track.active])), float(level.max()) - NUCLEUS_BELOW_MAX_DB)
    is_peak = np.zeros(level.size, bool)
    is_peak[1:-1] = (level[1:-1] >= level[:-2]) & (level[1:-1] > level[2:])
    candidates = np.flatnonzero(is_peak & track.voiced & (level >= floor))
    count, last = 0, -1
    for i in candidates:
        if last < 0 or level[last:i + 1].min() <= min(level[last], level[i]) - NUCLEUS_DIP_DB:
            count, last = count + 1, i
        elif level[i] > level[last]:
            last = i  # same syllable, a higher top: measure the next dip from here
    return count


def words_per_second(words: Sequence[Word]) -> float | None:
    """Words per second between the first word's start and the last word's end; None without words,
    or when the ASR is unsure of them (mean word probability under ``MIN_WORD_PROBABILITY``): the
    rate then comes from syllable nuclei, which need no language."""
    spoken = [w for w in words if w.word.strip()]
    if not spoken or np.mean([w.probability for w in spoken]) < MIN_WORD_PROBABILITY:
        return None
    span_s = (max(w.t_end for w in spoken) - min(w.t_start for w in spoken)) / 1e9
    return len(spoken) / span_s if span_s > 0 else None


def prosody_features(samples: np.ndarray, sample_rate: int,
                     words_rate: float | None = None) -> VoiceFeatures:
    """The utterance's prosody; ``words_rate`` (words/s from ASR timings) replaces the nuclei rate."""
    x = to_float(samples)
    track = frame_track(x, sample_rate)
    voiced = track.voiced
    f0 = track.f0_hz[voiced]
    active_s = float(track.active.sum()) * HOP_S
    if words_rate is not None:
        rate, source = float(words_rate), RATE_FROM_WORDS
    else:
        rate = syllable_nuclei(track) / active_s if active_s > 0 else math.nan
        source = RATE_FROM_PEAKS
    frame, hop = frame_samples(sample_rate)
    jitter, shimmer = jitter_shimmer(x, track.f0_hz, sample_rate, hop, frame, (F0_MIN_HZ, F0_MAX_HZ))
    balance = spectral_balance(track.spectrum, track.freqs_hz) if voiced.any() else NOT_MEASURED
    return VoiceFeatures(
        duration_s=np.asarray(samples).size / sample_rate,
        voiced_fraction=float(voiced.mean()) if voiced.size else 0.0,
        f0_mean_hz=_mean(f0),
        f0_range_st=_semitone_range(f0),
        energy_db=_power_mean_db(track.level_db[voiced]),
        energy_range_db=_spread(track.level_db[track.active], 10, 90),
        speaking_rate=rate,
        speaking_rate_source=source,
        jitter=jitter,
        shimmer=shimmer,
        hnr_db=_hnr_db(track.peak_r[voiced]),
        alpha_ratio_db=balance.alpha_ratio_db,
        hammarberg_db=balance.hammarberg_db,
        slope_0_500=balance.slope_0_500,
        slope_500_1500=balance.slope_500_1500,
        pause_fraction=_pause_fraction(track.active),
    )


def _pause_fraction(active: np.ndarray) -> float:
    """Share of the frames from the first active frame to the last that are not active."""
    spoken = np.flatnonzero(active)
    if spoken.size == 0:
        return math.nan
    return float(1.0 - spoken.size / (spoken[-1] - spoken[0] + 1))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _spread(values: np.ndarray, lo: float, hi: float) -> float:
    if not values.size:
        return math.nan
    a, b = np.percentile(values, [lo, hi])
    return float(b - a)


def _semitone_range(f0: np.ndarray) -> float:
    """20th to 80th percentile of F0 in semitones (12 log2 of their ratio), as eGeMAPS's F0 range:
    wider percentiles follow the tracker's octave errors more than the voice."""
    return _spread(12 * np.log2(f0), 20, 80) if f0.size else math.nan


def _power_mean_db(level_db: np.ndarray) -> float:
    """The level of the frames' mean power (an equivalent level, as a sound level meter's Leq)."""
    return float(10 * np.log10(np.mean(10 ** (level_db / 10)))) if level_db.size else math.nan


def _hnr_db(peak_r: np.ndarray) -> float:
    """Mean over voiced frames of 10 log10(r / (1 - r)) (Boersma 1993), capped at 30 dB."""
    if not peak_r.size:
        return math.nan
    r = np.clip(peak_r, 1e-6, HNR_R_MAX)
    return float(np.mean(10 * np.log10(r / (1 - r))))
