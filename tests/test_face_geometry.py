"""Face node geometry and rules: tracking, alignment, head pose, valence/arousal.

Pure functions are tested on synthetic input; the same functions are then run
on real footage (carphone) through the real mediapipe FaceLandmarker.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from moodwire.engines.registry import resolve
from moodwire.pipeline.core.labels import CIRCUMPLEX, LABELS
from moodwire.pipeline.face.affect_rule import BLENDSHAPE_WEIGHTS, RULE_DESCRIPTION, RULE_NAME, valence_arousal
from moodwire.pipeline.face.alignment import (CHIN, FOREHEAD, aligned_crop, alignment_matrix, eye_centres, face_box,
                                              landmarks_to_pixels)
from moodwire.pipeline.face.head_pose import head_pose_degrees
from moodwire.pipeline.face.landmarker import Landmarker
from moodwire.pipeline.face.tracking import FaceTracker, TrackerSettings, greedy_match, iou_matrix
from moodwire.tools.media import reference as ref

FRAME_NS = 1_000_000_000 // 30


# ---------------------------------------------------------------- helpers

def rot(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation about a camera axis (x right, y up, z towards the viewer)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def pose_matrix(yaw: float, pitch: float, roll: float, scale: float = 1.0) -> np.ndarray:
    """A 4x4 like mediapipe's, built with the convention head_pose documents."""
    m = np.eye(4)
    m[:3, :3] = scale * rot("y", yaw) @ rot("x", -pitch) @ rot("z", roll)
    m[:3, 3] = (1.0, -2.0, -40.0)
    return m


def transform(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return np.asarray(xy)[..., :2] @ matrix[:, :2].T + matrix[:, 2]


def no_blendshapes(n: int) -> np.ndarray:
    return np.zeros((n, len(BLENDSHAPE_NAMES)))


def one_hot(label: str, n: int = 1) -> np.ndarray:
    probs = np.zeros((n, len(LABELS)))
    probs[:, LABELS.index(label)] = 1.0
    return probs


# mediapipe's 52 blendshape names, in its order (checked against the real model below)
BLENDSHAPE_NAMES = (
    "_neutral browDownLeft browDownRight browInnerUp browOuterUpLeft browOuterUpRight cheekPuff cheekSquintLeft "
    "cheekSquintRight eyeBlinkLeft eyeBlinkRight eyeLookDownLeft eyeLookDownRight eyeLookInLeft eyeLookInRight "
    "eyeLookOutLeft eyeLookOutRight eyeLookUpLeft eyeLookUpRight eyeSquintLeft eyeSquintRight eyeWideLeft "
    "eyeWideRight jawForward jawLeft jawOpen jawRight mouthClose mouthDimpleLeft mouthDimpleRight mouthFrownLeft "
    "mouthFrownRight mouthFunnel mouthLeft mouthLowerDownLeft mouthLowerDownRight mouthPressLeft mouthPressRight "
    "mouthPucker mouthRight mouthRollLower mouthRollUpper mouthShrugLower mouthShrugUpper mouthSmileLeft "
    "mouthSmileRight mouthStretchLeft mouthStretchRight mouthUpperUpLeft mouthUpperUpRight noseSneerLeft "
    "noseSneerRight").split()


def with_blendshapes(**scores: float) -> np.ndarray:
    row = np.zeros((1, len(BLENDSHAPE_NAMES)))
    for name, score in scores.items():
        row[0, BLENDSHAPE_NAMES.index(name)] = score
    return row


# ---------------------------------------------------------------- real footage

class Face(NamedTuple):
    landmarks_px: np.ndarray  # (478, 3)
    matrix: np.ndarray  # (4, 4)
    blendshapes: np.ndarray  # (52,)
    blendshape_names: tuple[str, ...]


def detect(frames: list[np.ndarray], indices: list[int] | None = None) -> list[list[Face]]:
    """Faces of each frame, from the node's own VIDEO-mode landmarker (timestamps from frame indices at 30 fps)."""
    landmarker = Landmarker(resolve("face-landmarker").path, max_faces=4)
    indices = list(range(len(frames))) if indices is None else indices
    out = []
    try:
        for i in indices:
            height, width = frames[i].shape[:2]
            raw = landmarker.detect(cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB), i * 1000 // 30)
            out.append([Face(landmarks_to_pixels(f.landmarks, width, height), f.matrix, f.blendshapes,
                             tuple(landmarker.blendshape_names)) for f in raw])
    finally:
        landmarker.close()
    return out


def track(tracker: FaceTracker, faces: list[Face], frame_index: int) -> list[int]:
    return tracker.update(np.array([face_box(f.landmarks_px) for f in faces]).reshape(-1, 4), frame_index * FRAME_NS)


def load_frames(clip: Callable[[], Path]) -> list[np.ndarray]:
    return ref.read_frames(clip())


@pytest.fixture(scope="module")
def carphone() -> tuple[list[np.ndarray], list[list[Face]]]:
    frames = load_frames(lambda: ref.packaged_clip("carphone_pristine.mp4"))
    return frames, detect(frames)


@pytest.fixture(scope="module")
def leave_and_return(session_cache: Path) -> tuple[list[int], list[list[Face]]]:
    """Frames around the cut away and back (all of them would add seconds and test nothing more).

    The clip goes where conftest's ``reference_clips`` puts it, so it is made once a session."""
    folder = session_cache / "reference"
    folder.mkdir(exist_ok=True)
    frames = load_frames(lambda: ref.face_leaves_and_returns(folder))
    span = ref.LEAVE_SPAN
    indices = [*range(span.start - 8, span.start), *span[::4], *range(span.stop, span.stop + 8)]
    return indices, detect(frames, indices)


# ---------------------------------------------------------------- tracking

def test_iou_matrix() -> None:
    a = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [50, 50, 60, 60]])
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 1 / 3, 0], [0, 0, 0]])
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def test_greedy_match_takes_best_pairs_once_and_respects_minimum() -> None:
    scores = np.array([[0.9, 0.8], [0.85, 0.1], [0.2, 0.25]])
    assert greedy_match(scores, 0.3) == [(0, 0)]  # row 1's best col is taken; (2, 1) is below 0.3
    assert greedy_match(scores, 0.05) == [(0, 0), (2, 1)]  # (2, 1) at 0.25 beats (1, 1) at 0.1
    assert greedy_match(np.zeros((0, 3)), 0.3) == []


