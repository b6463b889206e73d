"""Fault injection (tools/faults.py): its figures from records, the fake camera, the bus under junk, and a
quick run of the real pipeline with kills, a stall and a flood."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from moodwire.tools import faults
from moodwire.tools.harness import monitor
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


def frames(*spec: tuple[float, bool]) -> list:
    """affect.frame records at (seconds, face present)."""
    return [monitor.Seen(int(t * 1e9), "affect.frame", "fusion", i, () if face else ("face",))
            for i, (t, face) in enumerate(spec)]


# ---------------------------------------------------------------- figures


def test_first_sustained_needs_a_whole_run_after_the_moment():
    recs = frames((0.0, True), (1.0, True), (1.1, False), (1.2, True), (1.3, True), (1.4, False), (1.5, True),
                  (1.6, True), (1.7, True))
    assert monitor.first_sustained(recs, int(0.5e9), monitor.has_face, 3) == int(1.5e9)
    assert monitor.first_sustained(recs, int(0.5e9), monitor.has_face, 1) == int(1.0e9)
    assert monitor.first_sustained(recs, int(0.5e9), monitor.has_face, 4) is None


def test_first_health_and_rate_count_from_the_fault():
    healths = [(int(t * 1e9), t) for t in (1.0, 2.0, 3.0)]
    assert monitor.first_health(healths, int(1.5e9), lambda h: h >= 2.0) == int(2e9)
    assert monitor.first_health(healths, int(1.5e9), lambda h: h > 5) is None
    recs = frames(*[(0.5 + i / 30, True) for i in range(60)])  # 30 per second from 0.5 s
    assert faults.rate_hz(recs, int(1e9), int(2e9)) == 30.0
    assert faults.rate_hz(recs, int(2e9), int(2e9)) is None


def test_collateral_names_only_other_nodes_whose_process_changed():
    from moodwire.pipeline.core.messages import NodeHealth, SystemHealth

    def health(**pids):
        return SystemHealth(nodes=[NodeHealth(name=n, alive=True, pid=p, restarts=int(p > 100), uptime_s=1,
                                              rate_hz=1) for n, p in pids.items()])

    before, after = health(face=10, asr=11, bus=12), health(face=200, asr=11, bus=300)
    assert faults.collateral(before, after, "face") == ["bus"]
    assert faults.changed(before.nodes[0], after.nodes[0]) and not faults.changed(before.nodes[1], after.nodes[1])


def test_markdown_table_has_one_row_per_event_and_names_failed_checks():
    good = faults.Event("SIGKILL face", "face", restarts=1, restart_s=0.8, checks={"restarted": True})
    bad = faults.Event("flood 2 s", "bus", fps=12.0, missing=["face"], checks={"kept_rate": False})
    lines = faults.table([good, bad]).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| fault |")
    assert "| SIGKILL face | 1 | 0.8 |" in lines[2] and lines[2].endswith("| ok |")
    assert "FAILED kept_rate" in lines[3] and "| face |" in lines[3]


# ---------------------------------------------------------------- the fake camera behind the real Webcam


def test_unplugged_fake_camera_stops_the_real_webcam_source_with_its_own_error(tmp_path, clip_video_only):
    from moodwire.pipeline.sources import SourceUnavailable, webcam

    flag = tmp_path / "unplugged"
    real_device = webcam.camera_device
    try:
        faults.install_fake_camera(str(clip_video_only), str(flag))
        stream = webcam.Webcam(0, 640, 480, 30.0).messages(__import__("threading").Event())
        first = [next(stream) for _ in range(3)]
        assert [m.frame_index for _, m in first] == [0, 1, 2]
        assert first[0][1].image.shape == (480, 640, 3) and first[0][1].fps_nominal == 30.0
        assert (first[2][1].t_capture - first[0][1].t_capture) / 1e9 == pytest.approx(2 / 30, abs=0.03)  # paced
        flag.touch()
        with pytest.raises(SourceUnavailable, match="stopped delivering frames"):
            next(stream)
        with pytest.raises(SourceUnavailable, match="no camera at index 0"):  # and it cannot be reopened
            webcam.open_camera(0, 640, 480, 30.0)
    finally:
        webcam.camera_device = real_device


# ---------------------------------------------------------------- the bus under junk (fix in pipeline/core/bus.py)


def test_malformed_messages_do_not_displace_the_newest_good_frame_on_a_latest_only_topic():
    """A flood of junk on video.frame used to replace the pending good frame before the node read it."""
    from moodwire.pipeline.core.bus import Subscriber
    from moodwire.pipeline.core.messages import VideoFrame
    from moodwire.pipeline.core.wire import encode

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.bind(endpoint)
    sub = Subscriber(endpoint, ["video.frame"])
    try:
        good = VideoFrame(frame_index=7, width=4, height=2, fps_nominal=30.0, image=np.zeros((2, 4, 3), np.uint8))
        deadline = time.monotonic() + 5
        while sub.freshness("video.frame").received == 0 and time.monotonic() < deadline:
            pub.send_multipart(encode("video.frame", good))  # until the subscription is through
            time.sleep(0.02)
        while sub.recv(timeout=0.1) is not None:
            pass
        pub.send_multipart(encode("video.frame", good))
        for _ in range(50):
            pub.send_multipart([b"video.frame", b"\xc1 junk"])
        time.sleep(0.3)
        got = sub.recv(timeout=1.0)
        assert got is not None and got.msg.frame_index == 7
        assert sub.malformed == 50 and "msgpack" in sub.last_error
    finally:
        sub.close()
        pub.close(linger=0)


# ---------------------------------------------------------------- the real pipeline


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_fault_run_restarts_recovers_reports_and_leaves_nothing(session_cache, face_models):
    """Kill face, fusion and the bus, stall the face node, flood the bus: every check of what the system
    does holds (restarted once with a new pid, health says so, output and face back, no collateral restart,
    subscribers reconnected after the bus, the face named missing, nothing left after Ctrl-C). How fast
    (faults.TIMING_CHECKS: restart within 5 s, health within 3 s, the stream's rate kept) is the tool's
    verdict on a machine it has to itself, as the README's run: here it is only reported."""
    out = subprocess.run([sys.executable, "-m", "tools.faults", "--quick"], cwd=ROOT, capture_output=True,
                         text=True, timeout=280)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    events = {e["fault"].split(" ")[0] + " " + e["node"]: e for e in result["events"]}
    assert set(events) == {"SIGKILL face", "SIGKILL fusion", "SIGKILL bus", "SIGSTOP face", "flood bus"}, out.stdout
    failed = {e["fault"]: [k for k, ok in e["checks"].items() if not ok and k not in faults.TIMING_CHECKS]
              for e in result["events"]}
    assert not any(failed.values()), (failed, out.stdout[-4000:])
    assert all(s["ok"] for s in result["ctrl_c"].values()), out.stdout[-4000:]
    assert out.returncode == (0 if result["ok"] else 1)  # the tool itself still fails on a slow recovery
    timed = {k for e in result["events"] for k in e["checks"]} & faults.TIMING_CHECKS
    assert timed >= {"restart_in_time", "health_in_time", "kept_rate"}  # judged and reported, each run
    kills = [e for e in result["events"] if e["fault"].startswith("SIGKILL")]
    assert all(e["restarts"] == 1 and e["restart_s"] > 0 for e in kills)
    assert "face" in events["SIGKILL face"]["missing"] and events["SIGKILL face"]["fps"] > 0
    assert events["SIGSTOP face"]["restarts"] == 0 and events["SIGSTOP face"]["health_s"] is not None
    assert events["flood bus"]["extra"]["sent"] > 1000
    assert result["ctrl_c"]["A"]["left_processes"] == [] and result["ctrl_c"]["A"]["left_files"] == []
    assert "| fault | restarts |" in out.stdout


# ---------------------------------------------------------------- manager fixes the fault runs called for


@pytest.fixture
def manager_with_live_face(tmp_path, monkeypatch):
    """A Manager (never started) whose face node is a live process that has reported once."""
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.runtime.manager import Manager

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    manager = Manager(Config())
    proc = manager.nodes["face"]
    proc.popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    proc.state = "running"
    try:
        yield manager, proc
    finally:
        proc.popen.kill()
        proc.popen.wait()


def report(manager, proc, error: str = "") -> None:
    from moodwire.pipeline.core.messages import NodeStats

    manager._stats["face"] = NodeStats(name="face", pid=proc.popen.pid, rates_hz={"face.tracks": 30.0},
                                       last_error=error)
    proc.reported_at = time.monotonic()


def face_health(manager):
    return next(n for n in manager.health().nodes if n.name == "face")


def test_health_calls_a_live_node_that_stopped_reporting_stalled_and_zeroes_its_rate(manager_with_live_face):
    from moodwire.pipeline.runtime.manager import STALLED_AFTER_S

    manager, proc = manager_with_live_face
    report(manager, proc)
    assert (face_health(manager).state, face_health(manager).rate_hz) == ("running", 30.0)
    proc.reported_at -= STALLED_AFTER_S + 0.5
    face = face_health(manager)
    assert face.alive and face.state == "stalled" and face.rate_hz == 0.0
    assert face.last_error.startswith("stalled: no system.node report for 4.")


def test_health_keeps_showing_what_a_restarted_node_reports_after_its_last_crash(manager_with_live_face):
    """The crash cause used to hide every later error of the new process (a flood went unreported)."""
    manager, proc = manager_with_live_face
    proc.last_error = "killed by SIGKILL"
    report(manager, proc, "header of 'video.frame' is not valid msgpack: ...")
    assert face_health(manager).last_error == \
        "killed by SIGKILL; then: header of 'video.frame' is not valid msgpack: ..."
    report(manager, proc)
    assert face_health(manager).last_error == "killed by SIGKILL"
