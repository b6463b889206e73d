#!/usr/bin/env python3
"""Make a SMALL SYNTHETIC labelled speech set with espeak-ng, named like RAVDESS, to test the
plumbing of tools/train_voice.py (naming, reading, speaker split, training, export, loading).

THIS IS NOT EMOTIONAL SPEECH. Each RAVDESS "emotion" code is deliberately mapped to espeak-ng
settings (``SETTINGS``: angry = fast, loud, high; sad = slow, soft, low; ...), and each "actor" is
an espeak-ng voice. A model trained on it learns to tell those settings apart, nothing more: it
is not an emotion model and must never be described as one. The folder gets a ``toyset.json``
marker, so tools/train_voice.py records "SYNTHETIC toy set" in the model's sidecar and the voice
node gives such a model's valence zero confidence.

    python -m tools.make_voice_toyset --out /tmp/toyset --actors 4
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from moodwire.pipeline.core.audio import AUDIO_RATE, resample_linear
from moodwire.pipeline.sources.spoken import Voice, speak, write_wav

# RAVDESS emotion code -> (name in RAVDESS, espeak-ng speed wpm, pitch 0-99, amplitude 0-200)
SETTINGS: dict[str, tuple[str, int, int, int]] = {
    "01": ("neutral", 150, 50, 100),
    "02": ("calm", 130, 40, 80),
    "03": ("happy", 180, 75, 140),
    "04": ("sad", 100, 20, 40),
    "05": ("angry", 210, 65, 190),
    "06": ("fearful", 220, 90, 90),
    "07": ("disgust", 120, 30, 130),
    "08": ("surprised", 170, 99, 160),
}
# RAVDESS's two statements
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
# "actors": espeak-ng voices; odd ids male, even female, as in RAVDESS
ACTOR_VOICES = ("en-us", "en-us+f3", "en+m3", "en-gb+f4", "en-029", "en-gb-scotland+f2", "en-us+m7", "en+f2")
# repetition 02 nudges the settings, so the two repetitions are not identical files
REPEAT_NUDGE = (10, 5, 10)  # wpm, pitch, amplitude


def clip_name(emotion: str, statement: str, repetition: int, actor: int) -> str:
    """RAVDESS: modality 03 (audio-only), channel 01 (speech), emotion, intensity 01, statement, repetition, actor."""
    return f"03-01-{emotion}-01-{statement}-{repetition:02d}-{actor:02d}.wav"


def voice_for(emotion: str, actor: int, repetition: int) -> Voice:
    _, wpm, pitch, amplitude = SETTINGS[emotion]
    if repetition == 2:
        wpm, pitch, amplitude = (v + d for v, d in zip((wpm, pitch, amplitude), REPEAT_NUDGE))
    return Voice(speed_wpm=wpm, pitch=min(pitch, 99), amplitude=min(amplitude, 200),
                 name=ACTOR_VOICES[actor - 1])


def make_toyset(out: Path, actors: int, statements: int, repetitions: int, rate: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for actor in range(1, actors + 1):
        for emotion in SETTINGS:
            for statement in list(STATEMENTS)[:statements]:
                for repetition in range(1, repetitions + 1):
                    samples = speak(STATEMENTS[statement], voice_for(emotion, actor, repetition))
                    path = out / clip_name(emotion, statement, repetition, actor)
                    written.append(write_wav(path, resample_linear(samples, AUDIO_RATE, rate), rate))
    _write_marker(out, actors, rate, len(written))
    return written


def _write_marker(out: Path, actors: int, rate: int, count: int) -> None:
    note = ("SYNTHETIC toy set made by tools/make_voice_toyset.py with espeak-ng. NOT emotional speech: "
            "each RAVDESS emotion code stands for fixed espeak-ng speed/pitch/amplitude settings and each "
            "actor is an espeak-ng voice. It exists to test tools/train_voice.py; a model trained on it is "
            "not an emotion model.")
    marker = {"synthetic": True, "generator": "tools/make_voice_toyset.py", "note": note, "clips": count,
              "sample_rate": rate,
              "settings": {code: dict(zip(("ravdess_name", "speed_wpm", "pitch", "amplitude"), row))
                           for code, row in SETTINGS.items()},
              "actors": {f"{a:02d}": asdict(voice_for("01", a, 1))["name"] for a in range(1, actors + 1)}}
    (out / "toyset.json").write_text(json.dumps(marker, indent=2) + "\n")
    (out / "README.txt").write_text(note + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the clips into")
    parser.add_argument("--actors", type=int, default=4, choices=range(1, len(ACTOR_VOICES) + 1),
                        metavar=f"1..{len(ACTOR_VOICES)}", help="espeak-ng voices standing in for actors")
    parser.add_argument("--statements", type=int, default=2, choices=(1, 2), help="RAVDESS statements spoken")
    parser.add_argument("--repetitions", type=int, default=1, choices=(1, 2), help="takes per statement")
    parser.add_argument("--rate", type=int, default=AUDIO_RATE, help="sample rate of the files (RAVDESS: 48000)")
    args = parser.parse_args(argv)
    written = make_toyset(args.out, args.actors, args.statements, args.repetitions, args.rate)
    print(json.dumps({"out": str(args.out), "clips": len(written), "synthetic": True,
                      "note": "toy set for testing the training tool; NOT emotional speech"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
