"""Speech path timing on the real pipeline: end of speech to final transcript, and what ASR
costs the video path.

Input: sentences of about 5 s each (espeak-ng, en-us, 140 wpm), with 2.5 s pauses after a
5 s lead of silence (the nodes load meanwhile). Three runs of ``moodwire run --source FILE``
(every node its own process, real-time pacing), observed on the public endpoint:

1. ``audio``: the speech as a WAV; audio source, VAD, ASR.
2. ``video+asr``: the same speech muxed (PCM, lossless) into a Matroska file with the real
   one-face footage of ``tools/media/reference.py`` (carphone, 640x480, 30 fps,
   played forward and backward for as long as the speech lasts); face node on as well.
3. ``video, no asr``: the same file with ``nodes.asr=false``.

Latency per utterance = ``t_publish`` of its final ``speech.transcript`` minus ``t_speech_end``
of its ``speech.vad`` end event (end of the last frame the VAD judged speech; this includes the
VAD's hangover). "ASR alone" = the same minus the end event's own ``t_publish``.
Video rate = distinct ``face.tracks`` frames per second of capture time, in the windows where
ASR works (each sentence's speech plus 1.5 s after it) and over the whole run; runs 2 and 3 use
the same windows, so the difference is what ASR takes from the video path.

    .venv/bin/python -m tools.bench_speech [--quick] [--no-video] [--real] [--baseline REV] [--passes N]
                                           [--set KEY=VALUE ...]

``--real``: the 11 real recordings of tools/media/real_speech.py (LibriVox, CMU cards, JFK; real
speakers pause inside a sentence) instead of espeak-ng, audio run only. ``--baseline REV``: each audio
run is made twice, by the code at git revision REV (tools/harness/baseline.py) and by the working
tree, one after the other, ``--passes`` times; the report pools each side's utterances and gives the
ratio of the p50s (working tree / baseline).

The machine is shared and noisy: compare runs within one invocation. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .asr_wer import Collected, run_pipeline
from .harness.baseline import Baseline
from .harness.launch import log_tail
from .harness.machine import announce
from .harness.stats import summary
from .media.speech_clip import GAP_S, LEAD_S, SENTENCES, WPM, make_media

QUICK_COUNT = 2
ASR_TAIL_S = 1.5  # after each sentence's speech, still ASR's working window
TARGET_P50_MS, TARGET_FPS = 1000.0, 25.0
BASE_SETS = ["nodes.voice=false", "nodes.text=false", "nodes.fusion=false"]
FIGURES = ("speech_end_to_final_ms", "vad_end_to_final_ms", "speech_end_to_vad_end_ms", "decode_ms")


# ---------------------------------------------------------------- figures


def latencies(got: Collected) -> dict[str, Any]:
    """Per utterance: final transcript publish minus end of speech, and minus the end event's publish."""
    rows = []
    for end in got.ends():
        final = got.finals.get(end.utterance_id)
        if final is None:
            continue
        rows.append({"audio_s": round(final.audio_s, 2), "decode_ms": final.decode_ms,
                     "speech_end_to_final_ms": (final.t_publish - end.t_speech_end) / 1e6,
                     "vad_end_to_final_ms": (final.t_publish - end.t_publish) / 1e6,
                     "speech_end_to_vad_end_ms": (end.t_publish - end.t_speech_end) / 1e6,
                     "text": final.text})
    return {"utterances": len(got.ends()), "finals": len(rows), "partials": len(got.partials), **figures(rows),
            "rows": rows}


def figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """p50, p90, ... of each per-utterance figure over ``rows``."""
    return {key: summary([r[key] for r in rows], 1) for key in FIGURES}


