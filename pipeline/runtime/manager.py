"""The process manager: starts the enabled nodes, restarts crashed ones, stops all cleanly.

Each node runs as ``python -m moodwire.pipeline.runtime.node_main NAME RUN_DIR`` in its own
session (so a terminal's Ctrl-C reaches only the manager, which then stops the
nodes in order). A node that exits non-zero or by a signal is restarted after
a backoff that doubles per quick crash; a source that exits 0 has reached the
end of its file and is left finished. Before any node starts, the prepare step
(prepare.py) exports the models they load that the cache lacks. ``system.health`` is published at
``manager.health_hz`` from the process states and each node's ``system.node``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from moodwire.pipeline.core.bus import BusEndpoints, Publisher, Received, Subscriber, this_host
from moodwire.pipeline.core.clock import OffsetFile, now_ns
from moodwire.pipeline.core.config import Config, ManagerConfig
from moodwire.pipeline.core.keys import joining_curve, server_curve
from moodwire.pipeline.core.messages import ClockProbe, HostHealth, NodeHealth, NodeStats, SystemHealth
from moodwire.pipeline.core.paths import new_run_dir
from moodwire.pipeline.runtime.clock_sync import ClockFollower, answer
from moodwire.pipeline.runtime.hosts import JoinedHosts
from moodwire.pipeline.runtime.node_main import RUN_FILE
from moodwire.pipeline.runtime.prepare import prepare
from moodwire.pipeline.runtime.process_table import NodeSpec, enabled_nodes

START_DELAY_NS = 300_000_000  # t0 lies a little ahead so every source starts on the same timeline
POLL_S = 0.05
# A node reports ``system.node`` about once a second whenever its loop turns; a live process silent for this
# long is stuck (stopped, deadlocked, or a step blocking). Four periods, so a slow decode is not flagged.
STALLED_AFTER_S = 4.0
CLOCK_FILE = "clock.offset"
JOIN_PROBE_S = 0.2  # probe period while waiting for the bus host's first reply
JOIN_REMIND_S = 5.0


def next_backoff(previous_s: float, uptime_s: float, cfg: ManagerConfig) -> float:
    """Delay before restarting a node that crashed after ``uptime_s``: doubles while it keeps crashing fast."""
    if previous_s and uptime_s < cfg.stable_after_s:
        return min(cfg.restart_backoff_max_s, previous_s * 2)
    return cfg.restart_backoff_s


@dataclass
class NodeProcess:
    """Supervision state of one node."""

    spec: NodeSpec
    popen: subprocess.Popen | None = None
    state: str = "starting"  # running | backoff | finished | stopped
    restarts: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0
    backoff_s: float = 0.0
    last_error: str = ""
    reported_at: float = 0.0  # monotonic time of the current process's latest system.node; 0: none yet
    stderr_tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=20))

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class Manager:
    """Supervises this host's nodes. On the bus host (no ``bus.join``) it also answers the joined hosts'
    clock probes and merges their reports into ``system.health``; on a joined host it first puts the
    host on the bus host's clock (pipeline/runtime/clock_sync.py), then reports as ``system.host``."""

    def __init__(self, config: Config, notes: list[str] | None = None, log: IO[str] | None = None) -> None:
        self.joined = bool(config.bus.join)
        # keys missing or bad (a public or ingest endpoint off loopback without CURVE; a joined host without
        # its keys): refused before anything starts
        self.curve = joining_curve(config.bus) if self.joined else None
        if not self.joined:
            server_curve(config.bus)
        self.config = config
        self.host = this_host(config.bus)
        self.notes = list(notes or [])
        self.log = log or sys.stderr
        self.nodes = {spec.name: NodeProcess(spec) for spec in enabled_nodes(config)}
        self.run_dir = new_run_dir()
        self.endpoints = (BusEndpoints.joining(config.bus) if self.joined
                          else BusEndpoints.in_dir(str(self.run_dir), config.bus.public, config.bus.ingest))
        self.stopping = threading.Event()
        self._stats: dict[str, NodeStats] = {}
        self._pub: Publisher | None = None
        self._sub: Subscriber | None = None
        self.clock: ClockFollower | None = None
        self.joined_hosts = JoinedHosts(config.manager.host_timeout_s)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        prepare(self.config)  # exports what the nodes will load, if missing: nodes never export
        run = {"config": self.config.to_dict(), "endpoints": dataclasses.asdict(self.endpoints),
               "manager_pid": os.getpid(), "host": self.host}
        if self.joined:
            self._connect()  # before the nodes: they must start on the bus host's clock
            run["clock_file"] = str(self.clock.offset_file.path)
            if not self._wait_for_clock():
                return
        run["t0_ns"] = self._now_ns() + START_DELAY_NS
        (self.run_dir / RUN_FILE).write_text(json.dumps(run))
        for proc in self.nodes.values():
            self._spawn(proc)
        if not self.joined:
            self._connect()

    def _connect(self) -> None:
        topics = ["system.node", "system.clock"] + ([] if self.joined else ["system.host"])
        self._pub = Publisher(self.endpoints.internal_pub, "manager", hwm=self.config.bus.hwm, curve=self.curve)
        self._sub = Subscriber(self.endpoints.internal_sub, topics, hwm=self.config.bus.hwm, curve=self.curve)
        if self.joined:
            self.clock = ClockFollower(self.host, OffsetFile(self.run_dir / CLOCK_FILE, create=True))

    def _wait_for_clock(self) -> bool:
        """Probe the bus host until it answers (it may start later: a robot often boots first); False if
        stopped first. Says every few seconds what it waits for, with the CURVE handshake's complaint."""
        started = next_remind = time.monotonic()
        while not self.stopping.is_set():
            self._pub.send("system.clock", self.clock.probe())
            if self.stopping.wait(JOIN_PROBE_S):
                break
            self._collect_stats()
            if self.clock.synced:
                est = self.clock.estimate()
                print(f"moodwire: joined the bus at {self.config.bus.join} as host {self.host}; clock offset "
                      f"{est.offset_ns / 1e9:+.6f} s ± {est.uncertainty_ns / 1e6:.2f} ms", file=self.log)
                return True
            if time.monotonic() >= next_remind:
                why = self._sub.handshake_error or "no reply yet: is `moodwire run` with bus.ingest running there?"
                print(f"moodwire: waiting {time.monotonic() - started:.0f} s for the bus host at "
                      f"{self.config.bus.join} (ingest {self.endpoints.internal_pub}): {why}", file=self.log)
                next_remind += JOIN_REMIND_S
        return False

    def _now_ns(self) -> int:
        """Now on the pipeline's clock: the bus host's."""
        return self.clock.bus_ns() if self.clock is not None else now_ns()

    def run(self, duration_s: float | None = None) -> int:
        """Run until stopped, ``duration_s`` passes, or every file source has finished."""
        try:
            self.start()  # inside: a failed prepare step still removes the run dir
            deadline = None if duration_s is None else time.monotonic() + duration_s
            next_health = next_probe = time.monotonic()
            sources_done_at: float | None = None
            while not self.stopping.wait(POLL_S):
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                self.supervise(now)
                self._collect_stats()
                if now >= next_health:
                    self.publish_health()
                    next_health = now + 1.0 / self.config.manager.health_hz
                if self.clock is not None and now >= next_probe:
                    self._pub.send("system.clock", self.clock.probe())
                    next_probe = now + self.config.manager.clock_probe_s
                if sources_done_at is None and self._sources_finished():
                    sources_done_at = now
                    print("moodwire: all sources finished; stopping", file=self.log)
                if sources_done_at is not None and now - sources_done_at >= self.config.manager.drain_s:
                    break
        finally:
            self.stop()
        return 0

    def stop(self) -> None:
        """SIGINT to every node (the bus last), SIGKILL after the grace period; remove the run dir."""
        self.stopping.set()
        if self._sub:
            self._sub.close()
        if self._pub:
            self._pub.close()
        others = [p for p in self.nodes.values() if p.spec.name != "bus"]
        self._terminate(others)
        self._terminate([p for p in self.nodes.values() if p.spec.name == "bus"])
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # ------------------------------------------------------------ supervision

    def supervise(self, now: float) -> None:
        for proc in self.nodes.values():
            if proc.state == "running" and not proc.alive:
                self._on_exit(proc, now)
            elif proc.state == "backoff" and now >= proc.restart_at:
                proc.restarts += 1
                self._spawn(proc)

    def _on_exit(self, proc: NodeProcess, now: float) -> None:
        code = proc.popen.returncode
        if code == 0 and proc.spec.is_source:
            proc.state = "finished"
            return
        cause = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        tail = next((line for line in reversed(proc.stderr_tail) if line.strip()), "")
        proc.last_error = f"{cause}: {tail}" if tail and code > 0 else cause
        proc.backoff_s = next_backoff(proc.backoff_s, now - proc.started_at, self.config.manager)
        proc.restart_at = now + proc.backoff_s
        proc.state = "backoff"
        print(f"moodwire: node {proc.spec.name} {proc.last_error}; restarting in {proc.backoff_s:.1f} s",
              file=self.log)

    def _spawn(self, proc: NodeProcess) -> None:
        proc.popen = subprocess.Popen(
            [sys.executable, "-m", "moodwire.pipeline.runtime.node_main", proc.spec.name, str(self.run_dir)],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace",
            start_new_session=True,
        )
        proc.state, proc.started_at, proc.reported_at = "running", time.monotonic(), 0.0
        threading.Thread(target=self._pump_stderr, args=(proc, proc.popen.stderr), daemon=True).start()

    def _pump_stderr(self, proc: NodeProcess, stream: IO[str]) -> None:
        """Forward a node's stderr, prefixed, and keep its tail for ``last_error``."""
        for line in stream:
            proc.stderr_tail.append(line.rstrip())
            self.log.write(f"[{proc.spec.name}] {line}")
        stream.close()

    def _terminate(self, procs: list[NodeProcess]) -> None:
        live = [p for p in procs if p.alive]
        for proc in live:
            proc.popen.send_signal(signal.SIGINT)
        deadline = time.monotonic() + self.config.manager.grace_s
        for proc in live:
            try:
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
                print(f"moodwire: node {proc.spec.name} ignored SIGINT for "
                      f"{self.config.manager.grace_s} s; killed", file=self.log)
        for proc in procs:
            if proc.state in ("running", "backoff"):
                proc.state = "stopped"

    def _sources_finished(self) -> bool:
        sources = [p for p in self.nodes.values() if p.spec.is_source]
        return bool(sources) and all(p.state == "finished" for p in sources)

    # ------------------------------------------------------------ health

    def _collect_stats(self) -> None:
        while self._sub and (got := self._sub.recv(timeout=0)) is not None:
            if isinstance(got.msg, NodeStats):
                self._on_stats(got.msg)
            elif isinstance(got.msg, ClockProbe):
                self._on_clock(got)
            elif isinstance(got.msg, SystemHealth) and got.topic == "system.host" and got.msg.host != self.host:
                self.joined_hosts.on_report(got.msg, time.monotonic())

    def _on_stats(self, stats: NodeStats) -> None:
        if stats.host not in ("", self.host):
            return  # another host's node: its own manager supervises it
        self._stats[stats.name] = stats
        proc = self.nodes.get(stats.name)
        if proc is not None and proc.popen is not None and proc.popen.pid == stats.pid:
            proc.reported_at = time.monotonic()

    def _on_clock(self, got: Received) -> None:
        if self.clock is not None:
            self.clock.on_reply(got.msg, got.t_receive)
        elif not got.msg.reply:
            self._pub.send("system.clock", answer(got.msg, got.t_receive, now_ns()))

    def health(self) -> SystemHealth:
        now = time.monotonic()
        nodes = [self._node_health(name, proc, now) for name, proc in self.nodes.items()]
        hosts = [self._own_host()]
        if not self.joined:
            nodes += self.joined_hosts.nodes(now)
            hosts += self.joined_hosts.hosts(now)
        return SystemHealth(nodes=nodes, notes=self.notes, t_capture=self._now_ns(), host=self.host, hosts=hosts)

    def _own_host(self) -> HostHealth:
        if self.clock is None:
            return HostHealth(name=self.host, bus=True, reachable=True)
        est = self.clock.estimate()
        return HostHealth(name=self.host, bus=False, reachable=True, clock_offset_ms=est.offset_ns / 1e6,
                          clock_uncertainty_ms=est.uncertainty_ns / 1e6)

    def _node_health(self, name: str, proc: NodeProcess, now: float) -> NodeHealth:
        """One node's entry: a live process silent for STALLED_AFTER_S is 'stalled' with rate 0; the
        error is the cause of its last exit, then what its current process reported itself."""
        stats = self._stats.get(name)
        fresh = stats is not None and stats.pid == (proc.popen.pid if proc.popen else -1)
        silent_s = now - proc.reported_at if proc.reported_at and proc.alive else 0.0
        stalled = silent_s > STALLED_AFTER_S
        error = "; then: ".join(filter(None, [proc.last_error, stats.last_error if fresh else ""]))
        return NodeHealth(
            name=name, alive=proc.alive, pid=proc.popen.pid if proc.popen else 0,
            restarts=proc.restarts, uptime_s=now - proc.started_at if proc.alive else 0.0,
            rate_hz=sum(stats.rates_hz.values()) if fresh and not stalled else 0.0,
            outputs=list(proc.spec.outputs), state="stalled" if stalled else proc.state, host=self.host,
            stream=self.config.sources.stream if proc.spec.is_source else "",
            last_error=f"stalled: no system.node report for {silent_s:.1f} s" if stalled else error,
        )

    def publish_health(self) -> None:
        if self._pub:
            self._pub.send("system.host" if self.joined else "system.health", self.health())
