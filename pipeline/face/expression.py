"""The 7-class expression model, run batched over all faces of a frame through an engine."""

from __future__ import annotations

import numpy as np

from moodwire.engines.engine import Engine
from moodwire.engines.face_expression_spec import preprocess
from moodwire.pipeline.core.labels import LABELS


class ExpressionModel:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.labels = list(LABELS)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(N, 64, 64) uint8 grey crops -> (N, 7) float32 probabilities; one engine call for all N."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        (probs,) = self.engine.run({"crops": preprocess(crops)})
        return np.asarray(probs, dtype=np.float32)
