"""Cycle-level jitter and shimmer (pipeline/voice/cycles.py) on made voices whose every period and
peak is known: the measure must give back the perturbation that was put in, whatever the gain."""

from __future__ import annotations

import math

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.voice.cycles import voiced_runs
from moodwire.pipeline.voice.prosody import prosody_features


def made_voice(f0_hz: float, jitter: float, shimmer: float, seconds: float = 2.0,
               seed: int = 0) -> tuple[np.ndarray, float, float]:
    """A harmonic voice whose consecutive cycles differ by random factors (standard deviations
    ``jitter`` and ``shimmer``), and the local jitter and shimmer those cycles have by definition."""
    rng = np.random.default_rng(seed)
    count = int(seconds * f0_hz)
    lengths = np.round(AUDIO_RATE / f0_hz * (1 + jitter * math.sqrt(3) * rng.uniform(-1, 1, count)))
    peaks = 1 + shimmer * math.sqrt(3) * rng.uniform(-1, 1, count)
    cycles = []
    for length, peak in zip(lengths.astype(int), peaks):
        phase = np.arange(length) / length
        cycles.append(peak * sum(0.7 ** k * np.sin(2 * np.pi * k * phase) for k in range(1, 8)))
    samples = np.round(0.3 * 32767 / 2.4 * np.concatenate(cycles)).astype(np.int16)
    truth_jitter = np.mean(np.abs(np.diff(lengths))) / lengths.mean()
    truth_shimmer = np.mean(np.abs(np.diff(peaks))) / peaks.mean()
    return samples, float(truth_jitter), float(truth_shimmer)


def test_a_perfectly_periodic_voice_has_no_jitter_or_shimmer():
    samples, _, _ = made_voice(150.0, 0.0, 0.0)
    features = prosody_features(samples, AUDIO_RATE)
    assert features.jitter < 1e-3 and features.shimmer < 2e-3


def test_jitter_and_shimmer_give_back_the_perturbation_put_in():
    for f0, jitter, shimmer in ((120.0, 0.01, 0.0), (150.0, 0.02, 0.05), (220.0, 0.0, 0.10), (180.0, 0.03, 0.03)):
        samples, true_jitter, true_shimmer = made_voice(f0, jitter, shimmer)
        got = prosody_features(samples, AUDIO_RATE)
        assert abs(got.jitter - true_jitter) <= 0.15 * true_jitter + 1e-3, (f0, got.jitter, true_jitter)
        assert abs(got.shimmer - true_shimmer) <= 0.15 * true_shimmer + 2e-3, (f0, got.shimmer, true_shimmer)


def test_gain_does_not_move_jitter_or_shimmer():
    samples, _, _ = made_voice(140.0, 0.015, 0.06)
    loud, quiet = prosody_features(samples, AUDIO_RATE), prosody_features(samples // 16, AUDIO_RATE)
    assert abs(loud.jitter - quiet.jitter) < 1e-3 and abs(loud.shimmer - quiet.shimmer) < 2e-3


def test_silence_has_no_cycles():
    features = prosody_features(np.zeros(AUDIO_RATE, np.int16), AUDIO_RATE)
    assert math.isnan(features.jitter) and math.isnan(features.shimmer)


def test_voiced_runs_are_the_stretches_of_voiced_frames():
    voiced = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    assert [(int(a), int(b)) for a, b in voiced_runs(voiced)] == [(1, 2), (5, 5), (7, 9)]
