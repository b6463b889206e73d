"""Glottal cycles of voiced speech, and Praat's local jitter and shimmer measured on them.

Jitter and shimmer are cycle-to-cycle measures: how much one vocal-fold period differs from the
next in length (jitter) and in amplitude (shimmer). Frame-level F0 estimates 10 ms apart cannot
give them (intonation moves F0 between frames), so the cycles are marked in the waveform:

- Marks (``cycle_marks``), after Praat's "To PointProcess (periodic, cc)": in each run of voiced
  frames, start at the run's largest |sample| (its polarity is followed), then step forwards and
  backwards: the next mark is where one period of waveform around the current mark correlates
  best, searched within ``SEARCH`` of a local period (the frame F0 track, interpolated) from it
  and refined by a parabola. Cross-correlating whole cycles follows the cycle's shape; picking the
  highest peak instead jumped between the formant ripples of one cycle and read about twice the
  jitter on the real clips of tools/media/real_speech.py (4-6 % against 2-3 %).
- Jitter (local): mean |T(i) - T(i+1)| over the mean period, for consecutive periods of one run
  (Praat's definition). Pairs whose periods differ by over ``PERIOD_FACTOR`` (Praat's maximum
  period factor, 1.3) or lie outside the tracker's F0 range are voice breaks, left out.
- Shimmer (local): mean |A(i) - A(i+1)| over the mean amplitude, A each cycle's peak amplitude
  (the largest sample, in the start's polarity, within half a period of its mark); pairs whose amplitudes differ by over
  ``AMPLITUDE_FACTOR`` (Praat's 1.6) are left out. A ratio of amplitudes: gain does not move it.

This is a re-implementation from the published definitions, not Praat (GPL, not used): the values
are of the same kind as Praat's but not interchangeable with clinical norms measured in Praat.
Connected speech reads higher than the sustained vowels those norms come from.
"""

from __future__ import annotations

import math

import numpy as np

MIN_CORRELATION = 0.5  # a next cycle correlating less with this one is a voicing break
MAX_CYCLES = 800  # per voiced run (about 5 s at 160 Hz): bounds the cost of a long run
SEARCH = 0.2  # a next peak is looked for within +-20 % of a period of where it is expected
PERIOD_FACTOR = 1.3
AMPLITUDE_FACTOR = 1.6


