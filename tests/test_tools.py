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
