"""The face's expression model, run batched over all faces of a frame, or of several frames, through an engine.

Four models fill the one interface (``score_frames``): the packaged mini-Xception (FER2013, 7 classes, grey
64x64 crops framed like FER2013's, valence/arousal then come from the circumplex rule), the packaged
face-api.js FaceExpressionNet (7 classes, RGB faces framed as face-api.js frames them), their ensemble,
and the HSEmotion profile (AffectNet, 8 classes folded onto the 7, valence/arousal from its trained head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from moodwire.engines import faceapi_expression_spec, hsemotion_spec
from moodwire.engines.engine import Engine
from moodwire.engines.face_expression_spec import preprocess
from moodwire.pipeline.core.labels import AFFECTNET_TO_LABELS, FACEAPI_TO_LABELS, LABELS, fold_matrix
from moodwire.pipeline.face.alignment import aligned_crop, face_box, faceapi_face

CROP_SIZE = 64
PACKAGED_MODEL = "fer-mini-xception"
FACEAPI_MODEL = "faceapi-expression"


@dataclass
class FaceScores:
    """Per face, in the order given: what the model saw and what it said."""

    crops: np.ndarray  # (N, 64, 64) uint8 grey: the model's input, or a grey thumbnail of it
    probs: np.ndarray  # (N, 7) float32 in LABELS order
    valence_arousal: np.ndarray | None = None  # (N, 2) from a trained head; None: the rule supplies them
    raw: np.ndarray | None = None  # (N, K) probabilities in the model's own labels, when they differ from LABELS

    def faces(self, t_capture: int) -> list["FaceScore"]:
        """One record per face, stamped with the capture time of the frame the model saw."""
        n = len(self.probs)
        va = self.valence_arousal if self.valence_arousal is not None else [None] * n
        raw = self.raw if self.raw is not None else [None] * n
        return [FaceScore(c, p, v, r, t_capture) for c, p, v, r in zip(self.crops, self.probs, va, raw)]


@dataclass
class FaceScore:
    """What the model said about one face, and when: reused for a track on frames it skips."""

    crop: np.ndarray
    probs: np.ndarray
    valence_arousal: np.ndarray | None
    raw: np.ndarray | None
    t_capture: int


class FaceModel(Protocol):
    name: str  # PACKAGED_MODEL or the profile's name
    engine: Engine
    labels: list[str]
    raw_labels: list[str]  # the model's own labels; [] when they are LABELS
    va_from_model: bool  # valence/arousal come from the model's trained head, not from the rule
    every_nth: int  # how often it sees each face unless face.expression_every says otherwise

    def score_frames(self, frames: list[Faces]) -> list[FaceScores]: ...


Faces = tuple[np.ndarray, list[np.ndarray]]  # a BGR frame and the pixel landmarks of the faces to score in it


def split(values: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    """``values`` (rows for every face of every frame, in order) cut back into one array per frame."""
    return np.split(values, np.cumsum(counts)[:-1]) if counts else []


class ExpressionModel:
    """The packaged mini-Xception: one engine call for the grey, eyes-level crops of all faces."""

    name = PACKAGED_MODEL
    raw_labels: list[str] = []
    va_from_model = False
    every_nth = 1

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.labels = list(LABELS)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(N, 64, 64) uint8 grey crops -> (N, 7) float32 probabilities; one engine call for all N."""
        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        (probs,) = self.engine.run({"crops": preprocess(crops)})
        return np.asarray(probs, dtype=np.float32)

    def score_frames(self, frames: list[Faces]) -> list[FaceScores]:
        """The faces of several frames (of one stream or several): one engine call for all of them."""
        import cv2

        crops = []
        for image_bgr, landmarks_px in frames:
            grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
            crops += [aligned_crop(grey, p[:, :2], CROP_SIZE) for p in landmarks_px]
        counts = [len(marks) for _, marks in frames]
        batch = np.stack(crops) if crops else np.zeros((0, CROP_SIZE, CROP_SIZE), np.uint8)
        return [FaceScores(c, p) for c, p in zip(split(batch, counts), split(self.predict(batch), counts))]


