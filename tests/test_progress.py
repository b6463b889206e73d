"""Progress of long steps (pipeline/core/progress.py), TensorRT's build phases (engines/tensorrt_progress.py),
and the commands that report through them: ``moodwire export`` and the ASR model's load and warm-up.

TensorRT is not installed here: its monitor is driven with the calls TensorRT makes, through a
stand-in ``IProgressMonitor`` base class; the real one has not run.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
import types

import pytest

from moodwire.engines.tensorrt_progress import BuildPhases, tensorrt_progress_monitor
from moodwire.pipeline.core.progress import LineReporting, Progress, reporting
from tests.conftest import MOODWIRE


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: each carriage return goes back to the line's start."""
    lines, current = [], ""
    for part in raw.split("\n"):
        current = ""
        for piece in part.split("\r"):
            current = piece + current[len(piece):]
        lines.append(current.rstrip())
    return lines


# ---------------------------------------------------------------- the reporter


def test_a_log_gets_a_line_per_thing_said_and_the_elapsed_time_at_the_end():
    out = io.StringIO()
    clock = FakeClock()
    with Progress(out, clock=clock).step("export face-expression") as step:
        step("checking emotion_model.hdf5")
        clock.t += 2.5
    assert out.getvalue().splitlines() == ["export face-expression: started",
                                           "export face-expression: checking emotion_model.hdf5",
                                           "export face-expression: done in 2.5 s"]


def test_a_silent_step_shows_it_is_alive_every_few_seconds_with_its_fraction():
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(out, every_s=5.0, clock=clock)
    with progress.step("asr model") as step:
        step("loading tiny.en")
        step.count(9, 20)
        clock.t += 4.9
        step.tick()
        quiet = out.getvalue()
        clock.t += 0.1
        step.tick()
        step.tick()  # not due again until 5 s more
    lines = out.getvalue().splitlines()
    assert quiet.splitlines() == ["asr model: started", "asr model: loading tiny.en"]
    assert lines[2] == "asr model: [#########...........]  45% 5.0 s, loading tiny.en"
    assert lines[3] == "asr model: done in 5.0 s" and len(lines) == 4


def test_the_heartbeat_runs_by_itself_while_the_step_blocks():
    said: list[str] = []
    with Progress(said.append, every_s=0.05).step("export text-encoder"):
        time.sleep(0.6)  # a long call that says nothing, like torch.onnx.export
    beats = [line for line in said if re.fullmatch(r"export text-encoder: \d+\.\d s", line)]
    assert said[0] == "export text-encoder: started" and said[-1].startswith("export text-encoder: done in 0.")
    assert len(said) >= 4 and len(beats) >= 2, said  # at least two status lines between start and end


def test_a_terminal_gets_one_line_rewritten_in_place_and_keeps_what_was_said():
    term, clock = Terminal(), FakeClock()
    progress = Progress(term, clock=clock)
    assert progress.tty
    with progress.step("TensorRT engine") as step:
        step("building fp16 engine")
        step.fraction(0.5)
        step.detail("Tactic selection 3/40")
        clock.t += 12.0
        step.tick()
        assert screen(term.getvalue())[-1] == "TensorRT engine: [##########..........]  50% 12.0 s, Tactic selection 3/40"
    raw = term.getvalue()
    assert "\r" in raw and raw.endswith("\n")
    assert [line for line in screen(raw) if line] == ["TensorRT engine: started",
                                                      "TensorRT engine: building fp16 engine",
                                                      "TensorRT engine: done in 12.0 s"]


def test_a_failing_step_says_so_and_the_error_goes_on():
    out = io.StringIO()
    with pytest.raises(RuntimeError, match="parity"):
        with Progress(out).step("export face-expression") as step:
            step("exporting")
            raise RuntimeError("parity check failed")
    assert out.getvalue().splitlines()[-1].startswith("export face-expression: failed after ")
    assert step.last_line == "exporting"


