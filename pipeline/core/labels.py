"""moodwire's emotion labels: the one list, in the one order, that every model, message and rule uses.

The seven classes are FER2013's (the face model's), and every other source is mapped onto them:
text prototypes, the voice model, fusion's class axis. ``CIRCUMPLEX`` places each label on Russell's
(1980) circumplex of affect as moodwire places it (valence, arousal in [-1, 1]); the face rule
(``circumplex-v1``, pipeline/face/affect_rule.py) and the voice model's valence read it. The
placements are the usual ones in affective computing and keep Russell's layout: happy pleasant and
fairly active; surprise very active and near-neutral in valence; anger, fear and disgust unpleasant and
active (disgust the least active); sadness unpleasant and deactivated; neutral at the origin. They are
design choices, not measurements.
"""

from __future__ import annotations

import numpy as np

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# (valence, arousal) of each label, rows in LABELS order.
CIRCUMPLEX = np.array([
    [-0.6, 0.7],   # angry
    [-0.7, 0.3],   # disgust
    [-0.6, 0.6],   # fear
    [0.8, 0.5],    # happy
    [-0.7, -0.4],  # sad
    [0.2, 0.8],    # surprise
    [0.0, 0.0],    # neutral
])

# AffectNet's eight expression classes (the HSEmotion face profile, engines/profiles.py) onto LABELS.
# Contempt has no class of its own here; it goes to disgust, the other rejection emotion next to it
# in appraisal and on the circumplex (unpleasant, moderately active). Folding it into neutral would
# hide a negative expression, and dropping it would give its mass to whatever else scored. Users who
# need contempt apart read the profile's raw scores through its own labels (FaceTracks.expression_raw).
# The keys are in the model's output order (HSEmotion's ``idx_to_class``).
AFFECTNET_TO_LABELS: dict[str, str] = {
    "Anger": "angry", "Contempt": "disgust", "Disgust": "disgust", "Fear": "fear",
    "Happiness": "happy", "Neutral": "neutral", "Sadness": "sad", "Surprise": "surprise",
}


# face-api.js's FaceExpressionNet (the second packaged face model), in the model's output order; each is
# one of LABELS under another name.
FACEAPI_TO_LABELS: dict[str, str] = {
    "neutral": "neutral", "happy": "happy", "sad": "sad", "angry": "angry", "fearful": "fear",
    "disgusted": "disgust", "surprised": "surprise",
}


# IEMOCAP's four classes as SUPERB's emotion-recognition task keeps them (the voice profile,
# superb/wav2vec2-base-superb-er), in the model's output order. Each is one of LABELS; fear, disgust and
# surprise get no voice probability from it (IEMOCAP's four-class protocol drops them).
IEMOCAP4_TO_LABELS: dict[str, str] = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad"}

# GoEmotions' 28 labels (the text profile, SamLowe/roberta-base-go_emotions), in the model's output order,
# onto LABELS by the GoEmotions authors' own Ekman grouping (google-research goemotions
# data/ekman_mapping.json; joy -> happy, sadness -> sad, anger -> angry); neutral stays neutral.
_GOEMOTIONS_EKMAN: dict[str, tuple[str, ...]] = {
    "angry": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "happy": ("joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride",
              "admiration", "desire", "caring"),
    "sad": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
    "neutral": ("neutral",),
}
GOEMOTIONS_LABELS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral",
)
GOEMOTIONS_TO_LABELS: dict[str, str] = {
    name: label for name in GOEMOTIONS_LABELS for label, members in _GOEMOTIONS_EKMAN.items() if name in members}


def fold_matrix(source_labels: tuple[str, ...] | list[str], mapping: dict[str, str]) -> np.ndarray:
    """(len(source_labels), 7) 0/1 matrix: probabilities in ``source_labels`` order times it give LABELS order."""
    matrix = np.zeros((len(source_labels), len(LABELS)), np.float32)
    for i, name in enumerate(source_labels):
        matrix[i, LABELS.index(mapping[name])] = 1.0
    return matrix


def canonical_label(name: str) -> str:
    """One of LABELS for a label as data sets write it (``Happiness``, ``fearful``, ``anger``, ``surprised``),
    through the mappings above; ValueError naming the accepted names otherwise."""
    key = name.strip().lower()
    known = {**{label: label for label in LABELS}, **FACEAPI_TO_LABELS,
             **{k.lower(): v for k, v in AFFECTNET_TO_LABELS.items()}, **_NOUNS}
    if key not in known:
        raise ValueError(f"unknown emotion label {name!r}; use one of {', '.join(sorted(known))}")
    return known[key]


_NOUNS = {"anger": "angry", "sadness": "sad", "happiness": "happy", "surprised": "surprise", "disgusted": "disgust",
          "fearful": "fear", "joy": "happy"}
