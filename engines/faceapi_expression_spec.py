"""What face-api.js's FaceExpressionNet expects and returns, with no torch: the run-time path imports this.

The input is face-api.js's own, step by step (its ``NetInput.toBatchTensor(112, true)`` and
``FaceFeatureExtractor.forwardInput``): the RGB face, padded with black to a square (half the
difference after the face, the rest before), resized to 112x112 by TensorFlow.js's bilinear resize
(``alignCorners = false``, ``halfPixelCenters = false``), minus the per-channel means, divided by 255.
The output is softmax probabilities in face-api.js's label order (``FACEAPI_LABELS``).
"""

from __future__ import annotations

import math

import numpy as np

INPUT_SIZE = 112
INPUT_NAME = "faces"
OUTPUT_NAME = "probs"
MEAN_RGB = (122.782, 117.001, 104.298)
FACEAPI_LABELS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
PREPROCESSING = ("RGB face padded with black to a square (face-api.js padToSquare, centred), resized to 112x112 "
                 "(TensorFlow.js resizeBilinear, alignCorners=false, halfPixelCenters=false), minus the means "
                 f"{MEAN_RGB}, divided by 255; NCHW float32")


def pad_to_square(face: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (S, S, 3), S = max(H, W): face-api.js's padToSquare(image, isCenterImage=true)."""
    height, width = face.shape[:2]
    diff = abs(height - width)
    if diff == 0:
        return face
    after = math.floor(diff * 0.5 + 0.5)  # JavaScript's Math.round
    before = diff - after
    pad = ((before, after), (0, 0), (0, 0)) if width > height else ((0, 0), (before, after), (0, 0))
    return np.pad(face, pad)


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) -> (size, size, C) float32, as TensorFlow.js's CPU resizeBilinear with both flags false."""
    src = image.astype(np.float64)
    rows = _taps(src.shape[0], size)
    cols = _taps(src.shape[1], size)
    top, bottom = src[rows[0]], src[rows[1]]
    vertical = top + (bottom - top) * rows[2][:, None, None]
    left, right = vertical[:, cols[0]], vertical[:, cols[1]]
    return (left + (right - left) * cols[2][None, :, None]).astype(np.float32)


def _taps(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two source indices and the weight of the second."""
    position = np.arange(size) * (length / size)
    low = np.floor(position)
    high = np.minimum(np.ceil(position), length - 1)
    return np.maximum(low, 0).astype(int), high.astype(int), position - low


def preprocess(faces_rgb: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 faces of any size -> (N, 3, 112, 112) float32, the model's input."""
    if not faces_rgb:
        return np.zeros((0, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    batch = []
    for face in faces_rgb:
        if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8 or min(face.shape[:2]) < 1:
            raise ValueError(f"expected an RGB uint8 face of shape (H, W, 3), got {face.dtype} {face.shape}")
        batch.append(resize_bilinear(pad_to_square(face), INPUT_SIZE))
    x = (np.stack(batch) - np.asarray(MEAN_RGB, np.float32)) / np.float32(255.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)