def test_a_plain_callable_is_reported_to_line_by_line():
    said: list[str] = []
    assert isinstance(reporting(said.append), LineReporting)
    with Progress(said.append).step("x") as step:
        assert reporting(step) is step
        reporting(said.append).fraction(0.3)  # a callable has no status: dropped, no error
    assert said[0] == "x: started"


# ---------------------------------------------------------------- TensorRT's build phases


def test_build_phases_become_a_fraction_a_detail_and_one_line_per_outer_phase():
    said: list[str] = []
    with Progress(said.append, every_s=60).step("TensorRT engine") as step:
        phases = BuildPhases(step)
        phases.phase_start("Building engine", None, 4)
        assert phases.step_complete("Building engine", 0) is True  # steps count from 0: one done
        phases.phase_start("Tactic selection", "Building engine", 10)
        phases.step_complete("Tactic selection", 4)
        assert phases.fraction() == pytest.approx((1 + 5 / 10) / 4)
        assert phases.detail() == "Building engine 1/4 > Tactic selection 5/10"
        assert "37%" in step.status() or "38%" in step.status()
        phases.phase_finish("Tactic selection")
        assert phases.fraction() == pytest.approx(0.25) and phases.detail() == "Building engine 1/4"
        phases.phase_finish("Building engine")
        assert phases.fraction() is None and phases.detail() == ""
    assert [line for line in said if "TensorRT:" in line] == ["TensorRT engine: TensorRT: Building engine"]


def test_a_phase_finished_with_its_children_running_takes_them_along():
    phases = BuildPhases(lambda line: None)  # a plain callable: lines only
    phases.phase_start("outer", None, 2)
    phases.phase_start("inner", "outer", 5)
    phases.phase_finish("outer")
    assert phases.fraction() is None and phases.detail() == ""
    phases.step_complete("unknown phase", 3)  # a step of a phase never started is ignored


def test_the_monitor_is_made_on_tensorrt_progress_monitor_interface_where_it_exists():
    assert tensorrt_progress_monitor(types.SimpleNamespace(), print) is None  # a TensorRT before 8.6

    class IProgressMonitor:  # what tensorrt's pybind11 class asks of a subclass: call its __init__
        def __init__(self) -> None:
            self.base_initialised = True

    said: list[str] = []
    monitor = tensorrt_progress_monitor(types.SimpleNamespace(IProgressMonitor=IProgressMonitor), said.append)
    assert isinstance(monitor, IProgressMonitor) and monitor.base_initialised
    monitor.phase_start("Building engine", None, 2)
    assert monitor.step_complete("Building engine", 1) is True
    monitor.phase_finish("Building engine")
    assert said == ["TensorRT: Building engine"]


# ---------------------------------------------------------------- the commands


@pytest.mark.slow
def test_moodwire_export_reports_its_progress(isolated_env, tmp_path):
    env = dict(isolated_env, XDG_CACHE_HOME=str(tmp_path / "cache"))  # a fresh export, not the session's
    run = subprocess.run([*MOODWIRE, "export", "face-expression"], capture_output=True, text=True, timeout=180,
                         env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0] == "export face-expression: started"
    assert any(line.startswith("export face-expression: checking emotion_model.hdf5") for line in lines)
    assert any(line.startswith("export face-expression: wrote ") for line in lines)
    assert lines[-1].startswith("export face-expression: done in ") and lines[-1].endswith(" s")
    assert run.stdout.startswith("face-expression: ")  # the summary, on stdout as before


@pytest.mark.slow
def test_the_asr_model_load_and_warm_up_report_their_progress():
    from moodwire.pipeline.asr.step import build_asr_step
    from moodwire.pipeline.core.config import Config

    said: list[str] = []
    build_asr_step(Config(), progress=said.append)
    assert said[0] == "asr model: started" and said[-1].startswith("asr model: done in ")
    assert any(line.startswith("asr model: loading tiny.en") for line in said)
    assert any(line.startswith("asr model: warm-up decode ") and line.endswith(" ms") for line in said)
