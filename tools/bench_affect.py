"""Capture to ``affect.frame`` on the real pipeline, and the fusion call on its own.

Input: the muxed clip of ``tools/bench_speech.py`` (the real one-face carphone footage of
``tools/media/reference.py``, 640x480 at 30 fps, with espeak-ng sentences in its
audio track), long enough for ``--seconds`` of measurement after the nodes have loaded.

1. Pipeline: ``moodwire run --source CLIP`` with the default nodes (face, vad, asr, voice, text,
   fusion), every node its own process, real-time pacing, observed on the public endpoint. The
   window starts ``WARMUP_S`` after the capture time of the first ``affect.frame`` and lasts
   ``--seconds`` of capture time. Per ``affect.frame`` in it: capture -> arrival at this
   subscriber (``t_receive - t_capture``, one clock: CLOCK_MONOTONIC), and the message's own
   ``latency_ms`` (capture -> creation in the fusion node). Rate = distinct frames per second of
   capture time, against the clip's 30 fps. ``affect.utterance`` messages are counted over the
   whole run, with how many name a speaker (``speaker_track_id`` set).
2. Fusion call: ``moodwire.pipeline.fusion.model.build_fusion_model(Config())`` as the fusion node builds
   it, ``fuse`` on a batch of P persons with face, voice and text present, P=1 and P=4, 2000
   calls each after warm-up, on CPU; where ONNX Runtime has CUDA or TensorRT is installed, the
   same ONNX through engine ``cuda`` and ``tensorrt-native`` too.

    .venv/bin/python -m tools.bench_affect [--quick] [--seconds S] [--calls N] [--set KEY=VALUE ...]

Targets (the fusion issue): p50 capture -> affect.frame < 25 ms, p99 < 60 ms, one face, 2 cores.
The machine is shared and noisy. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .harness.launch import PipelineRun, log_tail
from .harness.machine import announce
from .harness.stats import summary
from .media.speech_clip import FPS, GAP_S, LEAD_S, SENTENCES, make_media

FULL_S, QUICK_S = 30.0, 12.0
WARMUP_S = 2.0  # after the first affect.frame: queues and caches settle
SENTENCE_S = 5.0 + GAP_S  # one sentence and its pause in the clip
LOAD_S = 20.0  # clip time the nodes may take to load before the first affect.frame
GRACE_S = 90.0  # longest wait beyond the clip for the window to fill
CALLS = 2000
PERSONS = (1, 4)
TARGET_P50_MS, TARGET_P99_MS = 25.0, 60.0


# ---------------------------------------------------------------- the pipeline


def sentence_count(seconds: float) -> int:
    """Sentences for a clip that covers loading, warm-up and the window."""
    need = LOAD_S + WARMUP_S + seconds - LEAD_S
    return max(1, min(len(SENTENCES), math.ceil(need / SENTENCE_S)))


def run_pipeline(media: Path, sets: list[str], seconds: float, clip_s: float) -> dict[str, Any]:
    """``moodwire run --source media``; affect.frame and affect.utterance until the window is full
    (or the pipeline exits, or the clip plus ``GRACE_S`` passes); then SIGINT, as a user's Ctrl-C."""
    from moodwire.pipeline.core.messages import AffectFrame, AffectUtterance

    frames: list[tuple[AffectFrame, int]] = []
    utterances: list[AffectUtterance] = []
    window: list[int] = []  # start, end (capture time) once the first affect.frame came

    def keep(got: Any) -> None:
        if isinstance(got.msg, AffectUtterance):
            utterances.append(got.msg)
        elif isinstance(got.msg, AffectFrame):
            frames.append((got.msg, got.t_receive))
            if not window:
                start = got.msg.t_capture + round(WARMUP_S * 1e9)
                window[:] = [start, start + round(seconds * 1e9)]

    def full() -> bool:  # frames captured before the window's end are in
        return bool(window) and bool(frames) and frames[-1][0].t_capture >= window[1] + round(0.5e9)

    run = PipelineRun.start(["--source", str(media), *[a for s in sets for a in ("--set", s)]],
                            subscribe=["affect.frame", "affect.utterance"])
    try:
        why = run.watch(keep, full, clip_s + GRACE_S)
        run.stop()
        text = run.output()
    finally:
        run.close()
    stopped_by = "window full" if why == "done" else why
    result = figures(frames, utterances, tuple(window) if window else None, seconds)
    result["stopped_by"] = stopped_by
    if stopped_by != "window full" or not frames:
        print(f"  stopped: {stopped_by}; pipeline log tail:\n{log_tail(text)}")
    return result


