"""Write every ``affect.utterance`` to CSV: when, who spoke, what was said, and how it felt.

    python examples/utterance_logger.py utterances.csv [--endpoint tcp://127.0.0.1:5560] [--count N]

One row per utterance, written as it arrives (flushed, so the file can be followed live):
time (wall clock at the utterance's start), duration, the speaking face's track id (empty when
not attributed), the transcript, the top fused emotion, valence, arousal, confidence, and the
modalities that contributed. ``-`` writes to standard output. Runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from typing import IO, Iterator

import moodwire

COLUMNS = ["time", "duration_s", "speaker_track_id", "text", "top_emotion",
           "valence", "arousal", "confidence", "modalities"]


def row(u: moodwire.AffectUtterance) -> list[str]:
    return [
        moodwire.wall_clock(u.t_start).isoformat(timespec="milliseconds"),
        f"{(u.t_end - u.t_start) / 1e9:.2f}",
        "" if u.speaker_track_id is None else str(u.speaker_track_id),
        u.text,
        moodwire.top_label(u.labels, u.probs),
        f"{u.valence:.4f}",
        f"{u.arousal:.4f}",
        f"{u.confidence:.4f}",
        "+".join(moodwire.modalities_used(u.inputs)),
    ]


@contextlib.contextmanager
def open_out(path: str) -> Iterator[IO[str]]:
    if path == "-":
        yield sys.stdout
    else:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            yield fh


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="CSV file to write ('-': standard output)")
    ap.add_argument("--endpoint", default=moodwire.DEFAULT_ENDPOINT, help="moodwire's public endpoint")
    ap.add_argument("--count", type=int, help="stop after N utterances")
    ap.add_argument("--seconds", type=float, help="stop after S seconds")
    args = ap.parse_args()

    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    written = 0
    try:
        with open_out(args.out) as fh, moodwire.subscribe("affect.utterance", args.endpoint) as stream:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            fh.flush()
            print(f"logging affect.utterance from {args.endpoint}", file=sys.stderr, flush=True)
            while (args.count is None or written < args.count) and (deadline is None or time.monotonic() < deadline):
                msg = stream.get(timeout=0.25)
                if isinstance(msg, moodwire.AffectUtterance) and msg.stage == "final":  # one row per utterance
                    writer.writerow(row(msg))
                    fh.flush()
                    written += 1
    except KeyboardInterrupt:
        pass
    print(f"wrote {written} utterance(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
