"""What the face path costs per frame, beside a peer: the ``fer`` package on the same frames.

Input: the real one-face 640x480 clip of ``tools/media/reference.py``
(``carphone_640x480``, 360 frames at 30 fps; ``--quick`` uses the first 60).

moodwire: the face node's step object (``moodwire.pipeline.face.step.build_face_step``),
driven through the node interface (``step.process("video.frame", frame)``, as
``moodwire.pipeline.core.node.run_step`` does), frames fed back to back so the fps is what it
sustains, not what the camera gives. Per frame it reports the step's own stage
timings (``landmarks_ms``, ``expression_ms`` over frames with a face,
``total_ms``) and ``node_ms``, the wall time of the whole call as measured here.

Peer: ``FER().detect_emotions`` of ``fer==25.10.3`` (Haar cascade + mini-Xception
on TensorFlow), run by ``tools/fer_baseline.py`` inside ``.venv-fer-baseline``
(made by ``bash tools/fer_baseline_setup.sh``; it never enters moodwire's .venv),
on the same frames saved to a temporary .npy, in the same run, after moodwire
(one after the other: the machine has 2 cores). Without that venv the peer is
reported as skipped, with the command that sets it up.

Ratios compare wall time per call on both sides (moodwire ``node_ms`` against
fer's per-call latency): ``fer p50 / moodwire p50`` and ``moodwire fps / fer fps``.
The machines are noisy; compare ratios within one run, not figures across runs.

    .venv/bin/python -m tools.bench_face [--quick] [--frames N] [--no-baseline]

The last stdout line is one JSON object with every figure (tests parse it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .harness.json_tool import run_json_tool, skipped
from .harness.launch import PipelineRun
from .harness.machine import ROOT, announce
from .harness.stats import summary

FULL_FRAMES = 360
QUICK_FRAMES = 60
BASELINE_PYTHON = ROOT / ".venv-fer-baseline" / "bin" / "python"
BASELINE_SETUP = "bash tools/fer_baseline_setup.sh"


# ---------------------------------------------------------------- input


def clip_path() -> Path:
    """The reference clip (made once into the user cache)."""
    from moodwire.pipeline.core.paths import cache_dir

    from .media.reference import carphone_640x480

    return carphone_640x480(cache_dir() / "reference")


def load_frames(count: int) -> list[np.ndarray]:
    """The first ``count`` frames of the reference clip."""
    from .media.reference import read_frames

    frames = read_frames(clip_path())[:count]
    if len(frames) < count:
        raise SystemExit(f"the reference clip has {len(frames)} frames; asked for {count}")
    return frames


# ---------------------------------------------------------------- moodwire


def video_frame(index: int, image: np.ndarray, t_capture: int | None = None):
    """A VideoFrame as capture would publish it, stamped now unless ``t_capture`` is given (the step's
    tracker reads t_capture)."""
    from moodwire.pipeline.core.clock import now_ns
    from moodwire.pipeline.core.messages import VideoFrame

    height, width = image.shape[:2]
    return VideoFrame(frame_index=index, width=width, height=height, fps_nominal=30.0,
                      image=image, t_capture=now_ns() if t_capture is None else t_capture)


def face_tracks(step, frame):
    """One call of the node interface; the FaceTracks it yields."""
    outputs = dict(step.process("video.frame", frame))
    return outputs["face.tracks"]


def run_moodwire(frames: list[np.ndarray]) -> dict[str, Any]:
    """Build the face step, warm it on frame 0 (untimed, as fer is), then time every frame back to back."""
    from moodwire.pipeline.face.step import build_face_step

    t0 = time.perf_counter()
    step = build_face_step()
    load_s = time.perf_counter() - t0
    try:
        face_tracks(step, video_frame(0, frames[0]))
        result = time_moodwire(step, frames)
    finally:
        step.close()
    result["load_s"] = round(load_s, 2)
    return result


def time_moodwire(step, frames: list[np.ndarray]) -> dict[str, Any]:
    """Per-frame stage timings from the step, wall time per call from here, faces and tracks."""
    stages: dict[str, list[float]] = {"landmarks_ms": [], "expression_ms": [], "total_ms": [], "node_ms": []}
    with_face, faces_total, track_ids, tops = 0, 0, set(), Counter()
    msg = None
    start = time.perf_counter()
    for index, image in enumerate(frames):
        frame = video_frame(index, image)
        t0 = time.perf_counter()
        msg = face_tracks(step, frame)
        stages["node_ms"].append((time.perf_counter() - t0) * 1000.0)
        record_stages(stages, step.timings, bool(msg.faces))
        with_face += bool(msg.faces)
        faces_total += len(msg.faces)
        track_ids.update(face.track_id for face in msg.faces)
        tops.update(msg.expression_labels[int(np.argmax(face.expression))] for face in msg.faces)
    wall = time.perf_counter() - start
    return {"frames": len(frames), "frames_with_face": with_face, "faces_total": faces_total,
            "distinct_track_ids": len(track_ids), "wall_s": round(wall, 3),
            "fps": round(len(frames) / wall, 2), **{k: summary(v) for k, v in stages.items()},
            "top_emotions": dict(tops.most_common()),
            "expression_backend": getattr(msg, "expression_backend", "")}


def record_stages(stages: dict[str, list[float]], timings: dict[str, float], has_face: bool) -> None:
    """Keep the step's timings; expression only where it ran (a frame without a face reports 0)."""
    stages["landmarks_ms"].append(timings["landmarks_ms"])
    stages["total_ms"].append(timings["total_ms"])
    if has_face:
        stages["expression_ms"].append(timings["expression_ms"])