def figures(frames: list, utterances: list, window: tuple[int, int] | None, seconds: float) -> dict[str, Any]:
    """Rate, latencies and face presence over the window; utterances over the run."""
    speakers = sum(u.speaker_track_id is not None for u in utterances)
    result: dict[str, Any] = {"affect_utterances": len(utterances), "utterances_with_speaker": speakers,
                              "speaker_reasons": sorted({u.speaker_reason for u in utterances if u.speaker_reason})}
    if window is None:
        return {"frames": 0, "rate_fps": 0.0, **result}
    inside = {}
    for msg, t_receive in frames:
        if window[0] <= msg.t_capture < window[1]:
            inside.setdefault(msg.frame_index, (msg, t_receive))
    chosen = list(inside.values())
    arrival = np.array([(t - m.t_capture) / 1e6 for m, t in chosen])
    own = np.array([m.latency_ms for m, _ in chosen])
    with_face = sum(any(p.track_id is not None for p in m.persons) for m, _ in chosen)
    backends = sorted({m.fusion_backend for m, _ in chosen if m.fusion_backend})
    return {"frames": len(chosen), "window_s": seconds, "rate_fps": round(len(chosen) / seconds, 2),
            "clip_fps": FPS, "rate_ratio": round(len(chosen) / seconds / FPS, 3),
            "capture_to_arrival_ms": summary(arrival, 1), "capture_to_fusion_ms": summary(own, 1),
            "face_present_share": round(with_face / len(chosen), 3) if chosen else 0.0,
            "fusion_backend": backends[0] if len(backends) == 1 else backends, **result}


# ---------------------------------------------------------------- the fusion call


def face_voice_text(t_capture: int):
    """One person's row with all three modalities present, as the node feeds them."""
    from moodwire.engines.fusion_spec import N_CLASSES
    from moodwire.pipeline.fusion.model import Estimate

    rng = np.random.default_rng(0)
    row = []
    for modality in ("face", "voice", "text"):
        probs = rng.random(N_CLASSES).astype(np.float32)
        row.append(Estimate(modality, probs / probs.sum(), float(rng.uniform(-1, 1)), float(rng.uniform(0, 1)),
                            0.8, t_capture))
    return tuple(row)


def time_fuse(model, persons: int, calls: int) -> dict[str, Any]:
    """``fuse`` per call (batch built once, as a frame's batch is built once), µs."""
    from moodwire.pipeline.fusion.model import FusionBatch

    batch = FusionBatch([face_voice_text(0) for _ in range(persons)])
    for _ in range(50):
        model.fuse(batch)
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        model.fuse(batch)
        times[i] = (time.perf_counter_ns() - t0) / 1e3
    figures = summary(times, 1)
    return {"persons": persons, "calls": calls, "median_us": figures["p50"], "p99_us": figures["p99"],
            "backend": model.backend}


def gpu_engines() -> tuple[list[str], str]:
    """Engines to time beside CPU, and why none when none."""
    from moodwire.engines.accelerators import nvidia_gpus, onnxruntime_providers, tensorrt_version

    engines = []
    if "CUDAExecutionProvider" in (onnxruntime_providers() or []):
        engines.append("cuda")
    if tensorrt_version() is not None:
        engines.append("tensorrt-native")
    if engines:
        return engines, ""
    gpus = nvidia_gpus()
    reason = (f"GPU {gpus[0]} but " if gpus else "no NVIDIA GPU, ") + \
        "no CUDA provider in ONNX Runtime and no TensorRT"
    return [], reason


def time_fusion(calls: int) -> dict[str, Any]:
    from moodwire.engines.fusion_spec import fusion_onnx
    from moodwire.engines.loader import load_engine
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.fusion.model import FusionModel, build_fusion_model

    config = Config()
    cpu_model = build_fusion_model(config)
    result: dict[str, Any] = {"engine_config": config.fusion.engine,
                              "cpu": [time_fuse(cpu_model, p, calls) for p in PERSONS]}
    engines, reason = gpu_engines()
    result["gpu"] = {}
    result["gpu_unavailable"] = reason or None
    for name in engines:
        engine = load_engine(fusion_onnx(config.fusion.params), name, threads=1)
        engine.warm_up()
        result["gpu"][name] = [time_fuse(FusionModel(engine), p, calls) for p in PERSONS]
    return result