def video_rate(got: Collected, spans: list) -> dict[str, Any]:
    """face.tracks frames per second of capture time: in ASR's windows and over the whole run."""
    if got.t0_ns is None or not got.faces:
        return {"frames": 0}
    times = np.array(sorted({m.frame_index: got.media_s(m.t_capture) for m in got.faces}.values()))
    windows = [(s.start_s, s.end_s + ASR_TAIL_S) for s in spans]
    per_window = [float(((times >= a) & (times < b)).sum() / (b - a)) for a, b in windows]
    first, last = times[0], times[-1]
    one_s = [float(((times >= t) & (times < t + 1)).sum()) for t in np.arange(np.ceil(first), last - 1)]
    return {"frames": int(times.size), "with_face": sum(bool(m.faces) for m in got.faces),
            "whole_run_fps": round((times.size - 1) / (last - first), 1) if last > first else 0.0,
            "asr_windows_fps": round(float(np.sum([w * (b - a) for w, (a, b) in zip(per_window, windows)])
                                           / sum(b - a for a, b in windows)), 1),
            "asr_window_min_fps": round(min(per_window), 1),
            "worst_1s_fps": round(min(one_s), 1) if one_s else None}


def run(label: str, media: Path, sets: list[str], duration: float, spans: list, faces: bool,
        other: Baseline | None = None) -> dict[str, Any]:
    print(f"run {label}: moodwire run --source {media.name} --set {' --set '.join(sets)}", flush=True)
    asr = "nodes.asr=false" not in sets
    got = run_pipeline(media, sets, duration, topics=("face.tracks",) if faces else (), transcripts=asr, other=other)
    result = {"label": label, "sets": sets, "stopped_by": got.stopped_by, **latencies(got)}
    if faces:
        result["video"] = video_rate(got, spans)
    if asr and result["finals"] < len(spans):
        print(f"  only {result['finals']}/{len(spans)} final transcripts; pipeline log tail:\n{log_tail(got.log)}")
    return result


# ---------------------------------------------------------------- report


def number(value: float | None) -> float:
    """A figure for a fixed-width cell: NaN where there is none."""
    return float("nan") if value is None else value


def print_table(runs: list[dict[str, Any]]) -> None:
    print(f"\n{'run':<16}{'utts':>5}{'end->final p50':>16}{'p90':>8}{'max':>8}{'ASR alone p50':>15}"
          f"{'decode p50':>12}{'fps ASR windows':>17}{'min window':>12}{'worst 1 s':>11}")
    for r in runs:
        lat, asr, dec = r["speech_end_to_final_ms"], r["vad_end_to_final_ms"], r["decode_ms"]
        video = r.get("video", {})
        cells = [f"{r['label']:<16}{r['finals']:>5}"]
        cells += [f"{number(lat.get(k)):>{w}.0f}" for k, w in (("p50", 16), ("p90", 8), ("max", 8))]
        cells += [f"{number(asr.get('p50')):>15.0f}", f"{number(dec.get('p50')):>12.0f}"]
        cells += [f"{video.get(k) if video.get(k) is not None else '-':>{w}}"
                  for k, w in (("asr_windows_fps", 17), ("asr_window_min_fps", 12), ("worst_1s_fps", 11))]
        print("".join(cells))
    print("(ms; end->final = final transcript published minus end of speech, VAD hangover included; "
          "fps = face.tracks frames per second of capture time)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT} utterances instead of {len(SENTENCES)}")
    parser.add_argument("--no-video", action="store_true", help="only the audio run")
    parser.add_argument("--real", action="store_true", help="real recordings instead of espeak-ng (audio only)")
    parser.add_argument("--baseline", metavar="REV", help="also run the code at this git revision, side by side")
    parser.add_argument("--passes", type=int, default=1, help="audio runs per side (with --baseline)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run, e.g. --set vad.piece_s=0.2 (repeatable)")
    return parser.parse_args(argv)


def real_media() -> tuple[Path, list, float]:
    """The real clips joined with GAP_S pauses after LEAD_S of silence, as a WAV in the cache."""
    from moodwire.pipeline.core.paths import cache_dir
    from moodwire.pipeline.sources.spoken import write_wav

    from .asr_wer import real_script

    script, _ = real_script(GAP_S, LEAD_S)
    wav = cache_dir() / "bench" / "real_speech.wav"
    wav.parent.mkdir(parents=True, exist_ok=True)
    write_wav(wav.with_suffix(".part.wav"), script.samples).replace(wav)
    return wav, script.spans, script.samples.size / 16000