# ---------------------------------------------------------------- the fer baseline


def run_baseline(frames: list[np.ndarray]) -> dict[str, Any]:
    """fer's detect_emotions on the same frames, in its own venv and process; skipped without the venv."""
    with tempfile.TemporaryDirectory(prefix="bench-face-") as tmp:
        stack = Path(tmp) / "frames.npy"
        np.save(stack, np.stack(frames))
        return run_fer([str(stack)])


def run_fer(args: list[str]) -> dict[str, Any]:
    """tools/fer_baseline.py with ``args`` (a .npy stack or a video, options) in the fer venv; its figures
    (``status`` ran), or why not (skipped without the venv, failed)."""
    if not BASELINE_PYTHON.exists():
        return skipped(f"{BASELINE_PYTHON.relative_to(ROOT)} not found", setup=BASELINE_SETUP)
    return run_json_tool([str(BASELINE_PYTHON), "-m", "tools.fer_baseline", *args])


# ---------------------------------------------------------------- report


def ratios(mood: dict[str, Any], fer: dict[str, Any]) -> dict[str, float] | None:
    """fer p50 / moodwire p50 and moodwire fps / fer fps: > 1 means moodwire is faster."""
    if fer.get("status") != "ran":
        return None
    return {"p50_fer_over_moodwire": round(fer["latency_ms"]["p50"] / mood["node_ms"]["p50"], 2),
            "p99_fer_over_moodwire": round(fer["latency_ms"]["p99"] / mood["node_ms"]["p99"], 2),
            "fps_moodwire_over_fer": round(mood["fps"] / fer["fps"], 2)}


