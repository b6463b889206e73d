"""The face node's logic: video.frame in, face.tracks out, for every frame it is given.

Per frame: mediapipe landmarks, blendshapes and pose for every face; a track id
per face; ONE expression-model call for all faces (pipeline/face/expression.py:
the packaged model on aligned 64x64 grey crops, or a fetched profile);
valence/arousal from the profile's trained head where it has one, else by the
documented rule of pipeline/face/affect_rule.py.
A frame without a face gives a message with ``faces: []``; it is not skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moodwire.engines.engine import Engine, Stopwatch
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.messages import FaceTrack, FaceTracks, HeadPose, Message, VideoFrame
from moodwire.pipeline.core.node import Outputs
from moodwire.pipeline.face.affect_rule import RULE_NAME, valence_arousal
from moodwire.pipeline.face.alignment import face_box, landmarks_to_pixels
from moodwire.pipeline.face.expression import (EnsembleModel, ExpressionModel, FaceApiExpressionModel, FaceModel,
                                               FaceScore, FaceScores, HSEmotionModel)
from moodwire.pipeline.face.head_pose import head_pose_degrees
from moodwire.pipeline.face.landmarker import Landmarker, RawFace
from moodwire.pipeline.face.tracking import FaceTracker, TrackerSettings


class FaceStep:
    inputs = ("video.frame",)

    def __init__(self, landmarker: Landmarker, expression: FaceModel, tracker: FaceTracker, every: int = 1) -> None:
        self.landmarker = landmarker
        self.expression = expression
        self.tracker = tracker
        self.every = every  # the expression model sees each track's face every Nth frame (face.expression_every)
        self._scored: dict[int, tuple[int, FaceScore]] = {}  # track id -> (frame index, its last scores)
        self._watches = {k: Stopwatch() for k in ("landmarks_ms", "expression_ms", "total_ms")}

    @property
    def timings(self) -> dict[str, float]:
        """Stage times of the last analysed frame, in milliseconds."""
        return {k: watch.last_ms for k, watch in self._watches.items()}

    def process(self, topic: str, msg: Message) -> Outputs:
        assert isinstance(msg, VideoFrame)
        yield "face.tracks", self.analyse(msg)

    def idle(self, now: int) -> Outputs:
        return ()

    def analyse(self, frame: VideoFrame) -> FaceTracks:
        """Every face of one frame; ``timings`` then gives this frame's stage times."""
        with self._watches["total_ms"]:
            seen = self.see(frame)
            with self._watches["expression_ms"]:
                [scores] = score_due(self.expression, [seen])
            return self.finish(seen, scores)

    def see(self, frame: VideoFrame) -> "Seen":
        """Landmarks and track ids of every face, and which faces the expression model is due to see.
        Only this step's landmarker and tracker are used, so the steps of several streams may run
        ``see`` in threads at once (mediapipe releases the GIL)."""
        import cv2

        with self._watches["landmarks_ms"]:
            rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
            raw = self.landmarker.detect(rgb, frame.t_capture // 1_000_000)
        if not raw:
            self.tracker.update(np.zeros((0, 4)), frame.t_capture)  # lets unseen tracks age out
            self._scored.clear()
            return Seen(frame, [], [], np.zeros((0, 4), np.float32), [], [])
        pixels = [landmarks_to_pixels(f.landmarks, frame.width, frame.height) for f in raw]
        boxes = np.array([face_box(p[:, :2]) for p in pixels], dtype=np.float32)
        ids = [int(i) for i in self.tracker.update(boxes, frame.t_capture)]
        due = [i for i, track_id in enumerate(ids) if track_id not in self._scored
               or frame.frame_index - self._scored[track_id][0] >= self.every
               or frame.frame_index < self._scored[track_id][0]]  # a source that restarted its count
        return Seen(frame, raw, pixels, boxes, ids, due)

    def finish(self, seen: "Seen", fresh: FaceScores | None) -> FaceTracks:
        """The message, from what ``see`` found and the model's scores of its due faces (new tracks and
        those last scored ``every`` or more frames ago; the others keep their track's last scores)."""
        frame = seen.frame
        if fresh is not None:
            scored = fresh.faces(frame.t_capture)
            self._scored.update({seen.ids[i]: (frame.frame_index, s) for i, s in zip(seen.due, scored)})
        self._scored = {track_id: self._scored[track_id] for track_id in seen.ids}  # forget tracks out of view
        return FaceTracks(
            frame_index=frame.frame_index, width=frame.width, height=frame.height,
            t_capture=frame.t_capture, valid=frame.valid, faces=self._faces(seen),
            expression_labels=self.expression.labels, blendshape_names=self.landmarker.blendshape_names,
            expression_model=self.expression.name, expression_raw_labels=self.expression.raw_labels,
            va_rule="" if self.expression.va_from_model else RULE_NAME,
            va_source=f"model:{self.expression.name}" if self.expression.va_from_model else f"rule:{RULE_NAME}",
            expression_backend=self.expression.engine.backend)

    def _faces(self, seen: "Seen") -> list[FaceTrack]:
        if not seen.ids:
            return []
        frame = seen.frame
        scored = [self._scored[track_id][1] for track_id in seen.ids]
        va = [s.valence_arousal for s in scored]
        if any(v is None for v in va):
            shapes = np.stack([f.blendshapes for f in seen.raw])
            va = valence_arousal(np.stack([s.probs for s in scored]), shapes, self.landmarker.blendshape_names)
        return [FaceTrack(track_id=track_id, box=[float(v) for v in box], landmarks=marks,
                          blendshapes=face.blendshapes, head_pose=_head_pose(face.matrix),
                          crop=s.crop, expression=s.probs, valence=float(v), arousal=float(a),
                          expression_raw=[] if s.raw is None else [float(x) for x in s.raw],
                          expression_age_ms=(frame.t_capture - s.t_capture) / 1e6)
                for track_id, box, marks, face, s, (v, a) in zip(seen.ids, seen.boxes, seen.pixels, seen.raw,
                                                                 scored, va)]

    def fresh(self) -> "FaceStep":
        """For another stream: its own landmarker and tracker, the same expression model."""
        return FaceStep(self.landmarker.fresh(), self.expression, FaceTracker(self.tracker.settings), self.every)

    def close(self) -> None:
        self.landmarker.close()


@dataclass
class Seen:
    """One frame after landmarks and tracking, before the expression model."""

    frame: VideoFrame
    raw: list[RawFace]
    pixels: list[np.ndarray]  # each face's landmarks in pixels
    boxes: np.ndarray  # (N, 4)
    ids: list[int]  # track ids
    due: list[int]  # indexes of the faces the model sees now


def score_due(model: FaceModel, seen: list[Seen]) -> list[FaceScores | None]:
    """The due faces of several frames (of one stream or several) scored in ONE model call; None for a
    frame with none due."""
    wanted = [k for k, s in enumerate(seen) if s.due]
    scores = model.score_frames([(seen[k].frame.image, [seen[k].pixels[i] for i in seen[k].due]) for k in wanted])
    out: list[FaceScores | None] = [None] * len(seen)
    for k, got in zip(wanted, scores):
        out[k] = got
    return out


def _head_pose(matrix: np.ndarray) -> HeadPose:
    yaw, pitch, roll = head_pose_degrees(matrix)
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll)


