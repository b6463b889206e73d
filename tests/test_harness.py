"""The tools' one harness (tools/harness/): its figures, its memory sampler and its pipeline launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from moodwire.tools.harness import stats
from moodwire.tools.harness.launch import PipelineRun
from moodwire.tools.harness.memory import MemorySampler, peak_rss_mb
from tests.conftest import SYNTHETIC

ROOT = Path(__file__).resolve().parents[1]


def test_summary_is_numpy_linear_percentiles_and_nothing_when_empty():
    s = stats.summary(np.arange(1, 101, dtype=float), 2)
    assert (s["p50"], s["p90"], s["p99"], s["mean"], s["max"], s["n"]) == (50.5, 90.1, 99.01, 50.5, 100.0, 100)
    assert stats.summary([1.23456], 1) == {"p50": 1.2, "p90": 1.2, "p99": 1.2, "mean": 1.2, "max": 1.2, "n": 1}
    assert stats.summary([]) == {"p50": None, "p90": None, "p99": None, "mean": None, "max": None, "n": 0}


def test_lost_has_one_definition_jumps_and_the_start_a_restarted_publisher_missed():
    assert (stats.seq_gaps([0, 1, 2, 3]).lost, stats.seq_gaps([0, 1, 2, 3]).restarts) == (0, 0)
    assert stats.seq_gaps([0, 1, 4, 5, 9]).lost == 5  # 2, 3, 6, 7, 8
    assert (stats.seq_gaps([7, 8, 0, 1]).lost, stats.seq_gaps([7, 8, 0, 1]).restarts) == (0, 1)  # came back at 0
    gaps = stats.seq_gaps([7, 8, 2, 3])  # restarted, and its seq 0 and 1 never came
    assert (gaps.received, gaps.lost, gaps.restarts) == (4, 2, 1)
    gaps = stats.seq_gaps([5, 6, 7, 10, 11, 0, 1, 3])
    assert (gaps.received, gaps.lost, gaps.restarts) == (8, 3, 1)  # 8 and 9, then 2
    assert stats.seq_gaps([]).lost == 0 and stats.seq_gaps([40, 41]).lost == 0  # joining late loses nothing


def test_index_gaps_cpu_share_ratio_and_rate():
    assert stats.index_gaps([3, 4, 5]) == 0 and stats.index_gaps([3, 4, 4, 7, 9]) == 3 and stats.index_gaps([]) == 0
    before, after = SimpleNamespace(user=10.0, system=2.0), SimpleNamespace(user=11.5, system=2.5)
    assert stats.cpu_share(before, after, wall_s=4.0) == 50.0
    assert stats.cpu_share(before, SimpleNamespace(user=18.0, system=4.0), wall_s=5.0) == 200.0  # two busy cores
    assert stats.cpu_share(None, after, 4.0) is None and stats.cpu_share(before, after, 0.0) is None
    assert stats.ratio(20.0, 10.0) == 2.0 and stats.ratio(None, 1.0) is None and stats.ratio(1.0, 0.0) is None
    times = [int((0.5 + i / 30) * 1e9) for i in range(60)]  # 30 per second from 0.5 s
    assert stats.rate_hz(times, int(1e9), int(2e9)) == 30.0 and stats.rate_hz(times, 5, 5) is None


def test_memory_sampler_keeps_each_named_process_and_the_total_and_skips_a_gone_one():
    code = "import time; x = b'1' * (64 << 20); print('ready', flush=True); time.sleep(30)"  # 64 MB, written
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        pids = {"me": os.getpid(), "child": child.pid}
        sampler = MemorySampler(lambda: pids)
        sampler.sample()
        child.kill()
        child.wait()
        sampler.sample()  # the child is gone: no sample for it, not a zero
        assert [len(sampler.series[k]) for k in ("me", "child", "total")] == [2, 1, 2]
        assert sampler.max_mb("child") > 60 and sampler.last_mb("me") > 10
        first = {name: series[0][1] for name, series in sampler.series.items()}
        assert first["total"] == pytest.approx(first["me"] + first["child"])
        assert sampler.max_mb("nobody") is None and peak_rss_mb() >= sampler.last_mb("me") * 0.5
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.slow
def test_launcher_runs_moodwire_run_watches_it_and_leaves_nothing_after_ctrl_c(exported_models):
    run = PipelineRun.start([*SYNTHETIC, "--set", "nodes.asr=false", "--set", "nodes.face=false"],
                            subscribe=["system.health"])
    try:
        seen: list = []
        why = run.watch(lambda got: seen.append(got.msg), lambda: len(seen) >= 2, timeout_s=60)
        assert why == "done", run.output()
        assert {n.name for n in seen[-1].nodes} >= {"bus", "video_source", "fusion"}
        report = run.ctrl_c()
        assert report["exit_code"] == 0 and report["processes_seen"] >= 5, (report, run.output())
        assert report["left_processes"] == [] and report["left_files"] == []
        assert run.stop(signal.SIGINT) == 0  # already stopped: stop is idempotent
    finally:
        run.close()
    assert not run.folder.exists()


def test_tools_are_one_package_run_with_python_m_and_never_edit_sys_path():
    tools = sorted(p for p in (ROOT / "tools").rglob("*.py"))
    assert (ROOT / "tools" / "__init__.py").is_file() and (ROOT / "tools" / "harness" / "__init__.py").is_file()
    edits = [str(p.relative_to(ROOT)) for p in tools if "sys.path.insert" in p.read_text() or
             "sys.path.append" in p.read_text()]
    assert not edits
    out = subprocess.run([sys.executable, "-m", "tools.soak", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--minutes" in out.stdout, out.stderr


def test_a_baseline_revision_is_imported_from_its_own_checkout_and_removed_after():
    from moodwire.tools.harness.baseline import BaselineError, baseline, describe

    with baseline("HEAD") as other:
        done = subprocess.run([sys.executable, "-c", "import moodwire.pipeline.core.audio as a; print(a.__file__)"],
                              env=other.env, cwd=other.cwd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert Path(done.stdout.strip()).is_relative_to(other.cwd)  # not this working tree's copy
        tree = other.cwd
    assert not tree.exists()
    assert describe("HEAD").split()[0] and len(describe("HEAD").split()[0]) >= 7
    with pytest.raises(BaselineError, match="a revision it has"):
        with baseline("no-such-revision-here"):
            pass
