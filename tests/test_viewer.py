"""``moodwire view``: known messages drawn on a real frame (boxes, labels, bars, circumplex, status),
the join of video, face.tracks and affect.frame, and the command writing PNGs from a running pipeline."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from moodwire.pipeline.core.labels import LABELS  # noqa: E402
from moodwire.pipeline.core.messages import (AffectFrame, FaceTrack, FaceTracks, HeadPose, PersonAffect,  # noqa: E402
                                             VideoFrame)
from moodwire.pipeline.viewer.draw import (ABSENT, BAND, BAR_H, BAR_W, BARS_H, BARS_W, CIRCUMPLEX, GREY,  # noqa: E402
                                           LIVE, MARGIN, Overlay, bars_origin, circumplex_centre, circumplex_point,
                                           fitted, render, track_colour)
from moodwire.pipeline.viewer.state import TRAIL_LENGTH, WAIT_NS, ViewState  # noqa: E402
from tests.conftest import MOODWIRE  # noqa: E402

BOX = [200.0, 120.0, 330.0, 290.0]
PROBS = [0.05, 0.02, 0.03, 0.60, 0.10, 0.15, 0.05]


@pytest.fixture(scope="module")
def picture(reference_clips) -> np.ndarray:
    from moodwire.tools.media.reference import read_frames

    return read_frames(reference_clips["one_face"])[10]


def face(track_id: int = 3, box=BOX) -> FaceTrack:
    return FaceTrack(track_id=track_id, box=list(box), landmarks=np.zeros((478, 3), np.float32),
                     blendshapes=np.zeros(52, np.float32), head_pose=HeadPose(yaw=0, pitch=0, roll=0),
                     crop=np.zeros((64, 64), np.uint8), expression=np.array(PROBS, np.float32),
                     valence=0.5, arousal=0.2)


def person(track_id: int | None = 3, valence: float = 0.5, arousal: float = -0.4) -> PersonAffect:
    return PersonAffect(track_id=track_id, labels=list(LABELS), probs=PROBS, valence=valence, arousal=arousal,
                        confidence=0.7, modalities={"face": 1.0})


def affect(i: int, persons: list[PersonAffect], missing=("voice", "text")) -> AffectFrame:
    return AffectFrame(frame_index=i, persons=persons, missing=list(missing),
                       notes={m: "no speech" for m in missing}, latency_ms=12.0)


def tracks(i: int, faces: list[FaceTrack]) -> FaceTracks:
    return FaceTracks(frame_index=i, width=640, height=480, faces=faces, expression_labels=list(LABELS))


def video(i: int, image: np.ndarray) -> VideoFrame:
    return VideoFrame(frame_index=i, width=640, height=480, fps_nominal=30.0, image=image)


def is_colour(image: np.ndarray, y: int, x: int, colour) -> bool:
    return tuple(int(c) for c in image[y, x]) == tuple(colour)


# ---------------------------------------------------------------- drawing


def test_the_box_is_drawn_on_the_face_in_the_track_colour(picture):
    out = render(picture, Overlay(tracks(0, [face()]), affect(0, [person()]), {}))
    colour = track_colour(3)
    x0, y0, x1, y1 = (int(v) for v in BOX)
    assert all(is_colour(out, y, x0, colour) and is_colour(out, y, x1, colour) for y in range(y0, y1, 7))
    assert all(is_colour(out, y0, x, colour) and is_colour(out, y1, x, colour) for x in range(x0, x1, 7))
    inside = (slice(y0 + 10, y1 - 10), slice(x0 + 10, x1 - 10))
    np.testing.assert_array_equal(out[inside], picture[inside])  # the face itself is left alone
    assert not np.array_equal(out[y0 - 20:y0 - 2, x0:x0 + 120], picture[y0 - 20:y0 - 2, x0:x0 + 120])  # its label


def test_the_bars_are_as_long_as_the_fused_probabilities(picture):
    out = render(picture, Overlay(tracks(0, [face()]), affect(0, [person()]), {}))
    colour = np.array(track_colour(3))
    x, y = int(BOX[2]) + 6, int(BOX[1])
    for k, p in enumerate(PROBS):
        row = out[y + k * (BAR_H + 3) + BAR_H // 2, x:x + BAR_W]
        filled = int(np.all(row == colour, axis=1).sum())
        assert abs(filled - round(BAR_W * p)) <= 1, (LABELS[k], filled, p)


def test_the_circumplex_puts_each_person_at_their_valence_and_arousal_with_a_trail(picture):
    trail = [(-0.5 + 0.05 * k, 0.5 - 0.05 * k) for k in range(20)]
    out = render(picture, Overlay(tracks(0, [face()]), affect(0, [person(valence=0.6, arousal=-0.4)]),
                                  {3: trail}))
    cx, cy, r = circumplex_centre(out)
    assert (cx, cy) == (640 - MARGIN - 75, MARGIN + 75)
    px, py = circumplex_point(out, 0.6, -0.4)
    assert (px, py) == (cx + round(0.6 * r), cy + round(0.4 * r))  # right of centre, below it
    assert is_colour(out, py, px, track_colour(3))
    mid_x, mid_y = circumplex_point(out, *trail[10])
    near = out[mid_y - 1:mid_y + 2, mid_x - 1:mid_x + 2].reshape(-1, 3)
    assert any(tuple(c) == track_colour(3) for c in near)  # the trail passes through its points
    assert is_colour(out, cy - r, cx, GREY)  # the arousal axis reaches the circle


def test_the_status_band_shows_which_modalities_are_live(picture):
    out = render(picture, Overlay(tracks(0, [face()]), affect(0, [person()], missing=("voice",)), {}, "> hello"))
    y = 480 - BAND + 12
    assert is_colour(out, y, MARGIN + 5, LIVE)  # face
    assert is_colour(out, y, MARGIN + 75, ABSENT)  # voice
    assert is_colour(out, y, MARGIN + 145, LIVE)  # text
    nothing = render(picture, Overlay(None, None, {}))
    assert all(is_colour(nothing, y, MARGIN + 5 + 70 * k, ABSENT) for k in range(3))


def test_a_person_without_a_face_is_on_the_circumplex_only(picture):
    out = render(picture, Overlay(tracks(0, []), affect(0, [person(None, 0.8, 0.8)]), {}))
    assert is_colour(out, *circumplex_point(out, 0.8, 0.8)[::-1], track_colour(None))


# ---------------------------------------------------------------- joining


def test_frames_are_drawn_with_their_own_tracks_and_affect_in_order(picture):
    state = ViewState()
    for i in range(3):
        state.add(video(i, picture), now=i)
        state.add(tracks(i, [face(box=[10 * i, 10, 50, 60])]), now=i)
    state.add(affect(1, [person()]), now=5)
    assert state.ready(now=10) == []  # frame 0 waits for its affect.frame; frame 1 waits behind it
    state.add(affect(0, [person(valence=-0.2)]), now=11)
    drawn = state.ready(now=12)
    assert [o.affect.frame_index for _, o in drawn] == [0, 1]
    assert [o.tracks.faces[0].box[0] for _, o in drawn] == [0, 10]
    assert drawn[1][1].trails[3] == [(-0.2, -0.4), (0.5, -0.4)]
    late = state.ready(now=2 + WAIT_NS)  # frame 2's affect.frame never came: drawn without it
    assert len(late) == 1 and late[0][1].affect is None and late[0][1].tracks.frame_index == 2


def test_trails_are_short_and_forget_a_person_who_left(picture):
    state = ViewState()
    for i in range(TRAIL_LENGTH + 10):
        state.add(video(i, picture), now=i)
        state.add(affect(i, [person(valence=i / 100)] if i < TRAIL_LENGTH + 5 else []), now=i)
        drawn = state.ready(now=i)
        if i == TRAIL_LENGTH + 4:
            assert len(drawn[0][1].trails[3]) == TRAIL_LENGTH
    assert drawn[0][1].trails == {}


@pytest.mark.parametrize("box", [(420, 60, 560, 220), (40, 60, 180, 220), (250, 200, 400, 340), (500, 5, 630, 300)])
def test_at_640x360_the_bars_keep_off_the_circumplex_and_the_band_and_the_newest_words_show(box):
    image = np.zeros((360, 640, 3), np.uint8)
    x, y = bars_origin(image, box)
    panel = (640 - MARGIN - CIRCUMPLEX, MARGIN + CIRCUMPLEX)  # its left edge and bottom
    assert 0 <= x and x + BARS_W <= 640 and 0 <= y and y + BARS_H <= 360 - BAND, (x, y)
    assert x + BARS_W <= panel[0] or y >= panel[1], (x, y)
    said = "a rather long transcript that a small frame cannot hold in one line, " * 2 + "and its newest words"
    shown = fitted(said, 640 - 2 * MARGIN, 0.45)
    assert shown.startswith("...") and said.endswith(shown[3:]) and len(shown) > 40
    assert cv2.getTextSize(shown, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 3)[0][0] <= 640 - 2 * MARGIN


def test_without_a_display_the_window_is_refused_with_the_fix(monkeypatch):
    from moodwire.pipeline.viewer.run import ViewerError, ViewOptions, make_sink

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ViewerError, match="--out"):
        make_sink(ViewOptions("tcp://127.0.0.1:1"))


# ---------------------------------------------------------------- the command on a running pipeline


def box_outlines(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Rectangles drawn in a track colour, as (x0, y0, x1, y1): two long vertical runs of that colour
    (the box's sides; text, bars and the circumplex dot are short) joined by full rows at top and bottom."""
    from moodwire.pipeline.viewer.draw import PALETTE

    found = []
    for colour in PALETTE:
        mask = np.all(image == np.array(colour), axis=2)
        sides = np.array([x for x in np.nonzero(mask.sum(axis=0) >= 40)[0] if longest_run(mask[:, x]) >= 40])
        if sides.size < 2:
            continue
        x0, x1 = int(sides.min()), int(sides.max())
        rows = np.nonzero(mask[:, x0:x1 + 1].mean(axis=1) > 0.9)[0]
        if x1 - x0 > 10 and rows.size >= 2:
            found.append((x0, int(rows.min()), x1, int(rows.max())))
    return found


