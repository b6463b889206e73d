"""Valence and arousal of a face from its expression probabilities and blendshapes.

This is a documented RULE, not a trained model: no data set with both the
seven FER2013 classes and valence/arousal labels is shipped anywhere we can
use, so the mapping is written down instead of learnt, and named
(``RULE_NAME``) so every message says which rule produced its numbers.

1. Base: each expression class sits at a point of Russell's (1980) circumplex
   of affect (``CIRCUMPLEX`` of pipeline/core/labels.py, where the placements
   and their reasons are written down); the face's point is the
   probability-weighted mean of those points.
2. Nudge: a softmax over seven classes says *which* expression, not how
   strong: a faint and a broad smile both come out "happy". A few blendshapes
   (scores in [0, 1]) add a bounded term (``BLENDSHAPE_WEIGHTS``): smiles raise
   valence; frowns, lowered brows and sneers lower it; wide eyes, raised inner
   brows and an open jaw raise arousal. The weights on each axis add up to at
   most 0.35 either way, so the nudge refines the class position but cannot
   carry a face across the circumplex by itself.
3. The sum is clipped to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moodwire.pipeline.core.labels import CIRCUMPLEX, LABELS

RULE_NAME = "circumplex-v1"

# blendshape name -> (valence weight, arousal weight); pairs are split left/right
# so a symmetric expression gets the full weight and a one-sided one half.
BLENDSHAPE_WEIGHTS: dict[str, tuple[float, float]] = {
    "mouthSmileLeft": (0.15, 0.0),
    "mouthSmileRight": (0.15, 0.0),
    "mouthFrownLeft": (-0.075, 0.0),
    "mouthFrownRight": (-0.075, 0.0),
    "browDownLeft": (-0.05, 0.0),
    "browDownRight": (-0.05, 0.0),
    "noseSneerLeft": (-0.025, 0.0),
    "noseSneerRight": (-0.025, 0.0),
    "eyeWideLeft": (0.0, 0.075),
    "eyeWideRight": (0.0, 0.075),
    "browInnerUp": (0.0, 0.1),
    "jawOpen": (0.0, 0.1),
}

RULE_DESCRIPTION = (
    f"{RULE_NAME}: a fixed rule, not a trained model. Valence and arousal start at the "
    "probability-weighted mean of the seven expression classes' positions on Russell's (1980) "
    "circumplex (angry -0.6,+0.7; disgust -0.7,+0.3; fear -0.6,+0.6; happy +0.8,+0.5; "
    "sad -0.7,-0.4; surprise +0.2,+0.8; neutral 0,0). A bounded blendshape term (at most "
    "0.35 per axis either way) then adds intensity the class probabilities lose: smiles raise "
    "valence, frowns, lowered brows and sneers lower it, wide eyes, raised inner brows and an "
    "open jaw raise arousal. The result is clipped to [-1, 1]."
)


def blendshape_weight_matrix(names: Sequence[str]) -> np.ndarray:
    """(len(names), 2) weights in the order the blendshapes come; names not in the rule weigh 0."""
    missing = set(BLENDSHAPE_WEIGHTS) - set(names)
    if missing:
        raise ValueError(f"blendshapes needed by {RULE_NAME} are missing: {sorted(missing)}")
    return np.array([BLENDSHAPE_WEIGHTS.get(name, (0.0, 0.0)) for name in names], dtype=np.float64).reshape(-1, 2)


def circumplex_point(probs: np.ndarray) -> np.ndarray:
    """(N,2) probability-weighted class positions; rows are renormalised, all-zero rows give (0, 0)."""
    probs = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1, len(LABELS)), 0.0, None)
    total = probs.sum(axis=1, keepdims=True)
    weights = np.divide(probs, total, out=np.zeros_like(probs), where=total > 0)
    return weights @ CIRCUMPLEX


def valence_arousal(probs: np.ndarray, blendshapes: np.ndarray, blendshape_names: Sequence[str]) -> np.ndarray:
    """(N,2) valence and arousal in [-1, 1] for N faces (see the module docstring)."""
    scores = np.clip(np.asarray(blendshapes, dtype=np.float64).reshape(-1, len(blendshape_names)), 0.0, 1.0)
    base = circumplex_point(probs)
    if len(base) != len(scores):
        raise ValueError(f"{len(base)} expression rows but {len(scores)} blendshape rows")
    return np.clip(base + scores @ blendshape_weight_matrix(blendshape_names), -1.0, 1.0)
