"""The benchmarks under tools/ still run and report what the README quotes (not a timing test); the tools
are one package over one harness (tools/harness/), run as ``python -m tools.NAME``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bus_benchmark_quick_run_reports_every_path_and_payload():
    out = subprocess.run([sys.executable, "-m", "tools.bench_bus", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    rows = {(r["path"], r["payload"], r["mode"]): r for r in summary["results"]}
    assert set(rows) == {(p, k, m) for p in ("ipc", "tcp") for k in ("frame", "small") for m in ("paced", "flood")}
    for (path, payload, mode), row in rows.items():
        assert row["malformed"] == 0
        assert row["bus_us"]["p50"] > 0
        if mode == "paced":  # at 30 Hz and 1 kHz nothing is lost on the way
            assert row["arrived"] == row["sent"], (path, payload)
            # frames are latest-only: a reader stalled by a busy machine sees a newer frame replace one
            assert row["delivered"] + row["superseded"] == row["sent"], (path, payload)


def test_the_streams_table_says_a_stream_below_25_fps_is_not_kept():
    """tools/bench_streams.py's figures from arrival records (the run itself is the benchmark's, not a test's)."""
    from moodwire.tools.bench_streams import _figures, table

    t0, t1 = 0, 2 * 10**9
    every = lambda hz: [int(k * 1e9 / hz) for k in range(int(2 * hz))]  # noqa: E731
    times = {("face.tracks", "cam1"): every(30), ("affect.frame", "cam1"): every(30),
             ("face.tracks", "cam2"): every(20), ("affect.frame", "cam2"): every(30)}
    latency = {"cam1": [20.0, 30.0], "cam2": [40.0, 50.0]}
    cpu = {"server/face": 120.0, "server/fusion": 20.0, "cam1/video_source": 10.0, "cam2/video_source": None}
    row = _figures(2, times, latency, cpu, t0, t1)
    assert (row["face_hz_min"], row["affect_hz_min"], row["keeps_25"]) == (20.0, 30.0, False)
    assert row["models_cpu_per_stream"] == 70.0 and row["all_cpu"] == 150.0
    assert "| 2 | 20.0 | 30.0 | no | 35.0 / 49.7 | 120.0 | 20.0 | 150.0 | 70.0 |" in table([row])
    assert _figures(1, times, latency, cpu, t0, t1)["keeps_25"]


def test_label_steadiness_counts_runs_per_face_and_ignores_runs_cut_by_the_face_leaving():
    import pandas as pd

    from moodwire.tools.label_steadiness import label_runs, steadiness

    rows = [(i, i / 30, 1, label) for i, label in enumerate(["happy"] * 10 + ["sad"] * 2 + ["happy"] * 5)]
    rows += [(i, i / 30, 2, "fear") for i in (0, 1, 2, 5, 6)] + [(3, 0.1, None, "")]  # face 2 leaves at 3
    frames = pd.DataFrame(rows, columns=["frame_index", "time_s", "track_id", "label"])
    runs = label_runs(frames)
    assert [(label, round(s, 3)) for label, s in runs] == [("happy", 0.333), ("sad", 0.067)]
    raw = frames.assign(label=frames["label"].where(frames["frame_index"] != 11, "angry"))
    out = steadiness(frames, raw, expect="happy")
    assert out["changes"] == 2 and out["under_300ms"] == 1 and out["face_frames"] == 22
    assert out["on_top_class"] == pytest.approx(21 / 22) and out["on_happy"] == pytest.approx(15 / 22)
