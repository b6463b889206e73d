"""The README's first analysis example: ``moodwire analyze`` on a real face and a real voice.

The clip: the real carphone footage (a man talking in a car, tools/media/reference.py, played
forward and backward) under the real JFK clip (11 s of the 1961 inaugural address, public domain,
from the nodejs-whisper npm package: tools/media/real_speech.py). Face and voice are real but not
the same person's, so the speaker attribution and the agreement of face and voice mean nothing here.

    .venv/bin/python -m tools.analysis_demo [--out docs/img/analysis_report.png]

Prints the summary's figures; copies ``report.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from .media.real_speech import real_speech_clips
from .media.speech_clip import mux_face_video


def main(argv: list[str] | None = None) -> int:
    from moodwire import analyze
    from moodwire.pipeline.core.paths import cache_dir
    from moodwire.pipeline.sources.spoken import read_wav

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/analysis_report.png"))
    args = parser.parse_args(argv)
    jfk = next(c for c in real_speech_clips() if c.name == "jfk")
    clip = cache_dir() / "bench" / "carphone_jfk.mkv"
    if not clip.is_file():
        mux_face_video(clip, read_wav(jfk.path)[1])
    with tempfile.TemporaryDirectory(prefix="analysis-demo-") as folder:
        tables = analyze(clip, out=folder, format="csv")
        shutil.copy(Path(folder) / clip.stem / "report.png", args.out)
    s = tables["summary"]
    print(f"{clip.name}: {s['frames_analysed']} of {s['frames_in_file']} frames, {s['utterances']} utterances, "
          f"{s['speed_x']:.2f}x real time ({s['processing_speed_x']:.2f}x once loaded); report -> {args.out}")
    print(tables["utterances"][["start_s", "end_s", "text", "label", "valence", "arousal"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
