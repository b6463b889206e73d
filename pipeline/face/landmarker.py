"""mediapipe Tasks FaceLandmarker in VIDEO mode, returning plain numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RawFace:
    landmarks: np.ndarray  # (478, 3) float32, x and y normalised to [0, 1] of width and height
    blendshapes: np.ndarray  # (52,) float32
    matrix: np.ndarray  # (4, 4) float32 facial transformation matrix


class Landmarker:
    """Several faces per frame; VIDEO mode tracks between frames, which is what makes it fast."""

    def __init__(self, model_path: Path, max_faces: int) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.VIDEO, num_faces=max_faces,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        self._task = vision.FaceLandmarker.create_from_options(options)
        self._last_ms = -1
        self.model_path, self.max_faces = model_path, max_faces
        self.blendshape_names: list[str] = []

    def detect(self, rgb: np.ndarray, t_ms: int) -> list[RawFace]:
        """Faces in an RGB uint8 frame. Timestamps must rise: a repeat or a jump back
        (a looped file, a replay) is moved to just after the last one."""
        import mediapipe as mp

        t_ms = max(t_ms, self._last_ms + 1)
        self._last_ms = t_ms
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._task.detect_for_video(image, t_ms)
        if result.face_blendshapes and not self.blendshape_names:
            self.blendshape_names = [c.category_name for c in result.face_blendshapes[0]]
        return [RawFace(np.array([(p.x, p.y, p.z) for p in marks], dtype=np.float32),
                        np.array([c.score for c in shapes], dtype=np.float32),
                        np.asarray(matrix, dtype=np.float32))
                for marks, shapes, matrix in zip(result.face_landmarks, result.face_blendshapes,
                                                 result.facial_transformation_matrixes)]

    def fresh(self) -> "Landmarker":
        """Another landmarker of the same model: VIDEO mode keeps state between frames, one per stream."""
        other = Landmarker(self.model_path, self.max_faces)
        other.detect(np.zeros((480, 640, 3), np.uint8), 0)  # the first call initialises the graph
        return other

    def close(self) -> None:
        self._task.close()
