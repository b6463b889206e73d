"""Model-call cost of each model profile on this machine's CPU, beside the packaged model it replaces.

    .venv/bin/python -m tools.bench_profiles [--calls N] [--threads 1 2]

The real profile weights are not downloadable here, so each profile is timed on a stand-in with its
full architecture and random weights (exporters/profile_standins.py): an ONNX graph's cost depends on
its operators and shapes, not on its weights' values. The inputs are real face boxes (the carphone
clip), one face per call as in a one-person scene. p50 and p99 of N calls after a warm-up, per ONNX
Runtime thread count; the packaged mini-Xception (the cache's exported ONNX) is timed the same way.

Then the whole face step per frame (landmarks, tracking, expression, valence/arousal) on the 640x480
carphone clip, one thread for the model as the face node runs it: packaged, and the profile with the
expression model on every frame and on every 3rd frame per face (``face.expression_every``).

Then the voice and text profiles, once per utterance: stand-ins at full size (wav2vec2-base,
RoBERTa-base; exporters/hub_profiles.py) exported to ONNX as ``models fetch`` exports them, timed on
real speech (JFK's sample: 1 s, 3 s and 6 s) and on a sentence of 16 tokens and one of 64 (what a
12-word and a 50-word transcript come to with RoBERTa's BPE). ``--speech tiny`` times the tests'
tiny stand-ins instead (plumbing only), ``--speech none`` skips them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from moodwire.engines.engine import Engine
from moodwire.engines.loader import exported, load_engine

from .harness.json_tool import emit_result
from .harness.machine import announce
from .harness.stats import summary

CALLS = 200
FRAMES = 300
FRAME_BUDGET_MS = 1000 / 30


def face_boxes() -> list[np.ndarray]:
    """RGB face boxes cut from the carphone clip."""
    import cv2

    from .media.reference import packaged_clip, read_frames

    frames = read_frames(packaged_clip("carphone_pristine.mp4"), None)
    return [cv2.cvtColor(f[20:130, 40:140], cv2.COLOR_BGR2RGB) for f in frames[::10]]


def time_calls(engine: Engine, feeds: list[dict[str, np.ndarray]], calls: int) -> dict:
    for feed in feeds[:2]:  # warm-up on real inputs (a 1-sample dummy is too short for a speech model)
        engine.run(feed)
    times = []
    for i in range(calls):
        engine.run(feeds[i % len(feeds)])
        times.append(engine.last_run_ms)
    return summary(times)


def packaged_feeds(boxes: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    import cv2

    from moodwire.engines.face_expression_spec import INPUT_NAME, INPUT_SIZE, preprocess

    grey = [cv2.resize(cv2.cvtColor(b, cv2.COLOR_RGB2GRAY), (INPUT_SIZE, INPUT_SIZE)) for b in boxes]
    return [{INPUT_NAME: preprocess(g[None])} for g in grey]


def hsemotion_feeds(boxes: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    from moodwire.engines.hsemotion_spec import INPUT_NAME, preprocess

    return [{INPUT_NAME: preprocess([b])} for b in boxes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=CALLS, help=f"timed calls per model and thread count ({CALLS})")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="ONNX Runtime threads (1 2)")
    parser.add_argument("--frames", type=int, default=FRAMES, help=f"frames of the face-step run ({FRAMES})")
    parser.add_argument("--speech", choices=("full", "tiny", "none"), default="full",
                        help="size of the voice and text stand-ins timed (full)")
    args = parser.parse_args(argv)
    from moodwire.engines.profiles import HSEMOTION_B0_VA
    from moodwire.exporters.profile_standins import make_hsemotion_standin

    host, command = announce()
    boxes = face_boxes()
    with tempfile.TemporaryDirectory() as tmp:
        models = {"fer-mini-xception (packaged)": (exported("face-expression"), packaged_feeds(boxes)),
                  f"{HSEMOTION_B0_VA.name} (stand-in, B0 architecture)":
                      (make_hsemotion_standin(Path(tmp) / "b0.onnx", width=1.0), hsemotion_feeds(boxes))}
        rows = []
        for name, (path, feeds) in models.items():
            for threads in args.threads:
                stats = time_calls(load_engine(path, "cpu", threads), feeds, args.calls)
                rows.append({"model": name, "threads": threads, **stats})
                print(f"{name:<58} {threads} thread(s): p50 {stats['p50']:6.2f} ms  p99 {stats['p99']:6.2f} ms"
                      f"  ({stats['p50'] / FRAME_BUDGET_MS:.0%} of a 30 fps frame)", flush=True)
        steps = time_face_step(models, args.frames)
        if args.speech != "none":
            rows += time_speech_profiles(Path(tmp), args.speech, args.threads, max(5, args.calls // 10))
    emit_result({"tool": "bench_profiles", "command": command, "machine": host, "calls": args.calls, "rows": rows,
                 "face_step": steps})
    return 0


def time_face_step(models: dict[str, tuple[Path, list]], frames: int) -> list[dict]:
    """Face step total per frame (ms) on the 640x480 clip, per model and expression_every."""
    from moodwire.engines.profiles import HSEMOTION_B0_VA
    from moodwire.engines.registry import resolve
    from moodwire.pipeline.core.messages import VideoFrame
    from moodwire.pipeline.face.expression import ExpressionModel, HSEmotionModel
    from moodwire.pipeline.face.landmarker import Landmarker
    from moodwire.pipeline.face.step import FaceStep
    from moodwire.pipeline.face.tracking import FaceTracker, TrackerSettings
    from moodwire.pipeline.core.paths import cache_dir

    from .media.reference import carphone_640x480, read_frames

    images = read_frames(carphone_640x480(cache_dir()))[:frames]
    (packaged, _), (standin, _) = models.values()
    runs = [("fer-mini-xception (packaged)", lambda: ExpressionModel(load_engine(packaged, "cpu", 1)), 1),
            (f"{HSEMOTION_B0_VA.name} (stand-in)", lambda: HSEmotionModel(load_engine(standin, "cpu", 1), "b0"), 1),
            (f"{HSEMOTION_B0_VA.name} (stand-in)", lambda: HSEmotionModel(load_engine(standin, "cpu", 1), "b0"), 3)]
    rows = []
    for name, make, every in runs:
        step = FaceStep(Landmarker(resolve("face-landmarker").path, 4), make(), FaceTracker(TrackerSettings()), every)
        totals = []
        for i, image in enumerate(images):
            step.analyse(VideoFrame(frame_index=i, width=image.shape[1], height=image.shape[0], fps_nominal=30.0,
                                    image=image, t_capture=(i + 1) * 33_333_333))
            totals.append(step.timings["total_ms"])
        step.close()
        stats = summary(totals[10:])  # the first frames initialise the graph
        rows.append({"model": name, "expression_every": every, **stats})
        print(f"face step, {name:<44} every {every}: p50 {stats['p50']:6.2f} ms  p99 {stats['p99']:6.2f} ms"
              f"  ({stats['p50'] / FRAME_BUDGET_MS:.0%} of a 30 fps frame)", flush=True)
    return rows


def time_speech_profiles(tmp: Path, size: str, threads: list[int], calls: int) -> list[dict]:
    """Per-utterance model calls of the voice and text profiles' stand-ins, exported as ``models fetch`` does."""
    from moodwire.engines import wav2vec2_er_spec
    from moodwire.engines.profiles import GOEMOTIONS_ROBERTA, SUPERB_WAV2VEC2_ER
    from moodwire.exporters.hub_profiles import export_hub_profile, make_roberta_standin, make_wav2vec2_er_standin

    from .media.real_speech import real_speech_clips

    voice = make_wav2vec2_er_standin(tmp / "voice", SUPERB_WAV2VEC2_ER.labels, size)
    export_hub_profile(SUPERB_WAV2VEC2_ER, voice)
    text = make_roberta_standin(tmp / "text", GOEMOTIONS_ROBERTA.labels, size)
    export_hub_profile(GOEMOTIONS_ROBERTA, text)
    speech = [c for c in real_speech_clips() if c.name == "jfk"][0].samples()
    rng = np.random.default_rng(0)
    cases = [(SUPERB_WAV2VEC2_ER.name, voice / "model.onnx", f"{seconds} s utterance",
              {wav2vec2_er_spec.INPUT_NAME: wav2vec2_er_spec.preprocess(speech[:16000 * seconds], True)})
             for seconds in (1, 3, 6)]
    for tokens in (16, 64):
        ids = np.concatenate([[0], rng.integers(3, 300, tokens - 2), [2]])[None].astype(np.int64)
        cases.append((GOEMOTIONS_ROBERTA.name, text / "model.onnx", f"{tokens} tokens",
                      {"input_ids": ids, "attention_mask": np.ones_like(ids)}))
    rows = []
    for name, path, what, feed in cases:
        for n in threads:
            stats = time_calls(load_engine(path, "cpu", n), [feed], calls)
            rows.append({"model": f"{name} (stand-in, {size})", "input": what, "threads": n, **stats})
            print(f"{name + f' ({size}) ' + what:<58} {n} thread(s): p50 {stats['p50']:7.1f} ms  "
                  f"p99 {stats['p99']:7.1f} ms  (once per utterance)", flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
