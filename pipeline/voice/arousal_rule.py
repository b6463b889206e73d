"""Arousal of an utterance from its prosody: a documented RULE (``RULE_NAME``), not a trained model.

Louder, higher, faster speech with more pitch movement sounds more activated: this is the most
replicated finding of vocal emotion research (Scherer 2003; Juslin & Laukka 2003, Psychological
Bulletin 129: high-arousal emotions raise F0 level, F0 variability, intensity and speech rate).
The rule turns that direction into a number:

1. Each feature becomes a z-like score ``(value - reference) / scale`` (``TERMS``), clipped to
   +-``Z_CLIP`` so one extreme feature cannot decide alone. The references are typical adult speech:
   - F0 mean, in semitones from 150 Hz: near the geometric mean of typical adult male (~115 Hz) and
     female (~200 Hz) speaking F0 (Titze 1994). Scale 6 semitones (half an octave).
     Without a speaker baseline this biases low voices down and high voices up by about 0.2:
     a known limit of a stateless rule.
   - F0 range (5th-95th percentile), reference 6 semitones, scale 3: neutral read speech measures
     about 6-7 semitones with pipeline/voice/prosody.py (a design choice, checked on espeak-ng).
   - Level of voiced frames, reference -26 dBFS: the nominal active speech level of ITU-T P.56 / P.800
     recordings. Scale 6 dB: the step between normal, raised, loud and shouted vocal effort in
     ANSI S3.5-1997. Depends on microphone gain and distance: a quiet mic reads as calm speech.
   - Speaking rate, from ASR words: reference 2.5 words/s (150 words per minute, a common
     conversational English figure), scale 0.75. From syllable nuclei: reference 4.0 /s (conversational
     articulation rate, 4-5 syllables/s), scale 1.2.
2. The scores are combined with ``WEIGHTS`` (sum 1): level 0.35, F0 mean 0.25, rate 0.25, F0 range
   0.15. A feature that could not be measured (NaN) is left out and the others' weights rescaled.
3. ``arousal = tanh(weighted sum)``, in (-1, 1).

Jitter, shimmer and HNR are reported in the features but not used: their frame-level approximations
(see prosody.py) are not validated against arousal.

Confidence: ``CONFIDENCE_MAX`` (0.6: population references, no speaker baseline) times the share
of the weight whose features were measured, times min(1, voiced seconds / ``FULL_VOICED_S``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from moodwire.pipeline.core.messages import VoiceFeatures
from moodwire.pipeline.voice.prosody import RATE_FROM_WORDS

RULE_NAME = "prosody-arousal-v1"
Z_CLIP = 2.5
CONFIDENCE_MAX = 0.6
FULL_VOICED_S = 1.5
F0_REFERENCE_HZ = 150.0


@dataclass(frozen=True)
class Term:
    reference: float
    scale: float


TERMS: dict[str, Term] = {
    "f0_st": Term(0.0, 6.0),  # semitones re F0_REFERENCE_HZ
    "f0_range_st": Term(6.0, 3.0),
    "energy_db": Term(-26.0, 6.0),
    "rate_words": Term(2.5, 0.75),
    "rate_nuclei": Term(4.0, 1.2),
}

WEIGHTS: dict[str, float] = {"energy_db": 0.35, "f0_st": 0.25, "rate": 0.25, "f0_range_st": 0.15}

RULE_DESCRIPTION = (
    f"{RULE_NAME}: a fixed rule, not a trained model. arousal = tanh(0.35 z_level + 0.25 z_f0 + "
    "0.25 z_rate + 0.15 z_f0range), each z = (value - reference) / scale clipped to +-2.5: level re "
    "-26 dBFS / 6 dB, F0 in semitones re 150 Hz / 6, F0 range re 6 / 3 semitones, rate re 2.5 / 0.75 "
    "words/s (ASR) or 4.0 / 1.2 syllable nuclei/s. Missing features are left out and the weights rescaled."
)


@dataclass(frozen=True)
class ArousalEstimate:
    arousal: float  # (-1, 1)
    confidence: float  # [0, 1]
    scores: dict[str, float]  # the clipped z score of each feature used


def feature_scores(features: VoiceFeatures) -> dict[str, float]:
    """The clipped z score of every measured feature, keyed as ``WEIGHTS``."""
    rate_term = "rate_words" if features.speaking_rate_source == RATE_FROM_WORDS else "rate_nuclei"
    raw = {
        "f0_st": (_semitones(features.f0_mean_hz), TERMS["f0_st"]),
        "f0_range_st": (features.f0_range_st, TERMS["f0_range_st"]),
        "energy_db": (features.energy_db, TERMS["energy_db"]),
        "rate": (features.speaking_rate, TERMS[rate_term]),
    }
    return {name: _clip((value - term.reference) / term.scale)
            for name, (value, term) in raw.items() if math.isfinite(value)}


def estimate_arousal(features: VoiceFeatures) -> ArousalEstimate:
    """The rule's arousal and confidence; 0 with confidence 0 when nothing could be measured."""
    scores = feature_scores(features)
    coverage = sum(WEIGHTS[name] for name in scores)
    if coverage <= 0:
        return ArousalEstimate(0.0, 0.0, {})
    total = sum(WEIGHTS[name] * z for name, z in scores.items()) / coverage
    voiced_s = features.duration_s * features.voiced_fraction
    confidence = CONFIDENCE_MAX * coverage * min(1.0, voiced_s / FULL_VOICED_S)
    return ArousalEstimate(math.tanh(total), confidence, scores)


def _semitones(f0_hz: float) -> float:
    return 12 * math.log2(f0_hz / F0_REFERENCE_HZ) if f0_hz > 0 else math.nan


def _clip(z: float) -> float:
    return max(-Z_CLIP, min(Z_CLIP, z))
