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

import json
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from moodwire.pipeline.core.keys import make_keys
from moodwire.tools.harness.launch import moodwire_command

pytestmark = pytest.mark.slow

SERVER_IP, ROBOT_IP = "10.231.0.1", "10.231.0.2"
PUBLIC, INGEST = f"tcp://{SERVER_IP}:5560", f"tcp://{SERVER_IP}:5561"
ROBOT_AHEAD_S = 36_000  # the robot's monotonic clock, ahead of the server's
CUT_S = 5.0


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def namespaces_unavailable() -> str:
    """Why two network namespaces with a time-shifted one cannot be made here, or ""."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs the ip and unshare commands (iproute2, util-linux)"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"mwprobe{os.getpid()}"
    made = _run("ip", "netns", "add", probe)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    try:
        shifted = _run("ip", "netns", "exec", probe, "unshare", "--time", "--monotonic", "3600", "true")
        if shifted.returncode != 0:
            return f"time namespaces (unshare --time --monotonic) failed: {shifted.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe)
    return ""


@dataclass
class Listener:
    """``moodwire listen PREFIX --json`` as a process; every line it prints, parsed, as it arrives."""

    proc: subprocess.Popen
    lines: list[dict] = field(default_factory=list)

    @classmethod
    def start(cls, command: list[str], env: dict) -> "Listener":
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                start_new_session=True)
        listener = cls(proc)
        threading.Thread(target=listener._read, daemon=True).start()
        return listener

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def since(self, index: int, topic: str) -> list[dict]:
        return [m for m in self.lines[index:] if m["topic"] == topic]

    def wait_for(self, what: str, found: Callable[[dict], bool], timeout_s: float, start: int = 0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hit = next((m for m in self.lines[start:] if found(m)), None)
            if hit is not None:
                return hit
            time.sleep(0.2)
        raise AssertionError(f"no {what} within {timeout_s} s; last: {self.lines[-1:]}")


@dataclass
class TwoHosts:
    server_ns: str
    robot_ns: str
    robot_link: str
    keys: Path
    env: dict
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    stream: Listener | None = None  # affect.* and audio.chunk, read on the server's side
    health: Listener | None = None  # system.health

    def spawn(self, ns: str, args: list[str], log: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        env = dict(self.env, XDG_RUNTIME_DIR=str(self.logs / f"{log}-runtime"))
        Path(env["XDG_RUNTIME_DIR"]).mkdir(exist_ok=True)
        with (self.logs / f"{log}.log").open("w") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, *prefix, *moodwire_command(), *args], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        self.processes.append(proc)
        return proc

    def listen(self, ns: str, prefix: str, key: str = "tester", duration: float | None = None) -> Listener:
        keys = ["--server-key", str(self.keys / "server.key"), "--client-key", str(self.keys / f"{key}.key_secret")]
        limit = ["--duration", str(duration)] if duration else []
        return Listener.start(["ip", "netns", "exec", ns, *moodwire_command(), "listen", prefix, "--json",
                               "--endpoint", PUBLIC, *(keys if key else []), *limit], self.env)

    def output(self, log: str) -> str:
        return (self.logs / f"{log}.log").read_text(errors="replace")[-3000:]

    def latest_health(self, start: int = 0) -> dict:
        return self.health.wait_for("system.health", lambda m: True, 10, start=max(start, len(self.health.lines) - 1))


def node(health: dict, host: str, name: str) -> dict:
    return next(n for n in health["nodes"] if n["host"] == host and n["name"] == name)


def host_entry(health: dict, name: str) -> dict:
    return next(h for h in health["hosts"] if h["name"] == name)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, session_cache) -> Iterator[TwoHosts]:
    reason = namespaces_unavailable()
    if reason:
        pytest.skip(reason)
    tag = f"mw{os.getpid() % 100000}"
    server_ns, robot_ns, server_link, robot_link = f"{tag}-server", f"{tag}-robot", f"{tag}s", f"{tag}r"
    setup = [["ip", "netns", "add", server_ns], ["ip", "netns", "add", robot_ns],
             ["ip", "link", "add", server_link, "type", "veth", "peer", "name", robot_link],
             ["ip", "link", "set", server_link, "netns", server_ns], ["ip", "link", "set", robot_link, "netns", robot_ns],
             ["ip", "-n", server_ns, "addr", "add", f"{SERVER_IP}/24", "dev", server_link],
             ["ip", "-n", robot_ns, "addr", "add", f"{ROBOT_IP}/24", "dev", robot_link]]
    for ns, link in ((server_ns, server_link), (robot_ns, robot_link)):
        setup += [["ip", "-n", ns, "link", "set", "lo", "up"], ["ip", "-n", ns, "link", "set", link, "up"]]
    folder = tmp_path_factory.mktemp("two-hosts")
    keys = folder / "keys"
    for client in ("robot", "tester"):
        make_keys(keys, client=client)
    make_keys(folder / "other-keys", client="stranger")  # a keypair the server does not list
    shutil.copy(folder / "other-keys" / "stranger.key_secret", keys / "stranger.key_secret")
    env = dict(os.environ, XDG_CACHE_HOME=str(session_cache), PYTHONUNBUFFERED="1")
    two = TwoHosts(server_ns, robot_ns, robot_link, keys, env, folder)
    try:
        for cmd in setup:
            subprocess.run(cmd, check=True, capture_output=True)
        two.health = two.listen(server_ns, "system.health")
        two.stream = two.listen(server_ns, "a")  # affect.frame, affect.utterance, audio.chunk
        two.spawn(server_ns, ["run", "--quiet", "--nodes", "bus,face,vad,voice,fusion", "--set", "nodes.asr=false",
                              "--set", "nodes.text=false", "--set", f"bus.public={PUBLIC}", "--set",
                              f"bus.ingest={INGEST}", "--set", f"bus.curve_server_secret={keys / 'server.key_secret'}",
                              "--set", f"bus.curve_clients={keys / 'clients'}", "--set", "bus.host=server"], "server")
        two.spawn(robot_ns, ["run", "--quiet", "--nodes", "video_source,audio_source", "--bus", PUBLIC,
                             "--server-key", str(keys / "server.key"), "--client-key", str(keys / "robot.key_secret"),
                             "--set", "bus.host=robot", "--set", "sources.video=sample", "--set",
                             "sources.audio=sample"], "robot",
                  prefix=("unshare", "--time", "--monotonic", str(ROBOT_AHEAD_S)))
        yield two
    finally:
        for proc in [*two.processes, *(lst.proc for lst in (two.stream, two.health) if lst)]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in [*two.processes, *(lst.proc for lst in (two.stream, two.health) if lst)]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for ns in (server_ns, robot_ns):
            _run("ip", "netns", "del", ns)


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
    plain = hosts.listen(hosts.robot_ns, "", key="", duration=4)
    stranger = hosts.listen(hosts.robot_ns, "", key="stranger", duration=4)
    tester = hosts.listen(hosts.robot_ns, "affect.", duration=4)
    for listener in (plain, stranger, tester):
        listener.proc.wait(30)
    assert plain.lines == [] and stranger.lines == []
    assert tester.lines, "a client with an allowed key, on the robot's side, gets the stream"


def test_a_cut_link_is_reported_and_the_robot_reconnects_without_a_restart(hosts):
    before = hosts.latest_health()
    pids = {name: node(before, "robot", name)["pid"] for name in ("video_source", "audio_source")}
    cut_at = len(hosts.stream.lines), len(hosts.health.lines)
    subprocess.run(["ip", "-n", hosts.robot_ns, "link", "set", hosts.robot_link, "down"], check=True)
    try:
        time.sleep(CUT_S)
        during = hosts.latest_health(cut_at[1])
    finally:
        subprocess.run(["ip", "-n", hosts.robot_ns, "link", "set", hosts.robot_link, "up"], check=True)
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
