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

    .venv/bin/python tools/bench_speech.py [--quick] [--no-video] [--set KEY=VALUE ...]

The machine is shared and noisy: compare runs within one invocation. The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from .asr_wer import Collected, log_tail, run_pipeline  # noqa: E402

SENTENCES = (  # each about 5 s at 140 wpm (4.4 to 5.4 s)
    "I was thinking we could go for a long walk by the river this afternoon.",
    "The printer on the second floor has been broken since last Tuesday morning.",
    "Could you please send me the notes from the meeting before the end of the day?",
    "My neighbour has a small brown dog that barks every time the doorbell rings.",
    "We should book the train tickets early because the prices go up in the summer.",
    "After dinner we watched an old film and then went to bed quite late.",
    "The weather forecast says it will be sunny and warm for the rest of the week.",
    "I have to pick up my brother from the airport at seven this evening.",
)
QUICK_COUNT = 2
GAP_S, LEAD_S, WPM = 2.5, 5.0, 140
ASR_TAIL_S = 1.5  # after each sentence's speech, still ASR's working window
TARGET_P50_MS, TARGET_FPS = 1000.0, 25.0
FPS = 30
BASE_SETS = ["nodes.voice=false", "nodes.text=false", "nodes.fusion=false"]


# ---------------------------------------------------------------- media


def make_media(count: int) -> tuple[Path, Path, list, float]:
    """(wav, mkv with the face video, sentence spans, seconds), made once into the user cache."""
    from moodwire.pipeline.core.paths import cache_dir
    from moodwire.pipeline.sources.spoken import Voice, spoken_script, write_wav

    script = spoken_script(list(SENTENCES[:count]), gap_s=GAP_S, lead_s=LEAD_S, voice=Voice(speed_wpm=WPM))
    key = hashlib.sha256(script.samples.tobytes()).hexdigest()[:12]
    folder = cache_dir() / "bench"
    folder.mkdir(exist_ok=True)
    wav, mkv = folder / f"speech_{key}.wav", folder / f"speech_face_{key}.mkv"
    if not wav.is_file():
        write_wav(wav.with_suffix(".part.wav"), script.samples).replace(wav)
    if not mkv.is_file():
        mux_face_video(mkv, script.samples)
    return wav, mkv, script.spans, script.samples.size / 16000


def face_frames() -> list[np.ndarray]:
    """The carphone face, forward then backward (no jump when repeated)."""
    from moodwire.pipeline.core.paths import cache_dir
    from .media.reference import carphone_640x480, read_frames

    forward = read_frames(carphone_640x480(cache_dir() / "reference"))[:120]
    return forward + forward[::-1]


def mux_face_video(path: Path, audio: np.ndarray) -> None:
    """H.264 video of the face for as long as ``audio`` lasts, plus ``audio`` as 16-bit PCM."""
    import av

    frames = face_frames()
    count = int(np.ceil(audio.size / 16000 * FPS))
    per_frame = 16000 // FPS
    tmp = path.with_suffix(".part.mkv")
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "crf": "20"})
        video.width, video.height, video.pix_fmt = 640, 480, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        for i in range(count):
            out.mux(video.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="bgr24")))
            block = audio[i * per_frame:(i + 1) * per_frame]
            if block.size:
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block.reshape(1, -1)), format="s16",
                                                   layout="mono")
                frame.sample_rate, frame.pts = 16000, i * per_frame
                out.mux(sound.encode(frame))
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    tmp.replace(path)


# ---------------------------------------------------------------- figures


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": round(float(np.percentile(arr, 50)), 1), "p90": round(float(np.percentile(arr, 90)), 1),
            "max": round(float(arr.max()), 1), "n": len(values)}


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
    return {"utterances": len(got.ends()), "finals": len(rows),
            "partials": len(got.partials),
            "speech_end_to_final_ms": stats([r["speech_end_to_final_ms"] for r in rows]),
            "vad_end_to_final_ms": stats([r["vad_end_to_final_ms"] for r in rows]),
            "speech_end_to_vad_end_ms": stats([r["speech_end_to_vad_end_ms"] for r in rows]),
            "decode_ms": stats([r["decode_ms"] for r in rows]), "rows": rows}


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


