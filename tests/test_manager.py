"""The process manager with real node processes: start, health, restart, clean stop."""

from __future__ import annotations

import os
import signal
import time

import pytest

from moodwire.pipeline.core.bus import Subscriber
from moodwire.pipeline.core.clock import now_ns
from tests.conftest import SYNTHETIC, pid_alive

pytestmark = pytest.mark.slow


def node(health, name):
    return next(n for n in health.nodes if n.name == name)


def wait_for(pipeline, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = pipeline.health()
        if predicate(health):
            return health, time.monotonic()
    raise AssertionError(f"condition not met in {timeout} s; last health: {health}")


def test_starts_enabled_nodes_and_reports_their_health(start_pipeline):
    pipeline = start_pipeline(*SYNTHETIC)
    health = pipeline.wait_healthy()
    assert {n.name for n in health.nodes} == {"bus", "video_source", "audio_source", "face", "vad", "asr", "voice",
                                              "text", "fusion"}
    # each source's own output rate, from its system.node report (the figure itself is the benchmark's)
    health, _ = wait_for(pipeline, lambda h: all(node(h, n).rate_hz > 0 for n in ("video_source", "audio_source")), 10)
    assert node(health, "fusion").outputs == ["affect.frame", "affect.utterance"]
    assert all(n.restarts == 0 and n.last_error == "" for n in health.nodes)


@pytest.mark.parametrize("victim", ["bus", "video_source", "audio_source", "asr", "fusion"])
def test_sigkilled_node_is_restarted_after_its_backoff_and_counted(start_pipeline, victim):
    """Restarted once, with a new pid, no sooner than manager.restart_backoff_s after it died; how soon
    after that is a verdict on the machine's speed, which tools/faults.py gives (restart_in_time)."""
    from moodwire.pipeline.core.config import ManagerConfig

    pipeline = start_pipeline(*SYNTHETIC)
    before = pipeline.wait_healthy()
    old_pid = node(before, victim).pid
    others = {n.name: n.pid for n in before.nodes if n.name != victim}
    os.kill(old_pid, signal.SIGKILL)
    killed_at = now_ns()
    if victim == "bus":  # health travels over the bus: reconnect to see it again
        pipeline.sub.close()
        pipeline.sub = Subscriber(pipeline.endpoint, ["system.health"])
    health, _ = wait_for(
        pipeline, lambda h: node(h, victim).restarts == 1 and node(h, victim).alive, 10)
    restarted = node(health, victim)
    assert restarted.pid != old_pid and "SIGKILL" in restarted.last_error
    restart_delay_s = (health.t_capture - killed_at) / 1e9 - restarted.uptime_s
    assert restart_delay_s >= ManagerConfig().restart_backoff_s - 0.05, restart_delay_s
    assert {n.name: n.pid for n in health.nodes if n.name != victim} == others
    assert all(n.alive for n in health.nodes)
    with Subscriber(pipeline.endpoint, ["video."]) as sub:
        got = sub.recv(5.0)
        assert got is not None and got.msg.valid  # frames flow again


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_leaves_no_processes_and_no_socket_files(start_pipeline, sig):
    pipeline = start_pipeline(*SYNTHETIC)
    pids = [n.pid for n in pipeline.wait_healthy().nodes]
    runtime = pipeline.runtime
    assert len(os.listdir(runtime)) == 1  # the run dir with its ipc sockets
    assert pipeline.stop(sig, timeout_s=15) == 0
    assert not [pid for pid in pids if pid_alive(pid)]
    assert os.listdir(runtime) == []


def test_killed_manager_takes_its_nodes_with_it(start_pipeline):
    pipeline = start_pipeline(*SYNTHETIC)
    pids = [n.pid for n in pipeline.wait_healthy().nodes]
    pipeline.proc.kill()
    pipeline.proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    assert not [pid for pid in pids if pid_alive(pid)]


def test_duration_runs_then_exits_zero(start_pipeline):
    start = time.monotonic()
    pipeline = start_pipeline(*SYNTHETIC, "--duration", "3")
    assert pipeline.proc.wait(20) == 0
    assert time.monotonic() - start >= 3.0  # and it ended by itself, within wait()'s time


def test_file_source_end_stops_the_run(start_pipeline, clip_video_only):
    pipeline = start_pipeline("--source", str(clip_video_only), "--set", "manager.drain_s=0.5")
    assert pipeline.proc.wait(20) == 0  # the 2 s clip ends, the run ends
    assert "all sources finished" in pipeline.output()


def test_malformed_input_does_not_crash_a_node_and_shows_in_health(start_pipeline):
    from moodwire.pipeline.core.bus import Publisher

    pipeline = start_pipeline(*SYNTHETIC)
    before = pipeline.wait_healthy()
    intruder = Publisher(f"ipc://{pipeline.run_dir()}/pub.sock", "intruder")
    try:
        for _ in range(20):  # the first few may be sent before the connection is up
            intruder.send_raw([b"video.frame", b"\xc1 not msgpack"])
            time.sleep(0.05)
        health, _ = wait_for(pipeline, lambda h: "not valid msgpack" in node(h, "fusion").last_error, 10)
    finally:
        intruder.close()
    affect = node(health, "fusion")
    assert affect.alive and affect.restarts == 0 and affect.pid == node(before, "fusion").pid
    with Subscriber(pipeline.endpoint, ["affect."]) as sub:
        assert sub.recv(5.0) is not None  # still publishing


def test_a_stopped_node_is_reported_stalled_not_restarted_and_recovers(start_pipeline):
    """SIGSTOP: the process is alive but silent. Health must say so (state 'stalled', rate 0) instead of
    repeating its last rate, must not restart it, and must say 'running' again after SIGCONT."""
    from moodwire.pipeline.runtime.manager import STALLED_AFTER_S

    pipeline = start_pipeline(*SYNTHETIC)
    before, _ = wait_for(pipeline, lambda h: all(n.alive for n in h.nodes) and node(h, "fusion").rate_hz > 0, 30)
    victim = node(before, "fusion")
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        health, _ = wait_for(pipeline, lambda h: node(h, "fusion").state == "stalled", STALLED_AFTER_S + 5)
    finally:
        os.kill(victim.pid, signal.SIGCONT)
    stalled = node(health, "fusion")
    assert stalled.alive and stalled.pid == victim.pid and stalled.rate_hz == 0
    assert "no system.node report" in stalled.last_error
    health, _ = wait_for(pipeline, lambda h: node(h, "fusion").state == "running" and node(h, "fusion").rate_hz > 0, 10)
    resumed = node(health, "fusion")
    assert resumed.pid == victim.pid and resumed.restarts == 0 and resumed.last_error == ""