class HSEmotionModel:
    """The HSEmotion profile: the RGB box of each face's landmarks, as the authors crop a detector's box."""

    va_from_model = True

    def __init__(self, engine: Engine, name: str, every_nth: int = 1) -> None:
        self.engine = engine
        self.name = name
        self.every_nth = every_nth
        self.labels = list(LABELS)
        self.raw_labels = list(AFFECTNET_TO_LABELS)
        self._fold = fold_matrix(self.raw_labels, AFFECTNET_TO_LABELS)

    def predict(self, faces_rgb: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """RGB face images -> (N, 8) AffectNet probabilities and (N, 2) valence, arousal; one engine call."""
        (scores,) = self.engine.run({hsemotion_spec.INPUT_NAME: hsemotion_spec.preprocess(faces_rgb)})
        return hsemotion_spec.postprocess(scores)

    def score_frames(self, frames: list[Faces]) -> list[FaceScores]:
        """The faces of several frames (of one stream or several): one engine call for all of them."""
        import cv2

        faces = [box_image(image_bgr, p) for image_bgr, marks in frames for p in marks]
        counts = [len(marks) for _, marks in frames]
        if not faces:
            return [FaceScores(np.zeros((0, CROP_SIZE, CROP_SIZE), np.uint8), np.zeros((0, len(self.labels)),
                                                                                       np.float32))
                    for _ in frames]
        raw, va = self.predict([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in faces])
        thumbs = _grey_thumbnails(faces)
        probs = (raw @ self._fold).astype(np.float32)
        return [FaceScores(*parts) for parts in zip(split(thumbs, counts), split(probs, counts),
                                                     split(va.astype(np.float32), counts), split(raw, counts))]


class FaceApiExpressionModel:
    """The packaged face-api.js FaceExpressionNet: the RGB face as face-api.js frames it, one engine call."""

    name = FACEAPI_MODEL
    raw_labels = list(faceapi_expression_spec.FACEAPI_LABELS)
    va_from_model = False
    every_nth = 1

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.labels = list(LABELS)
        self._fold = fold_matrix(self.raw_labels, FACEAPI_TO_LABELS)

    def predict(self, faces_rgb: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 faces -> (N, 7) probabilities in face-api.js's label order; one engine call."""
        if not faces_rgb:
            return np.zeros((0, len(self.raw_labels)), np.float32)
        (probs,) = self.engine.run({faceapi_expression_spec.INPUT_NAME: faceapi_expression_spec.preprocess(faces_rgb)})
        return np.asarray(probs, dtype=np.float32)

    def score_frames(self, frames: list[Faces]) -> list[FaceScores]:
        """The faces of several frames (of one stream or several): one engine call for all of them."""
        import cv2

        faces = [faceapi_face(image_bgr, p) for image_bgr, marks in frames for p in marks]
        counts = [len(marks) for _, marks in frames]
        raw = self.predict([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in faces])
        thumbs = _grey_thumbnails(faces)
        return [FaceScores(*parts) for parts in zip(split(thumbs, counts), split(raw @ self._fold, counts),
                                                     [None] * len(frames), split(raw, counts))]


class EnsembleModel:
    """The mean of several 7-class models' probabilities (linear, not log-space: a class one member all
    but rules out keeps the other's share, so mini-Xception, which almost never says disgust, does not veto
    face-api.js's disgust; and one confidently wrong member moves the mean by at most its weight).
    The crop shown is the first member's."""

    va_from_model = False
    raw_labels: list[str] = []
    every_nth = 1

    def __init__(self, members: list[FaceModel]) -> None:
        if any(m.va_from_model for m in members):
            raise ValueError("an ensemble averages class probabilities; its members must not be valence heads")
        self.members = members
        self.name = "ensemble(" + "+".join(m.name for m in members) + ")"
        self.engine = members[0].engine
        self.labels = list(LABELS)

    def score_frames(self, frames: list[Faces]) -> list[FaceScores]:
        per_member = [m.score_frames(frames) for m in self.members]
        return [FaceScores(scores[0].crops, np.mean([s.probs for s in scores], axis=0).astype(np.float32))
                for scores in zip(*per_member)]


def _grey_thumbnails(faces_bgr: list[np.ndarray]) -> np.ndarray:
    """64x64 grey pictures of what a model saw (FaceTracks.crop), for models whose input is another size."""
    import cv2

    if not faces_bgr:
        return np.zeros((0, CROP_SIZE, CROP_SIZE), np.uint8)
    return np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (CROP_SIZE, CROP_SIZE),
                                interpolation=cv2.INTER_AREA) for f in faces_bgr])


def box_image(image: np.ndarray, landmarks_px: np.ndarray) -> np.ndarray:
    """The image inside the landmarks' extent, clipped to the frame (at least 1x1 pixel).

    HSEmotion was trained on AffectNet's face boxes and its authors feed it a face detector's box
    (MTCNN in their examples), not an aligned crop. The landmark extent is such a box, from cheek to
    cheek and down to the chin; it reaches a little higher up the forehead than a detector's box.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = face_box(landmarks_px[:, :2])
    left, top = int(np.clip(np.floor(x0), 0, w - 1)), int(np.clip(np.floor(y0), 0, h - 1))
    right, bottom = int(np.clip(np.ceil(x1), left + 1, w)), int(np.clip(np.ceil(y1), top + 1, h))
    return image[top:bottom, left:right]