def build_face_step(config: Config | None = None) -> FaceStep:
    """Load the checked models (the expression ONNX as ``moodwire export`` made it, or the fetched
    profile that ``face.profile`` names) and warm up."""
    from moodwire.engines.registry import resolve

    config = config or Config()
    landmarks_model = resolve("face-landmarker", config.models.face_landmarker)
    expression = load_face_model(config)
    landmarker = Landmarker(landmarks_model.path, config.face.max_faces)
    landmarker.detect(np.zeros((480, 640, 3), np.uint8), 0)  # the first call initialises the graph
    tracker = FaceTracker(TrackerSettings(iou_min=config.face.track_iou_min,
                                          max_gap_s=config.face.track_max_gap_s))
    return FaceStep(landmarker, expression, tracker, config.face.expression_every or expression.every_nth)


def load_face_model(config: Config) -> FaceModel:
    """The packaged expression model ``face.model`` names (or both, averaged), or the profile ``face.profile``
    names (ModelMissing with the fetch or export command when it is missing); its engines warmed up."""
    from moodwire.engines.loader import exported, load_engine
    from moodwire.engines.profiles import fetched_file, get_profile

    face = config.face
    slots = face.expression_exports()
    if not slots:
        profile = get_profile(face.profile, "face")
        engine = load_engine(fetched_file(profile), face.engine, face.threads)
        engine.warm_up()
        return HSEmotionModel(engine, profile.name, profile.every_nth)

    def packaged(slot: str, override: str = "") -> Engine:
        engine = load_engine(exported(slot, override), face.engine, face.threads)
        engine.warm_up()
        return engine

    members: list[FaceModel] = []
    if "face-expression" in slots:
        members.append(ExpressionModel(packaged("face-expression", config.models.face_expression)))
    if "face-expression-faceapi" in slots:
        members.append(FaceApiExpressionModel(packaged("face-expression-faceapi")))
    return EnsembleModel(members) if len(members) > 1 else members[0]
