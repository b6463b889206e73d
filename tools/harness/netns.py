"""Two hosts on one machine: network namespaces joined by a veth pair, one with a shifted monotonic clock.

``TwoHosts`` makes a "server" and a "robot" namespace (``ip netns``, as root), each with loopback up
and one end of a veth pair addressed ``SERVER_IP`` / ``ROBOT_IP``; ``command`` runs a command in one
of them, on the robot in a time namespace whose CLOCK_MONOTONIC is ``ROBOT_AHEAD_S`` ahead
(``unshare --time --monotonic``), so the two hosts' clocks differ as two machines' do. Used by
tests/test_two_hosts.py and tools/bench_hosts.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from moodwire.tools.harness.launch import moodwire_command

SERVER_IP, ROBOT_IP = "10.231.0.1", "10.231.0.2"
ROBOT_AHEAD_S = 36_000  # 10 hours


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def namespaces_unavailable() -> str:
    """Why two network namespaces, one with a shifted clock, cannot be made here; "" when they can."""
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


@dataclass(frozen=True)
class TwoHosts:
    """The two namespaces' names and the robot's end of the link (cut it with ``link(False)``)."""

    server: str
    robot: str
    robot_link: str

    @classmethod
    def make(cls, tag: str | None = None) -> "TwoHosts":
        tag = tag or f"mw{os.getpid() % 100000}"
        hosts = cls(f"{tag}-server", f"{tag}-robot", f"{tag}r")
        server_link = f"{tag}s"
        steps = [["ip", "netns", "add", hosts.server], ["ip", "netns", "add", hosts.robot],
                 ["ip", "link", "add", server_link, "type", "veth", "peer", "name", hosts.robot_link],
                 ["ip", "link", "set", server_link, "netns", hosts.server],
                 ["ip", "link", "set", hosts.robot_link, "netns", hosts.robot],
                 ["ip", "-n", hosts.server, "addr", "add", f"{SERVER_IP}/24", "dev", server_link],
                 ["ip", "-n", hosts.robot, "addr", "add", f"{ROBOT_IP}/24", "dev", hosts.robot_link]]
        for ns, link in ((hosts.server, server_link), (hosts.robot, hosts.robot_link)):
            steps += [["ip", "-n", ns, "link", "set", "lo", "up"], ["ip", "-n", ns, "link", "set", link, "up"]]
        try:
            for step in steps:
                subprocess.run(step, check=True, capture_output=True)
        except subprocess.CalledProcessError:
            hosts.remove()
            raise
        return hosts

    def command(self, side: str, args: list[str]) -> list[str]:
        """``args`` run on ``side`` ("server" or "robot"); the robot's clock is ``ROBOT_AHEAD_S`` ahead."""
        if side == "robot":
            return ["ip", "netns", "exec", self.robot, "unshare", "--time", "--monotonic", str(ROBOT_AHEAD_S), *args]
        return ["ip", "netns", "exec", self.server, *args]

    def link(self, up: bool) -> None:
        subprocess.run(["ip", "-n", self.robot, "link", "set", self.robot_link, "up" if up else "down"], check=True)

    def robot_bytes_sent(self) -> int:
        """Bytes the robot has sent over the link (its veth's counter)."""
        text = _run("ip", "netns", "exec", self.robot, "cat", f"/sys/class/net/{self.robot_link}/statistics/tx_bytes")
        return int(text.stdout.strip())

    def remove(self) -> None:
        for ns in (self.server, self.robot):
            _run("ip", "netns", "del", ns)  # takes its end of the veth pair, and so the pair, with it


# ------------------------------------------------------------------ moodwire on the two hosts