def pooled(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's passes as one run: every utterance of every pass."""
    rows = [row for r in runs for row in r["rows"]]
    return {"label": label, "sets": runs[0]["sets"], "passes": len(runs), "finals": len(rows),
            "utterances": sum(r["utterances"] for r in runs), "partials": sum(r["partials"] for r in runs),
            **figures(rows), "rows": rows}


def side_by_side(rev: str, media: Path, sets: list[str], duration: float, spans: list,
                 passes: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(baseline, working tree) audio runs, alternating, pooled; and the baseline's description."""
    from .harness.baseline import baseline, describe

    base_label = f"audio @{rev}"
    base, ours = [], []
    with baseline(rev) as other:
        for _ in range(passes):
            base.append(run(base_label, media, sets, duration, spans, faces=False, other=other))
            ours.append(run("audio", media, sets, duration, spans, faces=False))
    return pooled(base_label, base), pooled("audio", ours), describe(rev)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    count = QUICK_COUNT if args.quick else len(SENTENCES)
    host, command = announce()
    if args.real:
        wav, spans, duration = real_media()
        mkv = None
        print(f"speech: {len(spans)} real recordings (tools/media/real_speech.py), {GAP_S} s pauses, {LEAD_S} s "
              f"lead; {duration:.1f} s per run", flush=True)
    else:
        wav, mkv, spans, duration = make_media(count)
        lengths = [round(s.end_s - s.start_s, 2) for s in spans]
        print(f"speech: {count} sentences of {min(lengths)}-{max(lengths)} s (espeak-ng en-us, {WPM} wpm), "
              f"{GAP_S} s pauses, {LEAD_S} s lead; {duration:.1f} s per run", flush=True)
    sets = [*BASE_SETS, *args.set]
    baseline: dict[str, Any] = {}
    if args.baseline:
        base, audio_run, described = side_by_side(args.baseline, wav, sets, duration, spans, args.passes)
        runs = [base, audio_run]
        baseline = {"baseline": described, "passes": args.passes,
                    "p50_ratio_to_baseline": _ratio(audio_run, base)}
    else:
        runs = [run("audio", wav, sets, duration, spans, faces=False)]
    if not (args.no_video or mkv is None):
        runs.append(run("video+asr", mkv, sets, duration, spans, faces=True))
        runs.append(run("video, no asr", mkv, [*sets, "nodes.asr=false"], duration, spans, faces=True))
    print_table(runs)
    audio = next(r for r in runs if r["label"] == "audio")["speech_end_to_final_ms"]
    video_runs = [r for r in runs if "video" in r]
    with_video = video_runs[0]["speech_end_to_final_ms"] if video_runs else {}
    video = video_runs[0]["video"] if video_runs else {}
    verdict = {
        "latency_p50_ms": audio.get("p50"), "latency_p50_with_video_ms": with_video.get("p50"),
        "latency_target_ms": TARGET_P50_MS,
        "meets_latency": all(x.get("p50") is not None and x["p50"] < TARGET_P50_MS
                             for x in (audio, with_video or audio)),
        "fps_with_asr": video.get("asr_windows_fps"), "fps_target": TARGET_FPS,
        "meets_fps": video.get("asr_windows_fps", 0) >= TARGET_FPS if video else None,
        **baseline,
    }
    if baseline:
        print(f"baseline {baseline['baseline']}: end of speech -> final p50 {runs[0]['speech_end_to_final_ms'].get('p50')}"
              f" ms; working tree {audio.get('p50')} ms; ratio {baseline['p50_ratio_to_baseline']}")
    print(f"targets: p50 end of speech -> final < {TARGET_P50_MS:.0f} ms: audio {audio.get('p50')} ms, "
          f"with video {with_video.get('p50')} ms; video >= {TARGET_FPS:.0f} fps while ASR runs: "
          f"{video.get('asr_windows_fps')} fps")
    print(json.dumps({"tool": "bench_speech", "command": command, "machine": host, "utterances": len(spans),
                      "speech": "real recordings" if args.real else "espeak-ng",
                      "sentence_s": [round(s.end_s - s.start_s, 2) for s in spans], "runs": runs, **verdict}))
    return 0


def _ratio(ours: dict[str, Any], base: dict[str, Any]) -> float | None:
    a, b = ours["speech_end_to_final_ms"].get("p50"), base["speech_end_to_final_ms"].get("p50")
    return round(a / b, 3) if a and b else None


if __name__ == "__main__":
    sys.exit(main())
