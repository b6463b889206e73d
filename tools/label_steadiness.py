"""How steady the fused per-person label is on a real clip, for several values of ``fusion.label_hold_s``.

Each hold value is one lossless ``moodwire analyze`` run of the clip (the same frames every time); per
hold it prints the label changes, the shortest label run (a run cut by the end of the clip or by the face
leaving is not counted), and the share of face frames whose shown label is the frame's own top class (the
unheld run's label). ``--expect LABEL`` (a clip of one known emotion) adds the share of face frames shown
as LABEL. Default clip: the real carphone footage (tools/media/reference.py).

    .venv/bin/python -m tools.label_steadiness [VIDEO] [--holds 0,0.3] [--expect happy]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any


def label_runs(frames: Any) -> list[tuple[str, float]]:
    """(label, seconds) of each run of one label on one track that ended with another label."""
    runs = []
    faces = frames[frames["track_id"].notna() & (frames["label"].fillna("") != "")].sort_values("frame_index")
    for _, track in faces.groupby("track_id"):
        labels, times, index = list(track["label"]), list(track["time_s"]), list(track["frame_index"])
        start = 0
        for i in range(1, len(labels)):
            if index[i] != index[i - 1] + 1:  # the face left: the run was cut, not ended by a label
                start = i
            elif labels[i] != labels[i - 1]:
                runs.append((labels[start], times[i] - times[start]))
                start = i
    return runs


def steadiness(frames: Any, raw: Any, expect: str) -> dict[str, float]:
    runs = label_runs(frames)
    faces = frames[frames["track_id"].notna()].set_index(["frame_index", "track_id"])["label"]
    tops = raw[raw["track_id"].notna()].set_index(["frame_index", "track_id"])["label"]
    both = faces.to_frame("shown").join(tops.to_frame("top"), how="inner")
    out = {"changes": len(runs), "shortest_ms": 1000 * min((s for _, s in runs), default=float("nan")),
           "under_300ms": sum(s < 0.3 for _, s in runs), "face_frames": len(both),
           "on_top_class": float((both["shown"] == both["top"]).mean()) if len(both) else float("nan")}
    if expect:
        out[f"on_{expect}"] = float((both["shown"] == expect).mean()) if len(both) else float("nan")
    shares = both["shown"].value_counts(normalize=True)
    out.update({f"share_{label}": float(share) for label, share in shares.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    from moodwire import analyze

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", type=Path, help="a video (default: the real carphone clip)")
    parser.add_argument("--holds", default="0,0.1,0.2,0.3,0.5", help="fusion.label_hold_s values, comma-separated")
    parser.add_argument("--expect", default="", help="the clip's known label: print the share of frames on it")
    args = parser.parse_args(argv)
    holds = [float(h) for h in args.holds.split(",")]
    if 0.0 not in holds:
        holds.insert(0, 0.0)
    with tempfile.TemporaryDirectory(prefix="label-steadiness-") as folder:
        video = args.video or _carphone(Path(folder))
        frames = {h: analyze(video, format="csv", set=[f"fusion.label_hold_s={h}"])["frames"] for h in holds}
    print(f"{video.name}: the fused label per fusion.label_hold_s (lossless runs)")
    for hold in holds:
        row = steadiness(frames[hold], frames[0.0], args.expect)
        print(f"  hold {hold:4.2f} s: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in row.items()))
    return 0


def _carphone(folder: Path) -> Path:
    from .media import reference

    return reference.carphone_640x480(folder)


if __name__ == "__main__":
    sys.exit(main())