def test_settings_are_frozen_with_documented_defaults() -> None:
    settings = TrackerSettings()
    assert (settings.iou_min, settings.max_gap_s) == (0.3, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.iou_min = 0.5  # type: ignore[misc]


def test_ids_follow_boxes_not_their_order() -> None:
    tracker = FaceTracker()
    left, right = [10, 10, 60, 60], [200, 10, 250, 60]
    assert tracker.update(np.array([left, right]), 0) == [1, 2]
    assert tracker.update(np.array([right, left]), FRAME_NS) == [2, 1]
    assert tracker.update(np.zeros((0, 4)), 2 * FRAME_NS) == []


def test_moving_face_keeps_its_id() -> None:
    tracker = FaceTracker()
    ids = [tracker.update(np.array([[x, 50, x + 100, 150]]), i * FRAME_NS) for i, x in enumerate(range(0, 300, 12))]
    assert ids == [[1]] * len(ids)


def test_a_missed_frame_keeps_the_id_a_long_absence_does_not() -> None:
    tracker = FaceTracker(TrackerSettings(iou_min=0.3, max_gap_s=0.5))
    box = np.array([[100, 100, 200, 200]])
    assert tracker.update(box, 0) == [1]
    assert tracker.update(np.zeros((0, 4)), FRAME_NS) == []
    assert tracker.update(box, 2 * FRAME_NS) == [1]
    assert tracker.update(box, 2 * FRAME_NS + 500_000_000) == [1]  # exactly max_gap_s: still kept
    assert tracker.update(box, 2 * FRAME_NS + 1_100_000_000) == [2]  # 0.6 s unseen: a new track
    assert tracker.active_ids == [2]


def test_a_new_face_gets_a_new_id_and_ids_are_never_reused() -> None:
    tracker = FaceTracker()
    assert tracker.update(np.array([[0, 0, 50, 50]]), 0) == [1]
    assert tracker.update(np.array([[0, 0, 50, 50], [300, 0, 350, 50]]), FRAME_NS) == [1, 2]
    assert tracker.update(np.array([[300, 0, 350, 50]]), 10**10) == [3]  # both expired; no id comes back
    assert tracker.update(np.array([[0, 0, 50, 50]]), 10**10 + FRAME_NS) == [4]


def test_carphone_keeps_one_id_for_all_120_frames(carphone) -> None:
    _, faces = carphone
    tracker = FaceTracker()
    ids = [track(tracker, frame_faces, i) for i, frame_faces in enumerate(faces)]
    assert len(ids) == 120
    assert ids == [[1]] * 120


def test_face_that_leaves_for_longer_than_max_gap_comes_back_with_a_new_id(leave_and_return) -> None:
    indices, faces = leave_and_return
    tracker = FaceTracker()
    span = ref.LEAVE_SPAN
    ids = [track(tracker, frame_faces, i) for i, frame_faces in zip(indices, faces)]
    assert ids == [[1] if i < span.start else [] if i in span else [2] for i in indices]
    assert len(ref.LEAVE_SPAN) / 30 > TrackerSettings().max_gap_s  # why the id changes


def test_two_faces_side_by_side_get_two_stable_ids(carphone) -> None:
    frames, _ = carphone
    pairs = [cv2.resize(np.hstack([frames[i], frames[119 - i]]), (640, 240)) for i in range(6)]
    faces = detect(pairs)
    tracker = FaceTracker()
    by_side = []
    for i, frame_faces in enumerate(faces):
        assert len(frame_faces) == 2
        ids = track(tracker, frame_faces, i)
        left_first = face_box(frame_faces[0].landmarks_px)[0] < face_box(frame_faces[1].landmarks_px)[0]
        by_side.append(tuple(ids) if left_first else tuple(ids[::-1]))
    assert by_side == [by_side[0]] * len(faces)
    assert sorted(by_side[0]) == [1, 2]


# ---------------------------------------------------------------- alignment

def test_landmarks_to_pixels_scales_z_by_width() -> None:
    px = landmarks_to_pixels(np.array([[0.5, 0.25, -0.1]] * 478), 640, 480)
    assert px.shape == (478, 3) and px.dtype == np.float32
    np.testing.assert_allclose(px[0], [320, 120, -64])


def test_face_box_is_the_landmark_extent() -> None:
    marks = np.array([[10, 40, 0], [30, 20, 5], [25, 60, -3]], dtype=float)
    np.testing.assert_allclose(face_box(marks), [10, 20, 30, 60])


@pytest.mark.parametrize("tilt", [-40.0, 0.0, 25.0])
def test_alignment_levels_the_eyes_of_a_tilted_face(carphone, tilt: float) -> None:
    frames, faces = carphone
    marks = faces[0][0].landmarks_px
    tilted = transform(cv2.getRotationMatrix2D((320, 240), tilt, 1.0), marks)
    matrix = alignment_matrix(tilted, 64)
    right, left = transform(matrix, np.array(eye_centres(tilted)))
    assert abs(right[1] - left[1]) < 1.0
    assert right[0] < left[0]  # not flipped: the subject's right eye stays on the crop's left


def test_aligned_crop_of_a_rotated_frame_matches_the_upright_one(carphone) -> None:
    frames, faces = carphone
    grey = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY)
    marks = faces[0][0].landmarks_px
    upright = aligned_crop(grey, marks)
    turn = cv2.getRotationMatrix2D((320, 240), 30.0, 1.0)
    turned = aligned_crop(cv2.warpAffine(grey, turn, (640, 480)), transform(turn, marks))
    shifted = aligned_crop(grey, marks + np.array([40.0, 0, 0]))  # a crop that frames the wrong place
    same = np.abs(upright.astype(int) - turned).mean()
    assert same < 6.0
    assert np.abs(upright.astype(int) - shifted).mean() > 2 * same