def voiced_runs(voiced: np.ndarray) -> list[tuple[int, int]]:
    """[first, last] frame indices of each run of consecutive voiced frames."""
    edges = np.diff(np.concatenate(([0], voiced.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def cycle_marks(x: np.ndarray, period_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-sample positions of one mark per glottal cycle in ``x`` (one voiced run), and each
    cycle's peak amplitude; ``period_at`` gives the local period in samples at every sample.
    At most ``MAX_CYCLES`` cycles, the first from the run's largest peak away from its edges."""
    margin = int(np.ceil(period_at.max() * (1 + SEARCH))) + 1
    if x.size <= 2 * margin:
        return np.zeros(0), np.zeros(0)
    start = margin + int(np.argmax(np.abs(x[margin:-margin])))
    sign = 1.0 if x[start] >= 0 else -1.0
    y = sign * x  # the start's polarity: its peaks are the ones followed
    energy = np.concatenate(([0.0], np.cumsum(y * y)))
    marks = [float(start)]
    for direction in (1, -1):
        here = float(start)
        while len(marks) < MAX_CYCLES:
            step = _next_cycle(y, energy, here, float(period_at[int(round(here))]), direction)
            if step is None:
                break
            marks.append(here := step)
    marks.sort()
    return np.asarray(marks), np.array([_peak(y, m, float(period_at[int(round(m))])) for m in marks])


def _next_cycle(y: np.ndarray, energy: np.ndarray, here: float, period: float, direction: int) -> float | None:
    """The mark one period after (``direction`` 1) or before (-1) ``here``: where the period of
    waveform around ``here`` correlates best, within ``SEARCH`` of a period of the expected place;
    None at the run's edge or where nothing correlates ``MIN_CORRELATION`` (voicing lost).
    ``energy`` is the cumulative sum of y squared (window energies in O(1))."""
    half = int(round(period / 2))
    centre = int(round(here))
    a = int(round(here + direction * period * (1 - SEARCH)))
    b = int(round(here + direction * period * (1 + SEARCH)))
    lo, hi = min(a, b), max(a, b)
    if min(centre, lo) - half < 0 or max(centre, hi) + half + 1 > y.size:
        return None
    width = 2 * half + 1
    template = y[centre - half:centre + half + 1]
    window_energy = energy[lo - half + width:hi - half + 1 + width] - energy[lo - half:hi - half + 1]
    norms = np.sqrt(window_energy * (energy[centre + half + 1] - energy[centre - half]))
    scores = np.correlate(y[lo - half:hi + half + 1], template, "valid") / np.maximum(norms, 1e-12)
    k = int(np.argmax(scores))
    if scores[k] < MIN_CORRELATION:
        return None
    shift = 0.0
    if 0 < k < scores.size - 1:
        left, mid, right = scores[k - 1], scores[k], scores[k + 1]
        denom = left - 2 * mid + right
        shift = min(0.5, max(-0.5, 0.5 * (left - right) / denom)) if denom < 0 else 0.0
    return lo + k + shift


def _peak(y: np.ndarray, mark: float, period: float) -> float:
    """The cycle's peak amplitude: the largest sample within half a period of its mark."""
    half = max(1, int(round(period / 2)))
    centre = int(round(mark))
    return float(y[max(0, centre - half):centre + half + 1].max())


def _local_perturbation(values: list[np.ndarray], factor: float) -> float:
    """Mean absolute difference of consecutive values over their mean, within each run; pairs
    whose ratio exceeds ``factor`` left out. NaN without a pair."""
    diffs, kept = [], []
    for v in values:
        a, b = v[:-1], v[1:]
        ok = (np.minimum(a, b) > 0) & (np.maximum(a, b) <= factor * np.minimum(a, b))
        diffs.append(np.abs(a - b)[ok])
        kept.append(v[np.concatenate((ok, [False])) | np.concatenate(([False], ok))])
    diffs_all, kept_all = np.concatenate(diffs or [np.zeros(0)]), np.concatenate(kept or [np.zeros(0)])
    if not diffs_all.size:
        return math.nan
    return float(diffs_all.mean() / kept_all.mean())


def jitter_shimmer(x: np.ndarray, f0_hz: np.ndarray, sample_rate: int, hop: int, frame: int,
                   f0_range_hz: tuple[float, float]) -> tuple[float, float]:
    """Local jitter and shimmer (fractions, not %) of float samples ``x`` whose frame F0 track
    ``f0_hz`` (NaN where unvoiced) has frames of ``frame`` samples every ``hop``; periods outside
    ``f0_range_hz`` are not cycles. NaN where no two cycles follow each other."""
    min_period, max_period = sample_rate / f0_range_hz[1], sample_rate / f0_range_hz[0]
    periods, amplitudes = [], []
    centres = np.arange(f0_hz.size) * hop + frame / 2
    for first, last in voiced_runs(~np.isnan(f0_hz)):
        lo, hi = first * hop, min(x.size, last * hop + frame)
        if hi - lo < 3:
            continue
        run = f0_hz[first:last + 1]
        period_at = np.interp(np.arange(lo, hi), centres[first:last + 1], 1.0 / run) * sample_rate
        marks, heights = cycle_marks(x[lo:hi], period_at)
        t = np.diff(marks)
        ok = (t >= min_period) & (t <= max_period)
        if ok.sum() < 2:
            continue
        periods.append(np.where(ok, t, 0.0))  # 0: not a cycle, so no pair with it counts
        amplitudes.append(heights)
    return (_local_perturbation(periods, PERIOD_FACTOR), _local_perturbation(amplitudes, AMPLITUDE_FACTOR))

