"""tools/bench_face.py still runs and reports what the README quotes (not a timing test).

It needs no .venv-fer-baseline (CI does not make one): without it the baseline
section must say it was skipped and why; with it, it must carry figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def check_timing(name: str, stats: dict) -> None:
    assert stats["p50"] > 0, name
    assert stats["p99"] >= stats["p50"], name


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_face_benchmark_quick_run_reports_moodwire_and_the_fer_baseline():
    out = subprocess.run([sys.executable, "-m", "tools.bench_face", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=540, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("machine: ")
    summary = json.loads(out.stdout.strip().splitlines()[-1])

    mood = summary["moodwire"]
    assert summary["frames"] == mood["frames"] == 60
    assert mood["frames_with_face"] >= 0.9 * mood["frames"]  # one real face, in view throughout
    assert 1 <= mood["distinct_track_ids"] <= 3
    for stage in ("landmarks_ms", "expression_ms", "total_ms", "node_ms"):
        check_timing(stage, mood[stage])
    assert mood["node_ms"]["p50"] >= mood["total_ms"]["p50"] * 0.9  # the call includes the step's own work
    assert mood["fps"] > 0

    baseline = summary["baseline"]
    if baseline["status"] == "skipped":
        assert baseline["reason"] and "fer_baseline_setup.sh" in baseline["setup"]
        assert summary["ratios"] is None
    else:
        assert baseline["status"] == "ran", baseline
        assert baseline["frames"] == 60
        check_timing("fer", baseline["latency_ms"])
        assert baseline["fps"] > 0
        assert summary["ratios"]["fps_moodwire_over_fer"] > 0