def test_aligned_crop_frames_the_face_like_fer2013(carphone) -> None:
    """Eyes level at ~0.4 of the height, forehead near the top, chin near the bottom, cheeks near the sides."""
    frames, faces = carphone
    for i in (0, 40, 80, 119):
        marks = faces[i][0].landmarks_px
        crop = aligned_crop(cv2.cvtColor(frames[i], cv2.COLOR_BGR2GRAY), marks)
        assert crop.shape == (64, 64) and crop.dtype == np.uint8
        q = transform(alignment_matrix(marks, 64), marks)
        eyes = transform(alignment_matrix(marks, 64), np.array(eye_centres(marks)))
        assert abs(eyes[0, 1] - eyes[1, 1]) < 1.0
        assert 20 < eyes[:, 1].mean() < 32 and abs(eyes[:, 0].mean() - 31.5) < 5
        assert 4 < q[FOREHEAD, 1] < 18
        assert 54 < q[CHIN, 1] < 65
        assert 2 < q[:, 0].min() < 16 and 48 < q[:, 0].max() < 62
    assert aligned_crop(np.zeros((480, 640), np.uint8), faces[0][0].landmarks_px, size=48).shape == (48, 48)


def test_aligned_crop_does_not_depend_on_the_image_resolution(carphone) -> None:
    frames, faces = carphone
    grey = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY)
    marks = faces[0][0].landmarks_px
    small = aligned_crop(grey, marks)
    large = aligned_crop(cv2.resize(grey, (1280, 960), interpolation=cv2.INTER_LINEAR), marks * 2)
    assert np.abs(small.astype(int) - large).mean() < 6.0


