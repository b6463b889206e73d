"""Arousal of an utterance from how the voice is produced: a documented RULE (``RULE_NAME``), not a
trained model.

Aroused speech is produced with more vocal effort: a flatter spectrum, a pitch raised above the
speaker's habit, more pitch movement, more level above the speaker's habit, and a faster rate
(Scherer 2003, Speech Communication 40: 227; Juslin & Laukka 2003, Psychological Bulletin 129: 770,
table 7: anger and joy raise and sadness lowers F0 level, F0 variability, intensity, high-frequency
energy and rate; Banse & Scherer 1996, JPSP 70: 614: hot anger has the most, sadness the least
high-frequency energy). ``prosody-arousal-v2`` uses only measures that a microphone's gain and a
speaker's natural pitch do not set:

1. Each term is a z-like score ``(value - reference) / scale``, clipped to +-``Z_CLIP`` so one
   extreme term cannot decide alone (``TERMS``):
   - spectral balance: the alpha ratio (spectral.py, eGeMAPS definition), reference -10 dB, scale
     6 dB. The reference is about the median of this code's measure on calm read speech of real
     speakers (LibriVox and CMU clips, tools/media/real_speech.py); 6 dB is about the change from
     normal to loud voice (Sundberg & Nordenberg 2006). The Hammarberg index and spectral slopes are
     reported, not used: a sox pitch shift of the same clip moved them several dB (they follow the
     formants and single spectral peaks).
   - F0 against the speaker's baseline (baseline.py), semitones, scale 4: emotional speech moves the
     mean F0 of a speaker by about 2-8 semitones from neutral (Juslin & Laukka 2003).
   - level against the speaker's baseline, dB, scale 6: the step between normal, raised, loud and
     shouted voice in ANSI S3.5-1997.
   - F0 range (20th-80th percentile), semitones, reference 4, scale 3 (the real read clips measure
     1-8 semitones).
   - speaking rate: from ASR words, reference 2.5 words/s, scale 0.75 (150 words per minute); from
     syllable nuclei, reference 3.5 /s, scale 1.5 (the real read clips measure 2-4 nuclei/s).
2. The scores are combined with ``WEIGHTS`` (sum 1): spectral balance 0.30, F0 0.20, level 0.20,
   rate 0.15, F0 range 0.15. A term that could not be measured (NaN) counts as 0, no evidence: on a
   stream's first utterance the baseline gives no F0 or level comparison, so it reads closer to 0.
3. ``arousal = tanh(weighted sum)``, in (-1, 1).

Not used: the absolute level (microphone gain and distance set it), the absolute F0 (the speaker's
register sets it), jitter, shimmer and HNR (cycle-level, see cycles.py, but their direction with arousal
differs between studies, Juslin & Laukka 2003, and room noise moves them).

Confidence: ``CONFIDENCE_MAX`` times the share of the weight whose terms were measured, times
min(1, voiced seconds / ``FULL_VOICED_S``), times ``SETTLING_FACTOR`` while the speaker baseline settles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from moodwire.pipeline.core.messages import VoiceBaseline, VoiceFeatures
from moodwire.pipeline.voice.baseline import FULL_VOICED_S, SETTLED
from moodwire.pipeline.voice.prosody import RATE_FROM_WORDS

RULE_NAME = "prosody-arousal-v2"
Z_CLIP = 2.5
CONFIDENCE_MAX = 0.6
SETTLING_FACTOR = 0.75


@dataclass(frozen=True)
class Term:
    reference: float
    scale: float

    def z(self, value: float) -> float:
        return _clip((value - self.reference) / self.scale)


TERMS: dict[str, Term] = {
    "alpha_ratio_db": Term(-10.0, 6.0),
    "f0_rel_st": Term(0.0, 4.0),
    "level_rel_db": Term(0.0, 6.0),
    "f0_range_st": Term(4.0, 3.0),
    "rate_words": Term(2.5, 0.75),
    "rate_nuclei": Term(3.5, 1.5),
}

WEIGHTS: dict[str, float] = {"spectral": 0.30, "f0": 0.20, "level": 0.20, "rate": 0.15, "f0_range": 0.15}

RULE_DESCRIPTION = (
    f"{RULE_NAME}: a fixed rule, not a trained model. arousal = tanh(0.30 z_spectral + 0.20 z_f0 + 0.20 z_level "
    "+ 0.15 z_rate + 0.15 z_f0range), each z = (value - reference) / scale clipped to +-2.5: spectral balance = "
    "alpha ratio re -10 / 6 dB; F0 above the speaker baseline / 4 semitones; level above the speaker baseline "
    "/ 6 dB (neither on a stream's first utterance); F0 range re 4 / 3 semitones; rate re 2.5 / 0.75 words/s "
    "(ASR) or 3.5 / 1.5 syllable nuclei/s. A term not measured counts as 0."
)


@dataclass(frozen=True)
class ArousalEstimate:
    arousal: float  # (-1, 1)
    confidence: float  # [0, 1]
    scores: dict[str, float]  # the clipped z score of each term used, keyed as WEIGHTS


def feature_scores(features: VoiceFeatures, baseline: VoiceBaseline | None) -> dict[str, float]:
    """The clipped z score of every measured term, keyed as ``WEIGHTS``."""
    rate_term = "rate_words" if features.speaking_rate_source == RATE_FROM_WORDS else "rate_nuclei"
    raw = {
        "spectral": (features.alpha_ratio_db, TERMS["alpha_ratio_db"]),
        "f0": (baseline.f0_rel_st if baseline else math.nan, TERMS["f0_rel_st"]),
        "level": (baseline.level_rel_db if baseline else math.nan, TERMS["level_rel_db"]),
        "rate": (features.speaking_rate, TERMS[rate_term]),
        "f0_range": (features.f0_range_st, TERMS["f0_range_st"]),
    }
    return {name: term.z(value) for name, (value, term) in raw.items() if math.isfinite(value)}


def estimate_arousal(features: VoiceFeatures, baseline: VoiceBaseline | None = None) -> ArousalEstimate:
    """The rule's arousal and confidence; 0 with confidence 0 when nothing could be measured."""
    scores = feature_scores(features, baseline)
    coverage = sum(WEIGHTS[name] for name in scores)
    if coverage <= 0:
        return ArousalEstimate(0.0, 0.0, {})
    total = sum(WEIGHTS[name] * z for name, z in scores.items())  # an unmeasured term counts as 0: no evidence
    voiced_s = features.duration_s * features.voiced_fraction
    settling = baseline is None or baseline.state != SETTLED
    confidence = (CONFIDENCE_MAX * coverage * min(1.0, voiced_s / FULL_VOICED_S)
                  * (SETTLING_FACTOR if settling else 1.0))
    return ArousalEstimate(math.tanh(total), confidence, scores)


def _clip(z: float) -> float:
    return max(-Z_CLIP, min(Z_CLIP, z))