def longest_run(column: np.ndarray) -> int:
    edges = np.diff(np.concatenate([[0], column.astype(np.int8), [0]]))
    return int((np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]).max(initial=0))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_view_out_writes_frames_with_the_box_the_circumplex_and_the_status(start_pipeline, tmp_path):
    pipeline = start_pipeline("--config", "configs/sample.toml", "--set", "sources.audio=none")
    pipeline.wait_healthy(timeout=120)
    pipeline.collect("face.tracks", 30, timeout=10.0)  # the face node is past its start
    out = tmp_path / "snaps"
    run = subprocess.run([*MOODWIRE, "view", "--endpoint", pipeline.endpoint, "--out", str(out), "--frames", "30",
                          "--every", "3", "--duration", "60"], env=pipeline.env, capture_output=True, text=True,
                         timeout=90)
    assert run.returncode == 0, run.stderr
    files = sorted(out.glob("view_*.png"))
    assert len(files) == 10, run.stderr
    images = [cv2.imread(str(f)) for f in files]
    assert all(im.shape == (480, 640, 3) for im in images)
    with_box = [im for im in images if box_outlines(im)]
    assert len(with_box) >= 8  # the sample clip's face, boxed
    for im in with_box:
        cx, cy, r = circumplex_centre(im)
        assert is_colour(im, cy, cx - r, GREY)  # the circumplex
        assert is_colour(im, 480 - BAND + 12, MARGIN + 5, LIVE)  # face live
        x0, y0, x1, y1 = box_outlines(im)[0]
        assert 20 < x1 - x0 < 400 and 20 < y1 - y0 < 400


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_view_out_video_has_the_streams_frame_rate_and_ends_when_the_pipeline_does(start_pipeline, tmp_path):
    pipeline = start_pipeline("--set", "sources.video=synthetic", "--set", "sources.audio=none",
                              "--set", "sources.fps=25", "--set", "nodes.face=false")
    pipeline.wait_healthy(timeout=120)
    out = tmp_path / "view.mp4"
    view = subprocess.Popen([*MOODWIRE, "view", "--endpoint", pipeline.endpoint, "--out", str(out)],
                            env=pipeline.env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.is_file() and out.stat().st_size > 10_000) and time.monotonic() < deadline:
            time.sleep(0.2)
        pipeline.stop(signal.SIGINT)
        _, stderr = view.communicate(timeout=30)  # it ends by itself
    finally:
        view.kill()
    assert view.returncode == 0 and "the pipeline has stopped" in stderr, stderr
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0) and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 10


def test_with_several_cameras_the_view_draws_the_first_stream_seen_or_the_chosen_one(picture):
    from moodwire.pipeline.core.bus import Received
    from moodwire.pipeline.core.messages import SystemHealth
    from moodwire.pipeline.core.streams import OneStream

    said: list[str] = []
    cam2, cam1 = Received("video.frame@cam2", video(0, picture), 0), Received("video.frame@cam1", video(0, picture), 0)
    health = Received("system.health", SystemHealth(), 0)
    first = OneStream(None, said.append)
    assert first.wants(cam2) and first.wants(health) and said == []  # one camera so far: nothing to say
    assert not first.wants(cam1) and said == ["several streams on the bus: showing cam2, the first seen; "
                                              "--stream picks another"]
    assert first.wants(cam2) and not first.wants(cam1) and len(said) == 1
    chosen = OneStream("cam1", said.append)
    assert chosen.wants(cam1) and not chosen.wants(cam2)
    assert not chosen.wants(Received("video.frame", video(0, picture), 0)) and len(said) == 1