# ---------------------------------------------------------------- head pose

@pytest.mark.parametrize("yaw", [-70.0, -20.0, 0.0, 35.0, 80.0])
@pytest.mark.parametrize("pitch", [-60.0, 0.0, 15.0, 75.0])
@pytest.mark.parametrize("roll", [-120.0, -10.0, 0.0, 45.0])
def test_head_pose_angles_come_back(yaw: float, pitch: float, roll: float) -> None:
    np.testing.assert_allclose(head_pose_degrees(pose_matrix(yaw, pitch, roll, scale=1.3)), (yaw, pitch, roll),
                               atol=1e-6)


def test_head_pose_signs_mean_what_the_docstring_says() -> None:
    forward, up = np.array([0, 0, 1.0]), np.array([0, 1.0, 0])  # the face's own axes
    assert (pose_matrix(30, 0, 0)[:3, :3] @ forward)[0] > 0.4  # yaw > 0: nose towards the image's right
    assert (pose_matrix(0, 20, 0)[:3, :3] @ forward)[1] > 0.3  # pitch > 0: nose up
    assert (pose_matrix(0, 0, 20)[:3, :3] @ up)[0] < -0.3  # roll > 0: top of head towards the image's left
    assert head_pose_degrees(np.eye(4)) == (0.0, 0.0, 0.0)


def test_real_face_pose_is_near_frontal_and_agrees_with_the_landmarks(carphone) -> None:
    _, faces = carphone
    poses, tilts, nose_offsets = [], [], []
    for frame_faces in faces:
        face = frame_faces[0]
        poses.append(head_pose_degrees(face.matrix))
        right, left = eye_centres(face.landmarks_px)
        tilts.append(-np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))  # image y points down
        cheek_r, cheek_l, nose = face.landmarks_px[[234, 454, 1], 0]
        nose_offsets.append((nose - (cheek_r + cheek_l) / 2) / (cheek_l - cheek_r))
    yaw, pitch, roll = np.array(poses).T
    assert abs(yaw[0]) < 15 and abs(pitch[0]) < 15  # the first frame looks into the camera
    assert np.abs(yaw).max() < 25 and np.abs(pitch).max() < 30
    assert np.abs(roll - np.array(tilts)).max() < 4.0  # roll is the eye line's tilt in the image
    assert np.corrcoef(yaw, nose_offsets)[0, 1] > 0.9  # yaw > 0 when the nose points to the image's right


# ---------------------------------------------------------------- affect rule

def test_rule_is_named_and_its_description_quotes_the_table() -> None:
    assert RULE_NAME == "circumplex-v1" and RULE_NAME in RULE_DESCRIPTION
    assert CIRCUMPLEX.shape == (7, 2)
    for label, (v, a) in zip(LABELS, CIRCUMPLEX):
        written = re.search(rf"{label} ([-+]?[\d.]+),([-+]?[\d.]+)", RULE_DESCRIPTION)
        assert written, label
        assert (float(written[1]), float(written[2])) == (v, a)


def test_blendshape_nudge_is_bounded() -> None:
    weights = np.array(list(BLENDSHAPE_WEIGHTS.values()))
    assert np.all(np.clip(weights, 0, None).sum(axis=0) <= 0.35)
    assert np.all(np.clip(weights, None, 0).sum(axis=0) >= -0.35)
    assert set(BLENDSHAPE_WEIGHTS) <= set(BLENDSHAPE_NAMES)


def test_valence_orders_happy_neutral_sad() -> None:
    probs = np.concatenate([one_hot("happy"), one_hot("neutral"), one_hot("sad")])
    valence = valence_arousal(probs, no_blendshapes(3), BLENDSHAPE_NAMES)[:, 0]
    assert valence[0] > valence[1] > valence[2]
    assert valence[1] == 0.0


def test_surprise_and_fear_are_more_aroused_than_sad() -> None:
    probs = np.concatenate([one_hot("surprise"), one_hot("fear"), one_hot("sad")])
    arousal = valence_arousal(probs, no_blendshapes(3), BLENDSHAPE_NAMES)[:, 1]
    assert min(arousal[0], arousal[1]) > arousal[2]