# ---------------------------------------------------------------- report


def print_table(pipe: dict[str, Any], fusion: dict[str, Any]) -> None:
    arr, own = pipe.get("capture_to_arrival_ms", {}), pipe.get("capture_to_fusion_ms", {})
    print(f"\n{'affect.frame':<28}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}")
    print(f"{'capture -> subscriber (ms)':<28}" + "".join(f"{str(arr.get(k)):>8}" for k in ("p50", "p90", "p99", "max")))
    print(f"{'capture -> fusion (ms)':<28}" + "".join(f"{str(own.get(k)):>8}" for k in ("p50", "p90", "p99", "max")))
    print(f"rate {pipe.get('rate_fps')} fps of the clip's {FPS} ({pipe.get('frames')} frames in "
          f"{pipe.get('window_s')} s); face present in {100 * pipe.get('face_present_share', 0):.1f}% of frames; "
          f"affect.utterance {pipe['affect_utterances']}, {pipe['utterances_with_speaker']} naming a speaker; "
          f"fusion backend {pipe.get('fusion_backend')}")
    print(f"\n{'fusion call':<22}{'P':>3}{'median us':>11}{'p99 us':>9}  backend")
    rows = [("cpu", r) for r in fusion["cpu"]] + [(n, r) for n, rs in fusion["gpu"].items() for r in rs]
    for name, r in rows:
        print(f"{name:<22}{r['persons']:>3}{r['median_us']:>11}{r['p99_us']:>9}  {r['backend']}")
    if fusion["gpu_unavailable"]:
        print(f"GPU: not available here ({fusion['gpu_unavailable']})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_S:.0f} s window instead of {FULL_S:.0f} s")
    parser.add_argument("--seconds", type=float, default=None, help="window length in seconds of capture time")
    parser.add_argument("--calls", type=int, default=CALLS, help=f"fusion calls per batch size (default {CALLS})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for the pipeline run (repeatable)")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, quick_s: float = QUICK_S,
            full_s: float = FULL_S) -> tuple[float, dict[str, Any], str, Path, Path, float]:
    """The window, the machine line and command (printed), and the muxed clip long enough for the window:
    ``seconds, host, command, wav, mkv, clip_s``."""
    seconds = args.seconds or (quick_s if args.quick else full_s)
    host, command = announce()
    count = sentence_count(seconds)
    wav, mkv, _, clip_s = make_media(count)
    print(f"clip: {mkv.name}, {clip_s:.1f} s (one face, {count} spoken sentences); window {seconds:g} s", flush=True)
    return seconds, host, command, wav, mkv, clip_s


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seconds, host, command, _, mkv, clip_s = prepare(args)
    pipe = run_pipeline(mkv, args.set, seconds, clip_s)
    print(f"fusion call: {args.calls} calls at P={PERSONS}", flush=True)
    fusion = time_fusion(args.calls)
    print_table(pipe, fusion)
    arrival = pipe.get("capture_to_arrival_ms", {})
    verdict = {"latency_p50_ms": arrival.get("p50"), "latency_p99_ms": arrival.get("p99"),
               "target_p50_ms": TARGET_P50_MS, "target_p99_ms": TARGET_P99_MS,
               "meets_latency": bool(arrival.get("p50") is not None and arrival["p50"] < TARGET_P50_MS
                                     and arrival["p99"] < TARGET_P99_MS)}
    print(f"targets: capture -> affect.frame p50 < {TARGET_P50_MS:.0f} ms: {arrival.get('p50')} ms; "
          f"p99 < {TARGET_P99_MS:.0f} ms: {arrival.get('p99')} ms -> {'met' if verdict['meets_latency'] else 'NOT met'}")
    print(json.dumps({"tool": "bench_affect", "command": command, "machine": host, "clip": mkv.name,
                      "clip_s": round(clip_s, 1), "pipeline": pipe, "fusion": fusion, **verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
