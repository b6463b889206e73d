"""Spectral balance of voiced speech: how much of the voice's energy lies at high frequencies.

Pressing harder on the voice (more vocal effort, as in anger, joy, fear) makes the glottis close
faster, which lifts the partials above 1 kHz more than the fundamental: the spectrum tilts less
(Sundberg & Nordenberg 2006, JASA 120: 453; Traunmueller & Eriksson 2000, JASA 107: 3438). Calm and
sad speech tilts more (Banse & Scherer 1996, JPSP 70: 614). These measures are ratios within one
spectrum, so a microphone's gain does not move them. Definitions follow the eGeMAPS set
(Eyben et al. 2016, IEEE Trans. Affective Computing 7: 190):

- alpha ratio: energy 1-5 kHz over energy 50 Hz-1 kHz, in dB (rises with effort);
- Hammarberg index: the strongest bin in 0-2 kHz over the strongest in 2-5 kHz, in dB (falls with effort);
- spectral slopes 0-500 Hz and 500-1500 Hz: the least-squares slope of the spectrum in dB, per kHz
  (the upper one flattens with effort).

eGeMAPS averages per-frame values; here each is computed once from the utterance's long-term average
spectrum of voiced frames (the LTAS tradition of the voice literature), which costs one mean per utterance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA_LOW_HZ = (50.0, 1000.0)
ALPHA_HIGH_HZ = (1000.0, 5000.0)
HAMMARBERG_LOW_HZ = (0.0, 2000.0)
HAMMARBERG_HIGH_HZ = (2000.0, 5000.0)
SLOPE_BANDS_HZ = ((0.0, 500.0), (500.0, 1500.0))
FLOOR = 1e-20  # power floor, so digital silence in a band gives a finite (very low) dB


@dataclass(frozen=True)
class SpectralBalance:
    alpha_ratio_db: float
    hammarberg_db: float
    slope_0_500: float  # dB per kHz
    slope_500_1500: float  # dB per kHz


NOT_MEASURED = SpectralBalance(math.nan, math.nan, math.nan, math.nan)


def spectral_balance(power: np.ndarray, freqs_hz: np.ndarray) -> SpectralBalance:
    """The four measures of one average power spectrum (``power`` at ``freqs_hz``); NaN for an empty
    or silent spectrum, or one too narrow (sample rate under 10 kHz) to hold the 5 kHz band."""
    if power.size == 0 or not np.any(power > 0) or freqs_hz[-1] < ALPHA_HIGH_HZ[1]:
        return NOT_MEASURED
    power = np.maximum(power, FLOOR)
    db = 10 * np.log10(power)
    return SpectralBalance(
        alpha_ratio_db=float(10 * np.log10(_band(power, freqs_hz, ALPHA_HIGH_HZ).sum()
                                           / _band(power, freqs_hz, ALPHA_LOW_HZ).sum())),
        hammarberg_db=float(_band(db, freqs_hz, HAMMARBERG_LOW_HZ).max()
                            - _band(db, freqs_hz, HAMMARBERG_HIGH_HZ).max()),
        slope_0_500=_slope(db, freqs_hz, SLOPE_BANDS_HZ[0]),
        slope_500_1500=_slope(db, freqs_hz, SLOPE_BANDS_HZ[1]),
    )


def _band(values: np.ndarray, freqs_hz: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    lo, hi = band
    return values[(freqs_hz >= lo) & (freqs_hz < hi)]


def _slope(db: np.ndarray, freqs_hz: np.ndarray, band: tuple[float, float]) -> float:
    inside = (freqs_hz >= band[0]) & (freqs_hz < band[1])
    slope, _ = np.polyfit(freqs_hz[inside] / 1000.0, db[inside], 1)
    return float(slope)
