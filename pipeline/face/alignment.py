"""Face crops framed like FER2013 images, from mediapipe's 478 face landmarks.

The expression model (mini-Xception, trained on FER2013) saw faces cut out by
an OpenCV Haar frontal-face box: eyes level, the square running from mid
forehead to the chin and across the cheeks. The crop here reproduces that box
from landmarks: one rotation that levels the eye centres, then a square whose
size and centre were measured against the Haar cascade shipped with the
``fer`` package on real faces (the carphone clip and a studio portrait):

* Haar box side ~= 1.25 x the landmark extent's width and ~= 1.1 x its
  height, once the eyes are level; the larger of the two is used, so that
  turning the head (narrower) or nodding (shorter) does not zoom in;
* its centre sits ~0.08 box sides above the centre of the landmark extent;
* ``fer`` pads the box by 10 px a side before resizing (~10 % on a webcam face).
"""

from __future__ import annotations

import cv2
import numpy as np

# mediapipe face mesh indices of the eye corners (subject's own right/left;
# the subject's right eye is on the image's left). Corners, not the iris
# points 468/473, so that gaze does not move the alignment.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
CHIN = 152
FOREHEAD = 10

HAAR_PER_WIDTH = 1.25  # Haar box side / landmark-extent width (eyes level)
HAAR_PER_HEIGHT = 1.1  # Haar box side / landmark-extent height (eyes level)
HAAR_RAISE = 0.08  # Haar box centre above the extent centre, in box sides
MARGIN = 1.1  # crop side / Haar box side (fer pads 10 px a side)


def landmarks_to_pixels(landmarks_norm: np.ndarray, width: int, height: int) -> np.ndarray:
    """(478,3) normalised landmarks to pixels; z is scaled by width, as mediapipe documents."""
    scale = np.array([width, height, width], dtype=np.float32)
    return np.asarray(landmarks_norm, dtype=np.float32)[:, :3] * scale


def face_box(landmarks_px: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of the landmarks' extent (not clipped to the image)."""
    xy = np.asarray(landmarks_px, dtype=np.float64)[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def eye_centres(landmarks_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye, subject's left eye) centres in pixels, from the eye corners."""
    xy = np.asarray(landmarks_px, dtype=np.float64)[:, :2]
    return xy[list(RIGHT_EYE_CORNERS)].mean(axis=0), xy[list(LEFT_EYE_CORNERS)].mean(axis=0)


def alignment_matrix(landmarks_px: np.ndarray, size: int = 64) -> np.ndarray:
    """(2,3) affine from image pixels to the ``size`` x ``size`` crop (eyes level, FER framing)."""
    right, left = eye_centres(landmarks_px)
    angle = np.arctan2(left[1] - right[1], left[0] - right[0])
    c, s = np.cos(angle), np.sin(angle)
    level = np.array([[c, s], [-s, c]])  # rotates the eye line onto the x axis
    xy = np.asarray(landmarks_px, dtype=np.float64)[:, :2] @ level.T
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    haar_side = max(HAAR_PER_WIDTH * (hi[0] - lo[0]), HAAR_PER_HEIGHT * (hi[1] - lo[1]))
    centre = (lo + hi) / 2 - np.array([0.0, HAAR_RAISE * haar_side])
    scale = size / (MARGIN * haar_side)
    linear = scale * level
    offset = np.full(2, (size - 1) / 2) - scale * centre
    return np.hstack([linear, offset[:, None]])


def aligned_crop(grey: np.ndarray, landmarks_px: np.ndarray, size: int = 64) -> np.ndarray:
    """The face as a ``size`` x ``size`` uint8 crop, eyes level, framed like FER2013."""
    matrix = alignment_matrix(landmarks_px, size)
    return cv2.warpAffine(grey, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# mediapipe face mesh points standing for the outline of the iBUG 68-point landmarks that face-api.js
# frames its expression model's input with: the jaw line from temple to temple through the chin, and the
# two eyebrows (every other iBUG point lies inside their box).
IBUG_JAW = (127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361,
            323, 454, 356)
IBUG_BROWS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
FACEAPI_BOX_PADDING = 0.2  # face-api.js FaceLandmarks.align(): the landmarks' box grown by 20 % of its sides


def faceapi_face(image: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """The face as face-api.js cuts it for its expression model, from moodwire's landmarks: the box of
    the 68-point outline grown by 20 % (10 % a side, ``Box.pad``), clipped to the image and floored
    (``Box.clipAtImageBorders``), then sliced out (``extractFaceTensors``). At least 1x1 pixel."""
    xy = np.asarray(landmarks_px, dtype=np.float64)[list(IBUG_JAW + IBUG_BROWS), :2]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    pad_x, pad_y = (x1 - x0) * FACEAPI_BOX_PADDING, (y1 - y0) * FACEAPI_BOX_PADDING
    x0, y0, x1, y1 = x0 - pad_x / 2, y0 - pad_y / 2, x1 + pad_x / 2, y1 + pad_y / 2
    h, w = image.shape[:2]
    left, top = max(x0, 0.0), max(y0, 0.0)
    width, height = min(x1 - left, w - left), min(y1 - top, h - top)
    left, top, width, height = (int(np.floor(v)) for v in (left, top, width, height))
    left, top = min(left, w - 1), min(top, h - 1)
    return image[top:top + max(height, 1), left:left + max(width, 1)]