def test_blendshapes_nudge_the_class_position() -> None:
    neutral = valence_arousal(one_hot("neutral"), no_blendshapes(1), BLENDSHAPE_NAMES)[0]
    smile = valence_arousal(one_hot("neutral"), with_blendshapes(mouthSmileLeft=0.8, mouthSmileRight=0.8),
                            BLENDSHAPE_NAMES)[0]
    frown = valence_arousal(one_hot("neutral"), with_blendshapes(mouthFrownLeft=0.8, browDownRight=0.9),
                            BLENDSHAPE_NAMES)[0]
    wide = valence_arousal(one_hot("neutral"), with_blendshapes(eyeWideLeft=1, eyeWideRight=1, jawOpen=0.7),
                           BLENDSHAPE_NAMES)[0]
    assert smile[0] > neutral[0] + 0.1 and smile[1] == neutral[1]
    assert frown[0] < neutral[0] - 0.05
    assert wide[1] > neutral[1] + 0.1 and wide[0] == neutral[0]


def test_mixture_is_the_weighted_mean_and_rows_are_renormalised() -> None:
    probs = np.zeros((2, 7))
    probs[0, [LABELS.index("happy"), LABELS.index("sad")]] = 0.5
    probs[1, LABELS.index("happy")] = 3.0  # not normalised: treated as all happy
    out = valence_arousal(probs, no_blendshapes(2), BLENDSHAPE_NAMES)
    np.testing.assert_allclose(out[0], (CIRCUMPLEX[3] + CIRCUMPLEX[4]) / 2)
    np.testing.assert_allclose(out[1], CIRCUMPLEX[3])
    np.testing.assert_allclose(valence_arousal(np.zeros((1, 7)), no_blendshapes(1), BLENDSHAPE_NAMES), [[0, 0]])


def test_output_is_clipped_and_shapes_hold() -> None:
    excited = with_blendshapes(mouthSmileLeft=1, mouthSmileRight=1, eyeWideLeft=1, eyeWideRight=1, jawOpen=1,
                               browInnerUp=1)
    np.testing.assert_allclose(valence_arousal(one_hot("happy"), excited, BLENDSHAPE_NAMES), [[1.0, 0.85]])
    np.testing.assert_allclose(valence_arousal(one_hot("surprise"), excited, BLENDSHAPE_NAMES), [[0.5, 1.0]])
    frowning = with_blendshapes(mouthFrownLeft=1, mouthFrownRight=1, browDownLeft=1, browDownRight=1,
                                noseSneerLeft=1, noseSneerRight=1)
    np.testing.assert_allclose(valence_arousal(one_hot("sad"), frowning, BLENDSHAPE_NAMES), [[-1.0, -0.4]])
    assert valence_arousal(np.zeros((0, 7)), np.zeros((0, 52)), BLENDSHAPE_NAMES).shape == (0, 2)
    assert valence_arousal(one_hot("fear", 5), no_blendshapes(5), BLENDSHAPE_NAMES).shape == (5, 2)


def test_blendshapes_are_read_by_name_not_position() -> None:
    scores = with_blendshapes(mouthSmileLeft=0.6, eyeWideRight=0.5, browDownLeft=0.3)
    order = np.random.default_rng(0).permutation(len(BLENDSHAPE_NAMES))
    shuffled = valence_arousal(one_hot("sad"), scores[:, order], [BLENDSHAPE_NAMES[i] for i in order])
    np.testing.assert_allclose(shuffled, valence_arousal(one_hot("sad"), scores, BLENDSHAPE_NAMES))
    renamed = ["other" if n == "mouthSmileLeft" else n for n in BLENDSHAPE_NAMES]
    with pytest.raises(ValueError, match="mouthSmileLeft"):
        valence_arousal(one_hot("sad"), scores, renamed)


def test_rule_on_real_blendshapes(carphone) -> None:
    _, faces = carphone
    names = faces[0][0].blendshape_names
    assert list(names) == BLENDSHAPE_NAMES
    scores = np.array([f[0].blendshapes for f in faces])
    out = valence_arousal(np.tile(one_hot("neutral"), (len(faces), 1)), scores, names)
    assert out.shape == (120, 2) and np.all(np.isfinite(out)) and np.all(np.abs(out) <= 1.0)
    assert np.ptp(out[:, 0]) > 0.0  # the talking face moves the nudge from frame to frame
