"""``report.png`` of an analysed recording: what a researcher looks at first (docs/analysis.md).

Valence and arousal over file time per person (fused, smoothed as published), the fused label of the
first person as a coloured strip, and the utterances as spans with their text and label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moodwire.pipeline.core.labels import LABELS

LABEL_COLOURS = dict(zip(LABELS, ("#d62728", "#8c564b", "#9467bd", "#2ca02c", "#1f77b4", "#ff7f0e", "#bbbbbb")))


def write_report(tables: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no window system
    import matplotlib.pyplot as plt

    frames, utterances = tables["frames"], tables["utterances"]
    fig, (val, aro, strip) = plt.subplots(3, 1, figsize=(12, 6.5), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 3, 1.2]})
    end_s = float(frames["time_s"].max()) if len(frames) else 1.0
    for axis, column in ((val, "valence"), (aro, "arousal")):
        for track, rows in frames.groupby(frames["track_id"].fillna(-1)):
            name = "no face (voice, text)" if track == -1 else f"track {int(track)}"
            axis.plot(rows["time_s"], rows[column], lw=1.2, label=name)
        axis.axhline(0, color="#888", lw=0.6)
        axis.set_ylim(-1.05, 1.05)
        axis.set_ylabel(f"fused {column}")
        for i, (_, utt) in enumerate(utterances.iterrows()):  # alternating shades: back-to-back ones stay apart
            axis.axvspan(utt["start_s"], utt["end_s"], color=("#f2e6c9", "#dde8f3")[i % 2], zorder=0)
    val.legend(loc="upper right", fontsize=8)
    for _, utt in utterances.iterrows():
        text = str(utt["text"])
        aro.annotate(f"{utt['label']}: {text[:40] + ('...' if len(text) > 40 else '')}",
                     (utt["start_s"], -1.0), fontsize=7, va="bottom", rotation=0, clip_on=True)
    _label_strip(strip, frames)
    strip.set_xlabel("time in the file (s)")
    strip.set_xlim(0, max(end_s, 1e-3))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _label_strip(axis: Any, frames: Any) -> None:
    """The fused label per frame (the first row of each frame: its first face, or the voice/text person)."""
    first = frames.drop_duplicates("frame_index") if len(frames) else frames
    times = list(first["time_s"]) if len(first) else []
    for i, (t, label) in enumerate(zip(times, first["label"] if len(first) else [])):
        nxt = times[i + 1] if i + 1 < len(times) else t + (times[1] - times[0] if len(times) > 1 else 0.04)
        axis.axvspan(t, nxt, color=LABEL_COLOURS.get(label, "white"), lw=0)
    axis.set_yticks([])
    axis.set_ylabel("label")
    handles = [axis.bar(0, 0, color=c, label=n) for n, c in LABEL_COLOURS.items()]
    axis.legend(handles=handles, ncol=len(LABELS), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.45),
                frameon=False)