def run(label: str, media: Path, sets: list[str], duration: float, spans: list, faces: bool) -> dict[str, Any]:
    print(f"run {label}: moodwire run --source {media.name} --set {' --set '.join(sets)}", flush=True)
    asr = "nodes.asr=false" not in sets
    got = run_pipeline(media, sets, duration, topics=("face.tracks",) if faces else (), transcripts=asr)
    result = {"label": label, "sets": sets, "stopped_by": got.stopped_by, **latencies(got)}
    if faces:
        result["video"] = video_rate(got, spans)
    if asr and result["finals"] < len(spans):
        print(f"  only {result['finals']}/{len(spans)} final transcripts; pipeline log tail:\n{log_tail(got.log)}")
    return result


# ---------------------------------------------------------------- report


def print_table(runs: list[dict[str, Any]]) -> None:
    print(f"\n{'run':<16}{'utts':>5}{'end->final p50':>16}{'p90':>8}{'max':>8}{'ASR alone p50':>15}"
          f"{'decode p50':>12}{'fps ASR windows':>17}{'min window':>12}{'worst 1 s':>11}")
    for r in runs:
        lat, asr, dec = r["speech_end_to_final_ms"], r["vad_end_to_final_ms"], r["decode_ms"]
        video = r.get("video", {})
        cells = [f"{r['label']:<16}{r['finals']:>5}"]
        cells += [f"{lat.get(k, float('nan')):>{w}.0f}" for k, w in (("p50", 16), ("p90", 8), ("max", 8))]
        cells += [f"{asr.get('p50', float('nan')):>15.0f}", f"{dec.get('p50', float('nan')):>12.0f}"]
        cells += [f"{video.get(k) if video.get(k) is not None else '-':>{w}}"
                  for k, w in (("asr_windows_fps", 17), ("asr_window_min_fps", 12), ("worst_1s_fps", 11))]
        print("".join(cells))
    print("(ms; end->final = final transcript published minus end of speech, VAD hangover included; "
          "fps = face.tracks frames per second of capture time)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COUNT} utterances instead of {len(SENTENCES)}")
    parser.add_argument("--no-video", action="store_true", help="only the audio run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run, e.g. --set vad.piece_s=0.2 (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from .bench_face import announce

    args = parse_args(argv)
    count = QUICK_COUNT if args.quick else len(SENTENCES)
    host, command = announce()
    wav, mkv, spans, duration = make_media(count)
    lengths = [round(s.end_s - s.start_s, 2) for s in spans]
    print(f"speech: {count} sentences of {min(lengths)}-{max(lengths)} s (espeak-ng en-us, {WPM} wpm), "
          f"{GAP_S} s pauses, {LEAD_S} s lead; {duration:.1f} s per run", flush=True)
    sets = [*BASE_SETS, *args.set]
    runs = [run("audio", wav, sets, duration, spans, faces=False)]
    if not args.no_video:
        runs.append(run("video+asr", mkv, sets, duration, spans, faces=True))
        runs.append(run("video, no asr", mkv, [*sets, "nodes.asr=false"], duration, spans, faces=True))
    print_table(runs)
    audio = runs[0]["speech_end_to_final_ms"]
    with_video = runs[1]["speech_end_to_final_ms"] if len(runs) > 1 else {}
    video = runs[1]["video"] if len(runs) > 1 else {}
    verdict = {
        "latency_p50_ms": audio.get("p50"), "latency_p50_with_video_ms": with_video.get("p50"),
        "latency_target_ms": TARGET_P50_MS,
        "meets_latency": all(x.get("p50", 1e9) < TARGET_P50_MS for x in (audio, with_video or audio)),
        "fps_with_asr": video.get("asr_windows_fps"), "fps_target": TARGET_FPS,
        "meets_fps": video.get("asr_windows_fps", 0) >= TARGET_FPS if video else None,
    }
    print(f"targets: p50 end of speech -> final < {TARGET_P50_MS:.0f} ms: audio {audio.get('p50')} ms, "
          f"with video {with_video.get('p50')} ms; video >= {TARGET_FPS:.0f} fps while ASR runs: "
          f"{video.get('asr_windows_fps')} fps")
    print(json.dumps({"tool": "bench_speech", "command": command, "machine": host, "utterances": count,
                      "sentence_s": lengths, "runs": runs, **verdict}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
