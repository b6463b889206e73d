"""The viewer's loop: subscribe, join, draw, and show in a window or write to ``--out``.

``--out`` decides the sink by its name: ``*.mp4`` / ``*.avi`` a video at the stream's frame rate,
``*.png`` one snapshot (overwritten: the latest), anything else a folder of numbered PNG snapshots
(every ``every``-th frame). Without ``--out`` a window opens; where there is no display that is an
error that says to use ``--out``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.messages import VideoFrame
from moodwire.pipeline.core.streams import OneStream

if TYPE_CHECKING:
    from moodwire.pipeline.core.keys import CurveClient

TOPICS = ["video.frame", "face.tracks", "affect.frame", "speech.transcript", "affect.utterance"]
WINDOW = "moodwire"
VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG"}
DEFAULT_FPS = 30.0  # a video's rate until the stream's frames give theirs
STOPPED_AFTER_S = 3.0  # nothing at all (not even system.health, once a second) for this long: the pipeline stopped


class ViewerError(RuntimeError):
    """The viewer cannot show or write what was asked; the text says what to do."""


class Sink(Protocol):
    def show(self, image: np.ndarray) -> bool: ...  # False: the user closed it
    def rate(self, fps: float) -> None: ...  # the stream's frame rate, as its video frames say
    def close(self) -> None: ...


@dataclass
class ViewOptions:
    endpoint: str
    out: str = ""
    frames: int | None = None  # stop after this many drawn frames
    seconds: float | None = None
    every: int = 1  # PNG folder: keep every n-th frame
    curve: CurveClient | None = None  # keys for a CURVE-secured public endpoint (--server-key/--client-key)
    stream: str | None = None  # only this stream's (None: every stream's; draw one stream)


class WindowSink:
    def __init__(self) -> None:
        import cv2

        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ViewerError("no display to open a window on (DISPLAY is not set): write the view to a file "
                              "instead, e.g. moodwire view --out view.mp4 (or a folder for PNG snapshots)")
        self.cv2 = cv2

    def show(self, image: np.ndarray) -> bool:
        self.cv2.imshow(WINDOW, image)
        key = self.cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def rate(self, fps: float) -> None:
        pass

    def close(self) -> None:
        self.cv2.destroyAllWindows()


class PngSink:
    """Numbered snapshots in a folder (every ``every``-th frame), or one file kept at the latest."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every, self.count = path, max(1, every), 0
        folder = path.parent if path.suffix.lower() == ".png" else path
        folder.mkdir(parents=True, exist_ok=True)

    def show(self, image: np.ndarray) -> bool:
        import cv2

        if self.count % self.every == 0:
            target = self.path if self.path.suffix.lower() == ".png" else self.path / f"view_{self.count:06d}.png"
            if not cv2.imwrite(str(target), image):
                raise ViewerError(f"could not write {target}: check the folder exists and is writable")
        self.count += 1
        return True

    def rate(self, fps: float) -> None:
        pass

    def close(self) -> None:
        pass


class VideoSink:
    """A video at the stream's frame rate (its video frames' ``fps_nominal``; ``DEFAULT_FPS`` until one says)."""

    def __init__(self, path: Path) -> None:
        self.path, self.fps, self.writer = path, DEFAULT_FPS, None

    def rate(self, fps: float) -> None:
        if self.writer is None:  # a written file keeps the rate it started with
            self.fps = fps

    def show(self, image: np.ndarray) -> bool:
        import cv2

        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (image.shape[1], image.shape[0]))
            if not self.writer.isOpened():
                raise ViewerError(f"OpenCV cannot write {self.path}: try a folder for PNG snapshots instead")
        self.writer.write(image)
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def make_sink(options: ViewOptions) -> Sink:
    if not options.out:
        return WindowSink()
    path = Path(options.out)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoSink(path)
    return PngSink(path, options.every)


def run_viewer(options: ViewOptions, stop=None) -> int:
    """Draw the stream until ``options.frames`` frames or ``options.seconds`` passed, ``stop`` is set, or
    the window is closed. Returns the number of frames drawn."""
    from moodwire.pipeline.core.bus import Subscriber
    from moodwire.pipeline.core.link_watch import LinkWatch, say_on_stderr
    from moodwire.pipeline.viewer.draw import render
    from moodwire.pipeline.viewer.state import ViewState

    sink = make_sink(options)
    state, drawn = ViewState(), 0
    shown = OneStream(options.stream, lambda line: print(f"moodwire view: {line}", file=sys.stderr))
    deadline = None if options.seconds is None else now_ns() + int(options.seconds * 1e9)
    heard: int | None = None  # when anything (system.health included) last arrived
    try:
        with Subscriber(options.endpoint, TOPICS + ["system.health"], queue_everything=True, queue_limit=600,
                        curve=options.curve, stream=options.stream,
                        watch=LinkWatch(options.endpoint, ["video.frame"], say_on_stderr)) as sub:
            while not (stop is not None and stop.is_set()):
                if deadline is not None and now_ns() >= deadline:
                    break
                got = sub.recv(timeout=0.05)
                heard = now_ns() if got is not None else heard
                if heard is not None and now_ns() - heard > STOPPED_AFTER_S * 1e9:
                    print(f"moodwire view: the pipeline has stopped (nothing for {STOPPED_AFTER_S:g} s)",
                          file=sys.stderr)
                    break
                if got is not None and isinstance(got.msg, VideoFrame) and got.msg.fps_nominal > 0:
                    sink.rate(got.msg.fps_nominal)
                if got is not None and shown.wants(got):
                    state.add(got.msg, now_ns())
                for image, overlay in state.ready(now_ns()):
                    if not sink.show(render(image, overlay)):
                        return drawn
                    drawn += 1
                    if options.frames is not None and drawn >= options.frames:
                        return drawn
    finally:
        sink.close()
    return drawn
