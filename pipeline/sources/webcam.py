"""Video from a webcam through OpenCV.

``t_capture`` is the monotonic time at which OpenCV returned the frame: the
driver's own timestamp is not exposed portably, so it includes the driver's
buffering (typically one frame period or less).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Iterator

from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.messages import Message, VideoFrame
from moodwire.pipeline.sources import SourceUnavailable

FIX = "connect one, set sources.camera, or run on a file with --source FILE"


def _cv2():
    try:
        import cv2
    except ImportError:
        raise SourceUnavailable("the webcam needs OpenCV: pip install -e '.[video]'") from None
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # we say what failed ourselves
    return cv2


def camera_device(index: int):
    """The capture device of camera ``index`` (``cv2.VideoCapture``), or None where Linux has no
    ``/dev/videoN``. The one place a device is opened: a stand-in with the same calls can replace it
    (``tools/faults.py`` plugs and unplugs a fake camera this way)."""
    if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{index}"):
        return None
    return _cv2().VideoCapture(index)


def open_camera(index: int, width: int, height: int, fps: float):
    """An opened ``cv2.VideoCapture`` that has delivered one frame, or SourceUnavailable."""
    cv2 = _cv2()
    missing = f"no camera at index {index}"
    cap = camera_device(index)
    if cap is None:
        raise SourceUnavailable(f"{missing} (/dev/video{index} does not exist): {FIX}")
    if cap.isOpened():
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_FPS, fps)
        ok, _ = cap.read()
        if ok:
            return cap
    cap.release()
    raise SourceUnavailable(f"{missing} (OpenCV could not open or read it): {FIX}")


class Webcam:
    def __init__(self, index: int, width: int, height: int, fps: float) -> None:
        self.index, self.width, self.height, self.fps = index, width, height, fps

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]:
        cap = open_camera(self.index, self.width, self.height, self.fps)
        fps = cap.get(_cv2().CAP_PROP_FPS) or self.fps
        try:
            index = 0
            while not stop.is_set():
                ok, image = cap.read()
                t = now_ns()
                if not ok:
                    raise SourceUnavailable(f"camera {self.index} stopped delivering frames (unplugged?)")
                yield "video.frame", VideoFrame(frame_index=index, width=image.shape[1], height=image.shape[0],
                                                fps_nominal=float(fps), image=image, t_capture=t)
                index += 1
        finally:
            cap.release()
