"""What the HSEmotion face profile (``hsemotion-enet-b0-8-va-mtl``) expects and returns, with no torch.

The contract is the authors' own (hsemotion-onnx 0.3.1, ``HSEmotionRecognizer``): an RGB face box,
resized to 224x224 with OpenCV's default bilinear filter, divided by 255, normalised per channel
with ImageNet's mean and std, channels first; the ONNX input is ``input``. Its one output holds,
per face, 8 logits in AffectNet's class order and then valence and arousal. tests/test_profiles.py
proves this module gives the reference's numbers on the same image and weights.
"""

from __future__ import annotations

import numpy as np

from moodwire.engines.activations import softmax

INPUT_SIZE = 224
INPUT_NAME = "input"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
N_CLASSES = 8
VA_RANGE = (-1.0, 1.0)  # AffectNet's valence/arousal label range; the head's output is clipped to it


def preprocess(faces_rgb: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 face boxes of any size -> (N, 3, 224, 224) float32, in the reference's operation order."""
    import cv2

    batch = np.empty((len(faces_rgb), 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    for i, face in enumerate(faces_rgb):
        if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8 or min(face.shape[:2]) < 1:
            raise ValueError(f"expected an RGB uint8 face image (H, W, 3), got {face.dtype} {face.shape}")
        x = cv2.resize(face, (INPUT_SIZE, INPUT_SIZE)) / 255  # float64, as the reference computes
        x = (x - np.array(MEAN)) / np.array(STD)
        batch[i] = x.transpose(2, 0, 1)
    return batch


def postprocess(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 10) model output -> (N, 8) class probabilities (AffectNet order) and (N, 2) valence, arousal."""
    scores = np.asarray(scores, np.float32)
    if scores.ndim != 2 or scores.shape[1] != N_CLASSES + 2:
        raise ValueError(f"expected the profile's output (N, {N_CLASSES + 2}), got {scores.shape}")
    return softmax(scores[:, :N_CLASSES]), np.clip(scores[:, N_CLASSES:], *VA_RANGE)
