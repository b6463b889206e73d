"""Head yaw, pitch and roll from mediapipe's facial transformation matrix.

The matrix maps mediapipe's canonical face model into camera space: x to the
image's right, y up, z towards the viewer (the face is at negative z); a face
looking straight into the camera, upright, has the identity rotation.

Convention (degrees, all zero for a frontal, upright face):

* yaw   > 0: the face turns towards the image's right (the subject's own left);
* pitch > 0: the face tilts up (chin up);
* roll  > 0: the head tilts counter-clockwise as seen in the image (top of the
  head towards the image's left, i.e. towards the subject's right shoulder).

The rotation is decomposed as ``R = Ry(yaw) @ Rx(-pitch) @ Rz(roll)`` with
right-handed rotations about the camera axes: yaw about the vertical axis is
outermost, as the neck turns the whole head. Gimbal lock is at pitch = +-90.
"""

from __future__ import annotations

import numpy as np


def rotation_part(matrix: np.ndarray) -> np.ndarray:
    """The nearest pure rotation to the top-left 3x3 (drops any scale)."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64)[:3, :3])
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:  # a reflection is not a head pose; keep the nearest rotation
        rotation = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return rotation


def head_pose_degrees(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from a (4,4) (or (3,3)) facial transformation matrix."""
    r = rotation_part(matrix)
    yaw = np.arctan2(r[0, 2], r[2, 2])
    pitch = np.arcsin(np.clip(r[1, 2], -1.0, 1.0))
    roll = np.arctan2(r[1, 0], r[1, 1])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))
