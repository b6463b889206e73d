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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from moodwire.pipeline.core.bus import BusEndpoints, Publisher, Received, Subscriber, this_host
from moodwire.pipeline.core.clock import OffsetFile, now_ns
from moodwire.pipeline.core.config import Config, ManagerConfig
from moodwire.pipeline.core.keys import joining_curve, server_curve
from moodwire.pipeline.core.flow import END, LOSSLESS_HWM, PROGRESS_TOPIC
from moodwire.pipeline.core.messages import ClockProbe, HostHealth, NodeHealth, NodeStats, Progress, SystemHealth
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
FILE_CRASH_LIMIT = 3  # a node that crashes this often in a run over a file is in a crash loop: the run fails


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
    state: str = "starting"  # starting (until it is ready: models loaded, subscribed) | running | backoff | finished
    # | stopped
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
        self.lossless = config.sources.pace == "lossless"
        if self.lossless:  # back-pressure bounds what is in flight; ZeroMQ must drop nothing (pipeline/core/flow.py)
            config = dataclasses.replace(config, bus=dataclasses.replace(config.bus, hwm=LOSSLESS_HWM))
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
        self.failure = ""  # why the run failed (exit 1): a node's crash in lossless mode, a crash loop on a file
        self.run_id = uuid.uuid4().hex[:12]  # in system.health: clients learn that a new run has started
        self.ended: set[str] = set()  # nodes that have said END (pipeline/core/flow.py)
        self.last_progress = 0.0  # monotonic time of the newest watermark from any node
        self.t0_ns = 0
        sources = [p for p in self.nodes.values() if p.spec.is_source]
        self.starts_timeline = (not self.lossless and bool(sources)
                                and "file" in (config.sources.video, config.sources.audio))
        self.waiting: set[str] = set()  # sources ready to start the timeline
        self._run_file: dict = {}

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
        # a file in real time starts its timeline only once every node is ready (_start_timeline); 0 says so
        self.t0_ns = 0 if self.starts_timeline else self._start_time()
        run["t0_ns"] = self.t0_ns
        self._run_file = run
        (self.run_dir / RUN_FILE).write_text(json.dumps(run))
        for proc in self.nodes.values():
            self._spawn(proc)
        if not self.joined:
            self._connect()

    def _start_time(self) -> int:
        """The timeline's t0. In real time a little ahead, so every source starts on it. In lossless mode the
        file's times lie in the past (the run goes faster than real time, and a capture time may not be
        ahead of the clock), on a whole second, so that times in milliseconds keep their differences."""
        if not self.lossless:
            return self._now_ns() + START_DELAY_NS
        from moodwire.pipeline.sources.media_file import probe_media

        back_s = int(probe_media(self.config.sources.file).duration_s) + 2
        return max(1, self._now_ns() // 1_000_000_000 - back_s) * 1_000_000_000

    def _connect(self) -> None:
        topics = ["system.node", "system.clock", PROGRESS_TOPIC] + ([] if self.joined else ["system.host"])
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

    def run(self, duration_s: float | None = None, taken: Callable[[], bool] = lambda: True) -> int:
        """Run until stopped, ``duration_s`` passes, or every file source has finished and every node has
        published what it held (``END``, pipeline/core/flow.py; in real time at most ``manager.drain_s``
        after the sources end). ``taken`` says that a consumer in this process (analyze's tables) has
        received every node's END: the bus stays up until it has, since stopping drops what is in flight.
        1 when the run failed (``failure``), else 0."""
        try:
            self.start()  # inside: a failed prepare step still removes the run dir
            deadline = None if duration_s is None else time.monotonic() + duration_s
            next_health = next_probe = time.monotonic()
            sources_done_at: float | None = None
            while not self.stopping.wait(POLL_S):
                now = time.monotonic()
                if (deadline is not None and now >= deadline) or self.failure:
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
                if sources_done_at is not None and self._drained(now, sources_done_at, taken):
                    break
        finally:
            self.stop()
        if self.failure:
            print(f"moodwire: the run failed: {self.failure}", file=self.log)
        return 1 if self.failure else 0

    def _drained(self, now: float, sources_done_at: float, taken: Callable[[], bool]) -> bool:
        """Every node has ended (and ``taken``); or, in real time, ``drain_s`` has passed; in lossless mode
        nothing has made progress for ``drain_s`` (a node or the consumer is stuck: the run fails)."""
        waiting = [p.spec.name for p in self.nodes.values()  # the bus and a sink (lsl) hold nothing back
                   if not p.spec.is_source and p.spec.outputs and p.spec.name not in self.ended]
        if not waiting and taken():
            return True
        waiting = waiting or ["the tables' reader"]
        if not self.lossless:
            return now - sources_done_at >= self.config.manager.drain_s
        if now - max(self.last_progress, sources_done_at) >= self.config.manager.drain_s:
            self.failure = (f"{', '.join(waiting)} made no progress for {self.config.manager.drain_s:g} s "
                            "(manager.drain_s) after the sources ended")
            return True
        return False

    def stop(self) -> None:
        """SIGTERM to every node (the bus last), SIGKILL after the grace period; remove the run dir. SIGTERM, not
        SIGINT: a node still importing, before its handler is set, then ends quietly instead of printing a
        KeyboardInterrupt traceback (Ctrl-C just after start); one that has its handler stops as for SIGINT."""
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
            if proc.state in ("starting", "running") and not proc.alive:
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
        if self.lossless:  # what it held is lost: the tables would miss it, so the run fails rather than restart
            self.failure = f"node {proc.spec.name} {proc.last_error} (lossless mode does not restart nodes)"
            return
        if "file" in (self.config.sources.video, self.config.sources.audio) and proc.restarts + 1 >= FILE_CRASH_LIMIT:
            self.failure = f"node {proc.spec.name} crashed {proc.restarts + 1} times: {proc.last_error}"
            return
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
        # the bus and a sink speak no flow messages; any other node is "starting" until it says it is ready
        proc.state = "running" if not proc.spec.outputs else "starting"
        proc.started_at, proc.reported_at = time.monotonic(), 0.0
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
            proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.manager.grace_s
        for proc in live:
            try:
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
                print(f"moodwire: node {proc.spec.name} ignored SIGTERM for "
                      f"{self.config.manager.grace_s} s; killed", file=self.log)
        for proc in procs:
            if proc.state in ("starting", "running", "backoff"):
                proc.state = "stopped"

    def _sources_finished(self) -> bool:
        sources = [p for p in self.nodes.values() if p.spec.is_source]
        return bool(sources) and all(p.state == "finished" for p in sources)

    # ------------------------------------------------------------ health

    def _collect_stats(self) -> None:
        while self._sub and (got := self._sub.recv(timeout=0)) is not None:
            if isinstance(got.msg, NodeStats):
                self._on_stats(got.msg)
            elif isinstance(got.msg, Progress):
                self._on_progress(got.msg)
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
            if proc.state == "starting":  # its ready message may have come before this manager listened
                proc.state = "running"

    def _on_progress(self, msg: Progress) -> None:
        if msg.host != self.host:
            return  # another host's node: its own manager starts and supervises it
        if msg.kind == "ready" and msg.node in self.nodes and self.nodes[msg.node].state == "starting":
            self.nodes[msg.node].state = "running"
        if msg.kind == "waiting" and msg.node in self.nodes:
            self.waiting.add(msg.node)
            self._start_timeline()
        if msg.kind != "watermark" or msg.stream != self.config.sources.stream:
            return
        self.last_progress = time.monotonic()
        if msg.watermark >= END:
            self.ended.add(msg.node)

    def _start_timeline(self) -> None:
        """Every file source of this host is ready (each has heard every node downstream): the timeline
        starts a little ahead, the same for all, and a restarted source finds it in the run file."""
        sources = {p.spec.name for p in self.nodes.values() if p.spec.is_source}
        if not sources <= self.waiting:
            return
        if not self.t0_ns:
            self.t0_ns = self._now_ns() + START_DELAY_NS
            self._run_file["t0_ns"] = self.t0_ns
            (self.run_dir / RUN_FILE).write_text(json.dumps(self._run_file))
        self._pub.send(PROGRESS_TOPIC, Progress(node="manager", kind="start", t0=self.t0_ns, host=self.host,
                                                t_capture=self._now_ns()))

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
        return SystemHealth(nodes=nodes, notes=self.notes, t_capture=self._now_ns(), host=self.host, hosts=hosts,
                            run_id=self.run_id)

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
