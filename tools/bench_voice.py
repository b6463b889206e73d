"""Voice step cost per utterance: prosody (pitch, level, spectral balance, glottal cycles) and the
arousal rule, on the real recordings of tools/media/real_speech.py, each clip a fresh stream's utterance.

    .venv/bin/python -m tools.bench_voice [--repeat N]

Per clip, the fastest of N runs (the machine's noise only ever adds time) of ``VoiceStep.analyse``,
with that run's prosody stage (from the step's own stopwatch); also ms per second of audio.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.voice.step import VoiceStep

from .harness.json_tool import emit_result
from .harness.machine import announce
from .media.real_speech import real_speech_clips

REPEAT = 5


def time_clip(samples: np.ndarray, repeat: int) -> dict[str, float]:
    """Fastest total, and the prosody stage of that run, over ``repeat`` fresh steps (ms)."""
    best: dict[str, float] = {}
    for _ in range(repeat):
        step = VoiceStep(wait_transcript_s=0.0)
        start = time.perf_counter()
        step.analyse(1, 1, samples, AUDIO_RATE)
        total = (time.perf_counter() - start) * 1000
        if not best or total < best["total_ms"]:
            best = {"total_ms": total, "prosody_ms": step.timings["prosody_ms"]}
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=REPEAT, help=f"runs per clip, fastest kept ({REPEAT})")
    args = parser.parse_args(argv)
    host, command = announce()
    rows = []
    for clip in real_speech_clips():
        samples = clip.samples()
        seconds = samples.size / AUDIO_RATE
        row = {"clip": clip.name, "audio_s": round(seconds, 2), **time_clip(samples, args.repeat)}
        row["ms_per_audio_s"] = row["total_ms"] / seconds
        rows.append(row)
        print(f"{clip.name:<16}{seconds:6.1f} s  total {row['total_ms']:7.1f} ms  prosody {row['prosody_ms']:7.1f} ms"
              f"  {row['ms_per_audio_s']:5.1f} ms per s of audio", flush=True)
    audio_s = sum(r["audio_s"] for r in rows)
    per_s = sum(r["total_ms"] for r in rows) / audio_s
    print(f"all {len(rows)} clips: {per_s:.1f} ms per second of audio")
    emit_result({"tool": "bench_voice", "command": command, "machine": host, "repeat": args.repeat,
                 "clips": rows, "ms_per_audio_s": per_s})
    return 0


if __name__ == "__main__":
    sys.exit(main())