def print_table(mood: dict[str, Any], fer: dict[str, Any], ratio: dict[str, float] | None) -> None:
    """A table for people; the JSON line after it is for programs."""
    n = mood["frames"]
    print(f"\nmoodwire face node, per frame (ms), {n} frames, expression on {mood['expression_backend']}:")
    print(f"  {'stage':<16}{'p50':>9}{'p99':>9}{'mean':>9}")
    for key in ("landmarks_ms", "expression_ms", "total_ms", "node_ms"):
        s = mood[key]
        print(f"  {key:<16}{s['p50']:>9.2f}{s['p99']:>9.2f}{s['mean']:>9.2f}")
    print(f"  faces in {mood['frames_with_face']}/{n} frames, {mood['distinct_track_ids']} distinct track id(s), "
          f"step load {mood['load_s']} s")
    print("\nmoodwire vs fer, whole call per frame, frames back to back:")
    print(f"  {'':<34}{'p50 ms':>9}{'p99 ms':>9}{'fps':>8}{'  frames with a face':<20}")
    print(f"  {'moodwire face node (node_ms)':<34}{mood['node_ms']['p50']:>9.2f}{mood['node_ms']['p99']:>9.2f}"
          f"{mood['fps']:>8.1f}  {mood['frames_with_face']}/{n}")
    if fer.get("status") == "ran":
        label = f"fer detect_emotions ({fer['model'].split('.')[-1]})"
        print(f"  {label:<34}{fer['latency_ms']['p50']:>9.2f}{fer['latency_ms']['p99']:>9.2f}"
              f"{fer['fps']:>8.1f}  {fer['frames_with_face']}/{fer['frames']}"
              f" ({fer['faces_total']} boxes)")
        print(f"  ratios: fer p50 / moodwire p50 = {ratio['p50_fer_over_moodwire']}x, "
              f"fer p99 / moodwire p99 = {ratio['p99_fer_over_moodwire']}x, "
              f"moodwire fps / fer fps = {ratio['fps_moodwire_over_fer']}x")
        print(f"  (fer {fer['fer_version']}, tensorflow {fer['tensorflow_version']}, {fer['detector']}, "
              f"{fer['model']})")
    else:
        print(f"  fer detect_emotions: {fer['status']} ({fer['reason']})"
              + (f"; set it up with: {fer['setup']}" if "setup" in fer else ""))
    print("  machines are noisy: compare the ratios within one run, not figures across runs\n")


def run_pipeline(clip: Path, seconds: float) -> dict[str, Any]:
    """The face node as it really runs: ``moodwire run --source clip`` (video source, bus, face node as
    processes), observed on the public endpoint: the rate of ``face.tracks`` in capture time, frames it
    skipped (``frame_index`` gaps) and capture-to-arrival latency."""
    from moodwire.pipeline.core.clock import now_ns

    from .harness.stats import index_gaps

    run = PipelineRun.start(["--source", str(clip), "--duration", str(seconds), "--set", "sources.audio=none",
                             "--set", "nodes.fusion=false"], subscribe=["face.tracks"])
    msgs, latency = [], []

    def keep(got: Any) -> None:
        msgs.append(got.msg)
        latency.append((now_ns() - got.msg.t_capture) / 1e6)

    try:
        run.watch(keep, timeout_s=seconds + 60, poll_s=0.5)
        run.stop()
    finally:
        run.close()
    if len(msgs) < 2:
        return skipped(f"the pipeline published {len(msgs)} face.tracks messages")
    span_s = (msgs[-1].t_capture - msgs[0].t_capture) / 1e9
    return {"messages": len(msgs), "rate_hz": round((len(msgs) - 1) / span_s, 1),
            "frames_skipped": index_gaps(m.frame_index for m in msgs),
            "with_face": sum(bool(m.faces) for m in msgs), "capture_to_face_tracks_ms": summary(latency)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FRAMES} frames instead of {FULL_FRAMES}")
    parser.add_argument("--frames", type=int, default=None, help="number of frames (at most 360)")
    parser.add_argument("--no-baseline", action="store_true", help="do not run the fer baseline")
    parser.add_argument("--no-pipeline", action="store_true", help="do not run the face node in a pipeline")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    count = args.frames or (QUICK_FRAMES if args.quick else FULL_FRAMES)
    host, command = announce()
    frames = load_frames(count)
    print(f"input: carphone_640x480 (tools/media/reference.py), {len(frames)} frames of {frames[0].shape[1]}x"
          f"{frames[0].shape[0]}", flush=True)
    mood = run_moodwire(frames)
    fer = skipped("--no-baseline", setup=BASELINE_SETUP) if args.no_baseline else run_baseline(frames)
    ratio = ratios(mood, fer)
    print_table(mood, fer, ratio)
    live = skipped("--no-pipeline") if args.no_pipeline else run_pipeline(clip_path(), len(frames) / 30 + 4)
    print(f"face node in a running pipeline (moodwire run --source, real time, 30 fps): {json.dumps(live)}")
    print(json.dumps({"machine": host, "command": command, "frames": len(frames),
                      "moodwire": mood, "baseline": fer, "ratios": ratio, "pipeline": live}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
