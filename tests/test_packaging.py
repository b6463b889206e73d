"""One installed name: moodwire adds only ``moodwire`` to a Python environment, so a project with its own
``pipeline``, ``engines``, ``exporters`` or ``tools`` package runs it beside them; and the nodes it runs
never load torch (exporting happens before they start)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from moodwire.tools.harness.launch import PipelineRun, free_port
from tests.conftest import MOODWIRE

OUR_FOLDERS = ("pipeline", "engines", "exporters", "tools")
MARK = "SCRATCH-PACKAGE-IMPORTED"


def test_the_distribution_installs_one_top_level_package():
    dist = importlib.metadata.distribution("moodwire")
    assert dist.read_text("top_level.txt").split() == ["moodwire"]
    shown = subprocess.run([sys.executable, "-m", "pip", "show", "-f", "moodwire"], capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    files = shown.stdout.split("Files:", 1)[1].split()
    tops = {f.split("/")[0] for f in files if not f.startswith("..")}
    assert not tops & set(OUR_FOLDERS), tops
    # an editable install (tools/setup.sh) maps the one name onto the checkout; a wheel holds moodwire/ only
    assert all(t.startswith(("moodwire", "__editable__", "__pycache__")) for t in tops), tops


def scratch_project(folder: Path) -> Path:
    """A user's project with packages named like moodwire's folders; importing any of them says so."""
    for name in OUR_FOLDERS:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"import sys\nprint({MARK!r}, {name!r}, file=sys.stderr)\nOWNER = 'the scratch project'\n")
        (folder / name / "node_main.py").write_text("raise SystemExit('the scratch project, not moodwire')\n")
    return folder


def test_a_project_with_its_own_pipeline_engines_exporters_and_tools_imports_moodwire(tmp_path):
    project = scratch_project(tmp_path / "project")
    code = ("import moodwire, pipeline, moodwire.pipeline.runtime.cli as cli; "
            "print(moodwire.__name__, pipeline.OWNER, moodwire.Latest.__module__, cli.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["moodwire", "the", "scratch", "project", "moodwire.latest",
                                  "moodwire.pipeline.runtime.cli"]
    assert out.stderr.count(MARK) == 1  # the user's own `import pipeline`, and nothing of moodwire's


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_moodwire_run_inside_such_a_project_runs_every_node_and_none_loads_torch(tmp_path, isolated_env):
    """``moodwire run --duration 5`` from inside the project (no webcam or mic: the sample clip): every node
    runs without a restart, none imports the project's packages, and no node process maps libtorch."""
    project = scratch_project(tmp_path / "project")
    run = PipelineRun.start(["--duration", "5"], isolated_env, subscribe=["system.health"], cwd=project)
    try:
        health, torch_maps = None, {}
        deadline = time.monotonic() + 180
        while run.proc.poll() is None and time.monotonic() < deadline:
            got = run.sub.recv(1.0)
            if got is not None and all(n.alive and n.state == "running" for n in got.msg.nodes):
                health = got.msg
                torch_maps |= {n.name: n.pid for n in health.nodes if libtorch_mapped(n.pid)}
        assert run.proc.wait(60) == 0, run.output()[-3000:]
        log = run.output()
    finally:
        run.close()
    assert health is not None, log[-3000:]
    assert {n.name for n in health.nodes} == {"bus", "video_source", "audio_source", "face", "vad", "asr", "voice",
                                              "text", "fusion"}
    assert all(n.restarts == 0 for n in health.nodes), health
    assert MARK not in log and "No module named" not in log, log[-3000:]
    assert not torch_maps, f"nodes with libtorch mapped: {torch_maps}"


def libtorch_mapped(pid: int) -> bool:
    """Whether the process has torch's shared library in its memory map (it imported torch)."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:  # gone, or no /proc here
        return False


def test_the_manager_process_does_not_import_torch_either_once_models_are_exported(isolated_env):
    """The prepare step checks exports without torch; only a missing export starts a child that has it."""
    code = ("import sys; from moodwire.pipeline.core.config import Config; "
            "from moodwire.pipeline.runtime.prepare import missing_exports, needed_exports; "
            "c = Config(); print(needed_exports(c), missing_exports(c)); assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], env=isolated_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['face-expression', 'text-encoder', 'fusion'] []"


def run_face_only(env: dict[str, str]) -> subprocess.CompletedProcess:
    """One second of ``moodwire run`` with a synthetic camera and the face node only (one model to export)."""
    return subprocess.run([*MOODWIRE, "run", "--duration", "1", "--quiet", "--set", "sources.video=synthetic",
                           "--set", "sources.audio=none", "--set", "nodes.fusion=false",
                           "--set", f"bus.public=tcp://127.0.0.1:{free_port()}"],
                          env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_a_run_whose_models_are_not_exported_exports_them_first_in_a_child(isolated_env, tmp_path):
    out = run_face_only(dict(isolated_env, XDG_CACHE_HOME=str(tmp_path / "empty-cache")))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "moodwire: exporting face-expression before the nodes start" in out.stderr
    assert "face-expression: " in out.stderr and "parity" in out.stderr  # the child's export summary
    assert any((tmp_path / "empty-cache" / "moodwire" / "models" / "face-expression").rglob("*.onnx"))


@pytest.mark.slow
def test_without_the_export_extra_a_missing_model_is_one_clear_error(isolated_env, tmp_path):
    """The prepare step's child cannot import torch: moodwire run names the extra and exits 2, starting nothing."""
    blocker = tmp_path / "no-torch"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch is not installed', name='torch')\n")
    out = run_face_only(dict(isolated_env, XDG_CACHE_HOME=str(tmp_path / "empty-cache"),
                             PYTHONPATH=os.pathsep.join(filter(None, [str(blocker), isolated_env.get("PYTHONPATH")]))))
    assert out.returncode == 2, out.stderr[-3000:]
    assert "exporting face-expression needs the export extra" in out.stderr
    assert "moodwire: error: exporting face-expression failed" in out.stderr and "Traceback" not in out.stderr
