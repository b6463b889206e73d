"""The output activations the model profiles' postprocessing applies (engines/*_spec.py), in one place."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in the logits' own float type."""
    z = np.asarray(logits)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """An independent sigmoid per value."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits)))
