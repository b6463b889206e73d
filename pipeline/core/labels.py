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
