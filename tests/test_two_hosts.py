"""A robot and a server as two hosts: two network namespaces joined by a veth pair, the robot's
monotonic clock 10 hours ahead of the server's (a time namespace), CURVE on every link.

The server runs the bus and the models (``moodwire run --nodes bus,face,vad,voice,fusion`` with
``bus.ingest``); the robot runs only the sample clip's camera and microphone (``moodwire run --nodes
video_source,audio_source --bus tcp://SERVER:5560``). Listeners on the server's side read the stream
as any client would (``moodwire listen`` with a client key). The tests run in order on one pair of
hosts: the stream flows on the server's clock; a client without keys gets nothing; a 5 s cut of the
link is reported and survived without restarts; the server's face node is restarted after a kill.
Where namespaces cannot be made (not root, no ``ip``), they skip and say why.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import time
from typing import Iterator

import pytest

from moodwire.pipeline.core.keys import make_keys
from moodwire.tools.harness.netns import (ROBOT_AHEAD_S, Deployment, TwoHosts, host_entry, namespaces_unavailable,
                                          node)

pytestmark = pytest.mark.slow

CUT_S = 5.0


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, session_cache) -> Iterator[Deployment]:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("two-hosts")
    make_keys(folder / "other-keys", client="stranger")  # a keypair the server does not list
    (folder / "keys").mkdir(mode=0o700)
    shutil.copy(folder / "other-keys" / "stranger.key_secret", folder / "keys" / "stranger.key_secret")
    two = TwoHosts.make()
    run = None
    try:
        run = Deployment.start(two, folder, dict(os.environ, XDG_CACHE_HOME=str(session_cache)))
        yield run
    finally:
        if run is not None:
            run.stop()
        two.remove()


def test_frames_and_audio_from_the_robot_are_fused_on_the_servers_clock(hosts):
    seen = hosts.stream.wait_for("affect.frame with a face from the robot's camera",
                                 lambda m: m["topic"] == "affect.frame" and m["valid"] and m["persons"], 180)
    start = hosts.stream.lines.index(seen)
    time.sleep(3)
    frames = [m for m in hosts.stream.since(start, "affect.frame") if m["frame_index"] >= 0]
    chunks = hosts.stream.since(start, "audio.chunk")
    assert len(frames) >= 30 and len(chunks) >= 50, (len(frames), len(chunks))
    # capture (robot, put on the server's clock) to affect.frame (server): a real latency, not 10 hours
    latency_ms = statistics.median(f["latency_ms"] for f in frames)
    assert 0 < latency_ms < 1000, latency_ms
    audio_age_s = statistics.median((c["t_receive"] - c["t_capture"]) / 1e9 for c in chunks)
    assert 0 < audio_age_s < 2, audio_age_s
    health = hosts.latest_health()
    robot = host_entry(health, "robot")
    assert robot["reachable"] and not robot["bus"]
    assert robot["clock_offset_ms"] / 1000 == pytest.approx(-ROBOT_AHEAD_S, abs=1.0), robot
    assert 0 < robot["clock_uncertainty_ms"] < 100, robot
    for name in ("video_source", "audio_source"):
        assert node(health, "robot", name)["state"] == "running", health
    assert {n["name"] for n in health["nodes"] if n["host"] == "server"} == {"bus", "face", "vad", "voice", "fusion"}


def test_a_client_without_the_keys_gets_nothing(hosts):
    hosts.stream.wait_for("affect.frame", lambda m: m["topic"] == "affect.frame", 180)
    plain = hosts.listen("robot", "", key="", duration=4)
    stranger = hosts.listen("robot", "", key="stranger", duration=4)
    tester = hosts.listen("robot", "affect.", duration=4)
    for listener in (plain, stranger, tester):
        listener.proc.wait(30)
    assert plain.lines == [] and stranger.lines == []
    assert tester.lines, "a client with an allowed key, on the robot's side, gets the stream"


def test_a_cut_link_is_reported_and_the_robot_reconnects_without_a_restart(hosts):
    before = hosts.latest_health()
    pids = {name: node(before, "robot", name)["pid"] for name in ("video_source", "audio_source")}
    cut_at = len(hosts.stream.lines), len(hosts.health.lines)
    hosts.hosts.link(up=False)
    try:
        time.sleep(CUT_S)
        during = hosts.latest_health(cut_at[1])
    finally:
        hosts.hosts.link(up=True)
    assert not host_entry(during, "robot")["reachable"], during
    assert node(during, "robot", "video_source")["state"] == "unreachable"
    assert node(during, "server", "fusion")["state"] == "running"
    stand_ins = [f for f in hosts.stream.since(cut_at[0], "affect.frame") if f["frame_index"] == -1]
    assert len(stand_ins) >= 5, "fusion kept publishing through the cut"
    assert "video_source is unreachable" in stand_ins[-1]["notes"]["face"] and "face" in stand_ins[-1]["missing"]
    back_at = len(hosts.stream.lines)
    hosts.stream.wait_for("affect.frame with a face after the link returned",
                          lambda m: m["topic"] == "affect.frame" and m["frame_index"] >= 0 and m["persons"], 60,
                          start=back_at)
    after = hosts.health.wait_for("the robot reachable again", lambda m: host_entry(m, "robot")["reachable"]
                                  and node(m, "robot", "video_source")["state"] == "running", 30,
                                  start=len(hosts.health.lines))
    for name, pid in pids.items():
        entry = node(after, "robot", name)
        assert (entry["pid"], entry["restarts"]) == (pid, 0), entry


def test_killing_the_servers_face_node_is_recovered(hosts):
    face = node(hosts.latest_health(), "server", "face")
    os.kill(face["pid"], signal.SIGKILL)  # the namespaces share this machine's process ids
    mark = len(hosts.health.lines)
    hosts.health.wait_for("face restarted", lambda m: node(m, "server", "face")["restarts"] >= 1
                          and node(m, "server", "face")["state"] == "running", 60, start=mark)
    hosts.stream.wait_for("affect.frame with a face again", lambda m: m["topic"] == "affect.frame"
                          and m["persons"] and m["frame_index"] >= 0, 60, start=len(hosts.stream.lines))
