"""A subscriber in a thread of its own that keeps what a long run carried, for the soak and fault tools.

Every message on the public endpoint is kept as a ``Seen`` (its header fields, never its arrays), and
every ``system.health`` whole. ``wait_steady`` waits until every node is running and ``affect.frame``
has the face again for ``SUSTAIN`` frames in a row.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .launch import PipelineRun, log_tail
from .stats import SeqGaps

SUSTAIN = 15  # affect.frame in a row with the face: back to full content (0.5 s)


@dataclass(frozen=True)
class Seen:
    """One message as it arrived here (no arrays kept)."""

    t: int  # arrival at this tool, ns CLOCK_MONOTONIC
    topic: str
    source: str
    seq: int
    missing: tuple[str, ...] = ()  # affect.frame / affect.utterance
    note: str = ""  # affect.frame: why the face is missing
    pid: int = 0  # system.node: the reporting process
    index: int = -1  # frame topics: frame_index


def seen_from(topic: str, msg: Any, t: int) -> Seen:
    missing = tuple(getattr(msg, "missing", ()) or ())
    notes = getattr(msg, "notes", None)
    note = notes.get("face", "") if isinstance(notes, dict) else ""
    pid = getattr(msg, "pid", 0) if topic == "system.node" else 0
    return Seen(t, topic, msg.source, msg.seq, missing, note, pid, getattr(msg, "frame_index", -1))


class Monitor:
    """Every message on ``endpoint``, kept as ``Seen``; ``system.health`` kept whole, with its arrival time."""

    def __init__(self, endpoint: str) -> None:
        from moodwire.pipeline.core.bus import Subscriber

        self.sub = Subscriber(endpoint, [""], queue_everything=True, queue_limit=100_000)
        self.seen: list[Seen] = []
        self.health: list[tuple[int, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from moodwire.pipeline.core.messages import SystemHealth

        while not self._stop.is_set():
            got = self.sub.recv(timeout=0.1)
            if got is None:
                continue
            if isinstance(got.msg, SystemHealth):
                self.health.append((got.t_receive, got.msg))
            self.seen.append(seen_from(got.topic, got.msg, got.t_receive))

    def latest_health(self) -> Any | None:
        return self.health[-1][1] if self.health else None

    def topic(self, name: str, since: int = 0, until: int | None = None) -> list[Seen]:
        """Records whose topic starts with ``name`` that arrived in [since, until)."""
        return [s for s in list(self.seen) if s.topic.startswith(name) and s.t >= since
                and (until is None or s.t < until)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sub.close()


def first_sustained(records: Sequence[Seen], since: int, ok: Callable[[Seen], bool], sustain: int = 1) -> int | None:
    """Arrival time of the first record at or after ``since`` that starts ``sustain`` ok records in a row."""
    run_start, run = None, 0
    for rec in records:
        if rec.t < since:
            continue
        if ok(rec):
            run_start = rec.t if run == 0 else run_start
            run += 1
            if run >= sustain:
                return run_start
        else:
            run = 0
    return None


def first_health(healths: Sequence[tuple[int, Any]], since: int, shows: Callable[[Any], bool]) -> int | None:
    """Arrival time of the first ``system.health`` at or after ``since`` for which ``shows`` holds."""
    return next((t for t, msg in healths if t >= since and shows(msg)), None)


def node_of(health: Any, name: str) -> Any | None:
    """The named node's entry of a ``system.health``; None without one."""
    return next((n for n in health.nodes if n.name == name), None) if health is not None else None


def has_face(rec: Seen) -> bool:
    return "face" not in rec.missing


def face_back(mon: Monitor, since: int) -> int | None:
    """Arrival of the first of SUSTAIN ``affect.frame`` in a row, after ``since``, that use the face; None: not yet."""
    return first_sustained(mon.topic("affect.frame"), since, has_face, SUSTAIN)


def wait_steady(run: PipelineRun, mon: Monitor, timeout_s: float) -> Any:
    """Every node alive and running, and affect.frame with the face for ``SUSTAIN`` frames in a row; the
    ``system.health`` that showed it. RuntimeError with the log's tail when it does not come."""
    deadline = time.monotonic() + timeout_s
    since = time.monotonic_ns()
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            raise RuntimeError(f"moodwire run exited with {run.proc.returncode}:\n{log_tail(run.output())}")
        health = mon.latest_health()
        nodes_ok = health is not None and all(n.alive and n.state == "running" for n in health.nodes)
        if nodes_ok and face_back(mon, since) is not None:
            run.remember_processes()
            return health
        time.sleep(0.2)
    raise RuntimeError(f"pipeline not steady in {timeout_s:.0f} s; health: {mon.latest_health()}\n"
                       f"{log_tail(run.output())}")


def event_losses(records: Iterable[Seen], topics: Iterable[str]) -> dict[str, SeqGaps]:
    """Per ``topic/source``: the seq gaps (stats.SeqGaps: what "lost" means) of the given topics."""
    wanted = set(topics)
    out: dict[str, SeqGaps] = {}
    for r in records:
        if r.topic in wanted:
            out.setdefault(f"{r.topic}/{r.source}", SeqGaps()).add(r.seq)
    return out


def event_topics() -> list[str]:
    """Queued (event) topics of the registry, the manager's and nodes' reports aside."""
    from moodwire.pipeline.core.topics import TOPICS, Policy

    return [name for name, spec in TOPICS.items() if spec.policy is Policy.QUEUED and not name.startswith("system.")]
