"""The face node's logic: video.frame in, face.tracks out, for every frame it is given.

Per frame: mediapipe landmarks, blendshapes and pose for every face; a track id
per face; an aligned 64x64 grey crop per face; ONE expression-model call for
all crops; valence/arousal by the documented rule of pipeline/face/affect_rule.py.
A frame without a face gives a message with ``faces: []``; it is not skipped.
"""

from __future__ import annotations

import numpy as np

from moodwire.engines.engine import Stopwatch
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.messages import FaceTrack, FaceTracks, HeadPose, Message, VideoFrame
from moodwire.pipeline.core.node import Outputs
from moodwire.pipeline.face.affect_rule import RULE_NAME, valence_arousal
from moodwire.pipeline.face.alignment import aligned_crop, face_box, landmarks_to_pixels
from moodwire.pipeline.face.expression import ExpressionModel
from moodwire.pipeline.face.head_pose import head_pose_degrees
from moodwire.pipeline.face.landmarker import Landmarker, RawFace
from moodwire.pipeline.face.tracking import FaceTracker, TrackerSettings

CROP_SIZE = 64


class FaceStep:
    inputs = ("video.frame",)

    def __init__(self, landmarker: Landmarker, expression: ExpressionModel, tracker: FaceTracker) -> None:
        self.landmarker = landmarker
        self.expression = expression
        self.tracker = tracker
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
        import cv2

        w = self._watches
        with w["total_ms"]:
            with w["landmarks_ms"]:
                rgb = cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)
                raw = self.landmarker.detect(rgb, frame.t_capture // 1_000_000)
            faces = self._faces(frame, raw)
        return FaceTracks(
            frame_index=frame.frame_index, width=frame.width, height=frame.height,
            t_capture=frame.t_capture, valid=frame.valid, faces=faces,
            expression_labels=self.expression.labels, blendshape_names=self.landmarker.blendshape_names,
            va_rule=RULE_NAME, expression_backend=self.expression.engine.backend)

    def _faces(self, frame: VideoFrame, raw: list[RawFace]) -> list[FaceTrack]:
        import cv2

        if not raw:
            self.tracker.update(np.zeros((0, 4)), frame.t_capture)  # lets unseen tracks age out
            self._watches["expression_ms"].last_ms = 0.0
            return []
        pixels = [landmarks_to_pixels(f.landmarks, frame.width, frame.height) for f in raw]
        boxes = np.array([face_box(p[:, :2]) for p in pixels], dtype=np.float32)
        ids = self.tracker.update(boxes, frame.t_capture)
        grey = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        crops = np.stack([aligned_crop(grey, p[:, :2], CROP_SIZE) for p in pixels])
        with self._watches["expression_ms"]:
            probs = self.expression.predict(crops)
        shapes = np.stack([f.blendshapes for f in raw])
        va = valence_arousal(probs, shapes, self.landmarker.blendshape_names)
        return [FaceTrack(track_id=int(track_id), box=[float(v) for v in box], landmarks=marks,
                          blendshapes=face.blendshapes, head_pose=_head_pose(face.matrix),
                          crop=crop, expression=p, valence=float(v), arousal=float(a))
                for track_id, box, marks, face, crop, p, (v, a)
                in zip(ids, boxes, pixels, raw, crops, probs, va)]

    def close(self) -> None:
        self.landmarker.close()


def _head_pose(matrix: np.ndarray) -> HeadPose:
    yaw, pitch, roll = head_pose_degrees(matrix)
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll)


def build_face_step(config: Config | None = None) -> FaceStep:
    """Load the checked models (the expression ONNX as ``moodwire export`` made it) and warm up."""
    from moodwire.engines.loader import exported, load_engine
    from moodwire.engines.registry import resolve

    config = config or Config()
    landmarks_model = resolve("face-landmarker", config.models.face_landmarker)
    onnx_path = exported("face-expression", config.models.face_expression)
    engine = load_engine(onnx_path, config.face.engine, config.face.threads)
    engine.warm_up()
    landmarker = Landmarker(landmarks_model.path, config.face.max_faces)
    landmarker.detect(np.zeros((480, 640, 3), np.uint8), 0)  # the first call initialises the graph
    tracker = FaceTracker(TrackerSettings(iou_min=config.face.track_iou_min,
                                          max_gap_s=config.face.track_max_gap_s))
    return FaceStep(landmarker, ExpressionModel(engine), tracker)