PUBLIC, INGEST = f"tcp://{SERVER_IP}:5560", f"tcp://{SERVER_IP}:5561"
SERVER_NODES = "bus,face,vad,voice,fusion"  # ASR and text left out: the slowest nodes add nothing to the links
ROBOT_NODES = "video_source,audio_source"


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
class Deployment:
    """A server (bus + models) and a robot (the sample clip's camera and microphone) on ``hosts``, CURVE on
    every link, keys in ``folder / "keys"`` (clients: robot, tester), logs in ``folder``. ``stream``
    (affect.* and audio.chunk) and ``health`` (system.health) are read on the server's side by a client
    with the tester key, started before the pipeline so that they miss nothing."""

    hosts: TwoHosts
    folder: Path
    env: dict
    processes: list[subprocess.Popen] = field(default_factory=list)
    stream: Listener | None = None
    health: Listener | None = None

    @property
    def keys(self) -> Path:
        return self.folder / "keys"

    @classmethod
    def start(cls, hosts: TwoHosts, folder: Path, env: dict, one_host: bool = False) -> "Deployment":
        """Server and robot; or, with ``one_host``, the same nodes all on the server, as a baseline."""
        from moodwire.pipeline.core.keys import make_keys

        for client in ("robot", "tester"):
            make_keys(folder / "keys", client=client)
        run = cls(hosts, folder, dict(env, PYTHONUNBUFFERED="1"))
        run.health = run.listen("server", "system.health")
        run.stream = run.listen("server", "a")  # affect.frame, affect.utterance, audio.chunk
        keys = run.keys
        sources = ["--set", "sources.video=sample", "--set", "sources.audio=sample"]
        nodes = f"{SERVER_NODES},{ROBOT_NODES}" if one_host else SERVER_NODES
        run.spawn("server", ["run", "--quiet", "--nodes", nodes, "--set", "nodes.asr=false", "--set",
                             "nodes.text=false", "--set", f"bus.public={PUBLIC}", "--set", f"bus.ingest={INGEST}",
                             "--set", f"bus.curve_server_secret={keys / 'server.key_secret'}",
                             "--set", f"bus.curve_clients={keys / 'clients'}", "--set", "bus.host=server",
                             *(sources if one_host else [])])
        if not one_host:
            run.spawn("robot", ["run", "--quiet", "--nodes", ROBOT_NODES, "--bus", PUBLIC, "--server-key",
                                str(keys / "server.key"), "--client-key", str(keys / "robot.key_secret"),
                                "--set", "bus.host=robot", *sources])
        return run

    def spawn(self, side: str, args: list[str]) -> subprocess.Popen:
        env = dict(self.env, XDG_RUNTIME_DIR=str(self.folder / f"{side}-runtime"))
        Path(env["XDG_RUNTIME_DIR"]).mkdir(exist_ok=True)
        with (self.folder / f"{side}.log").open("w") as out:
            proc = subprocess.Popen(self.hosts.command(side, [*moodwire_command(), *args]), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        self.processes.append(proc)
        return proc

    def listen(self, side: str, prefix: str, key: str = "tester", duration: float | None = None) -> Listener:
        """``moodwire listen`` on ``side`` with the client key ``key`` ("" none; any NAME.key_secret in keys)."""
        keys = ["--server-key", str(self.keys / "server.key"), "--client-key", str(self.keys / f"{key}.key_secret")]
        limit = ["--duration", str(duration)] if duration else []
        command = [*moodwire_command(), "listen", prefix, "--json", "--endpoint", PUBLIC, *(keys if key else []),
                   *limit]
        return Listener.start(["ip", "netns", "exec", getattr(self.hosts, side), *command], self.env)

    def latest_health(self, start: int = 0) -> dict:
        return self.health.wait_for("system.health", lambda m: True, 10, start=max(start, len(self.health.lines) - 1))

    def output(self, side: str) -> str:
        return (self.folder / f"{side}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Ctrl-C to every process group (the robot's runs under ``unshare``), SIGKILL after 15 s."""
        procs = [*self.processes, *(lst.proc for lst in (self.stream, self.health) if lst)]
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def node(health: dict, host: str, name: str) -> dict:
    """A node's entry in a ``system.health`` (as JSON)."""
    return next(n for n in health["nodes"] if n["host"] == host and n["name"] == name)


def host_entry(health: dict, name: str) -> dict:
    return next(h for h in health["hosts"] if h["name"] == name)
