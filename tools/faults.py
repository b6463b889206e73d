"""Fault injection on the real pipeline: kill, stall, unplug and flood, and what the system does about it.

Run A: ``moodwire run --source CLIP --set sources.loop=true`` on the muxed carphone clip of
``tools/bench_speech.py`` (one real face, espeak-ng sentences in its audio), every node its own
process, observed on the public endpoint by one subscriber that is never restarted. In turn:

- SIGKILL each node (face, vad, asr, voice, text, fusion, video_source, audio_source, bus);
- SIGSTOP the face node for ``STALL_S`` then SIGCONT;
- flood the bus: a rogue publisher (its own process) on the internal ``RUN_DIR/pub.sock`` sends
  ``--flood-rate`` messages a second (10,000) for ``FLOOD_S``: malformed headers on real topics, an
  unknown topic, a 2 MiB header (over the wire's 1 MiB limit) and a frame over ``MAX_FRAME_BYTES``
  (the proxy drops that connection). Event messages lost meanwhile (seq gaps) are reported.

Run B (not with ``--quick``): video from a webcam that is a fake device (``FakeCapture``: the
``cv2.VideoCapture`` interface over the same clip, paced like a camera; the real
``moodwire.pipeline.sources.webcam.Webcam`` reads it), audio from the clip's WAV, not looping. The camera is
unplugged (``read()`` fails, as OpenCV's does when a V4L2 device goes away; reopening fails) for
``UNPLUG_S``, then plugged back; then the audio file ends.

At the end of each run: SIGINT to ``moodwire run`` (a user's Ctrl-C), then psutil checks that no
process of the run is left and the run directory (ipc sockets) is gone.

Figures, per event (rules; times from the moment of the fault, arrival at this tool, CLOCK_MONOTONIC):

- ``restart_s``: until ``system.health`` shows the node alive again with a new pid and one more restart;
- ``health_s``: until the first ``system.health`` that shows the event (not alive, a state other than
  running, more restarts, another pid, or for the flood a node's ``last_error`` naming the bad input);
- ``back_s``: until the node's new process sends its first ``system.node`` (it has loaded and polls);
- ``output_s``: until its output topic flows again (speech topics wait for the next sentence);
- ``full_s``: until ``affect.frame`` has the face again, ``SUSTAIN`` frames in a row;
- ``fps``: ``affect.frame`` arrivals per second between the fault and ``output_s`` (or the end of the
  stall/flood/unplug); ``fps_before``: the same over the 5 s before the fault. The stream "kept its
  rate" when ``fps >= 0.75 * fps_before`` (a ratio within the run: the machine is shared); checked
  where the node is not the stream's producer (fusion, video_source, bus);
- ``missing``: the modalities those frames name as missing; ``speech_hz``: ``speech.*`` messages per
  second in that span (for the fusion kill: speech while fusion is down).

    .venv/bin/python -m tools.faults [--quick] [--only KIND ...] [--kill NODE ...] [--flood-rate N]

Prints a markdown table, then one JSON line. Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .harness.launch import PipelineRun, log_tail
from .harness.machine import announce
from .harness.monitor import (Monitor, Seen, event_losses, event_topics, face_back, first_health, first_sustained,
                              node_of, wait_steady)
from .harness.stats import rate_hz as rate_of_times
from .media.speech_clip import FPS, SENTENCES, make_media

KILL_ORDER = ("face", "vad", "asr", "voice", "text", "fusion", "video_source", "audio_source", "bus")
QUICK_KILLS = ("face", "fusion", "bus")
KINDS = ("kill", "stall", "flood", "unplug")
PRODUCERS = {"fusion", "video_source", "bus"}  # without them there is no affect.frame to say anything
SETTLE_NS = 100_000_000  # after a SIGKILL, anything arriving this much later came from a new process
STALL_S = 6.0  # longer than the manager's STALLED_AFTER_S, so health must say it
FLOOD_S = 3.0
# Messages a second from the rogue publisher: 300 times the frame rate. Unbounded (--flood-rate 0), a Python
# sender takes a whole core of the two, and what it measures is then the machine, not the pipeline.
FLOOD_RATE = 10_000
FLOOD_BURST = 100
UNPLUG_S = 5.0
LOAD_TIMEOUT_S = 120.0  # loading every model on a busy 2-core machine
RECOVER_TIMEOUT_S = 45.0
KEPT_RATE = 0.75  # a rate during the fault at least this share of the rate just before it: "kept its rate"
BASELINE_NS = 5_000_000_000  # the span before a fault that gives that rate
RESTART_LIMIT_S = 5.0  # backoff 0.5 s plus process start
HEALTH_LIMIT_S = 3.0  # health is published at 1 Hz
BUS_HEALTH_LIMIT_S = 6.0  # health itself travels over the bus: restart, then the next report
UNPLUG_RECOVER_LIMIT_S = 20.0  # the backoff has doubled while the camera was away (at most 10 s)
# Checks that judge how fast the machine recovered (limits above) rather than what the pipeline did; the
# tool fails on them, tests of its quick run report them and leave the verdict to a run like the README's.
TIMING_CHECKS = frozenset({"restart_in_time", "health_in_time", "video_back_in_time", "kept_rate",
                           "upstream_unaffected"})


# ---------------------------------------------------------------- pure figures (unit-tested)


def rate_hz(records: Sequence[Seen], t0: int, t1: int) -> float | None:
    """Records per second that arrived in [t0, t1)."""
    return rate_of_times([r.t for r in records], t0, t1)


def kept_rate(during: float | None, before: float | None) -> bool:
    """The rate during a fault is at least ``KEPT_RATE`` of the rate just before it."""
    return during is not None and bool(before) and during >= KEPT_RATE * before


def seconds_after(t: int | None, t0: int) -> float | None:
    return None if t is None else round((t - t0) / 1e9, 2)


def changed(before: Any, now: Any) -> bool:
    """A node entry of ``system.health`` that shows something happened to it."""
    return (not now.alive or now.state != "running" or now.restarts != before.restarts or now.pid != before.pid)


def collateral(before: Any, after: Any, victim: str) -> list[str]:
    """Nodes other than ``victim`` whose process changed between two health reports."""
    out = []
    for b in before.nodes:
        a = node_of(after, b.name)
        if b.name != victim and (a is None or a.pid != b.pid or a.restarts != b.restarts):
            out.append(b.name)
    return out


# ---------------------------------------------------------------- one event's result


@dataclass
class Event:
    """What one fault did and how the system answered; ``checks`` are the pass/fail verdicts."""

    fault: str
    node: str
    restarts: int | None = None
    restart_s: float | None = None
    health_s: float | None = None
    back_s: float | None = None
    output_s: float | None = None
    full_s: float | None = None
    fps: float | None = None
    fps_before: float | None = None
    missing: list[str] = field(default_factory=list)
    note: str = ""
    speech_hz: float | None = None
    collateral: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    def failed(self) -> list[str]:
        return [k for k, v in self.checks.items() if not v]


def outage_figures(ev: Event, mon: Monitor, t0: int, t1: int) -> None:
    """affect.frame rate (and the rate before), what it said was missing, and the speech.* rate in [t0, t1)."""
    frames = mon.topic("affect.frame", t0, t1)
    ev.fps = rate_hz(frames, t0, t1)
    ev.fps_before = rate_hz(mon.topic("affect.frame", t0 - BASELINE_NS, t0), t0 - BASELINE_NS, t0)
    ev.missing = sorted({m for f in frames for m in f.missing})
    ev.note = next((f.note for f in frames if f.note), "")
    ev.speech_hz = rate_hz(mon.topic("speech.", t0, t1), t0, t1)


def wait_face_back(mon: Monitor, since: int) -> None:
    deadline = time.monotonic() + RECOVER_TIMEOUT_S
    while time.monotonic() < deadline and face_back(mon, since) is None:
        time.sleep(0.2)


def output_topic(node: str) -> str:
    """The topic (prefix) whose flow says the node is doing its job again."""
    from moodwire.pipeline.runtime.process_table import get_node

    outputs = get_node(node).outputs
    return outputs[0] if outputs else "affect.frame"


# ---------------------------------------------------------------- SIGKILL


def kill_node(run: PipelineRun, mon: Monitor, victim: str) -> Event:
    before = wait_steady(run, mon, RECOVER_TIMEOUT_S)
    old = node_of(before, victim)
    topic = output_topic(victim)
    last_seq = max((s.seq for s in mon.topic(topic) if s.source == victim), default=-1)
    ev = Event(f"SIGKILL {victim}", victim)
    os.kill(old.pid, signal.SIGKILL)
    t0 = time.monotonic_ns()
    since = t0 + SETTLE_NS

    def restarted(h: Any) -> bool:
        n = node_of(h, victim)
        return n.alive and n.pid != old.pid and n.restarts > old.restarts

    def output_back(s: Seen) -> bool:  # a killed producer's seq starts again from 0
        return victim == "bus" or (s.source == victim and (s.seq <= last_seq or last_seq < 0))

    def reporting(s: Seen) -> bool:  # the new process's own system.node (the bus sends none)
        return victim == "bus" or (s.source == victim and s.pid not in (0, old.pid))

    deadline = time.monotonic() + RECOVER_TIMEOUT_S
    while time.monotonic() < deadline:
        t_output = first_sustained(mon.topic(topic), since, output_back)
        if (first_health(mon.health, t0, restarted) is not None
                and first_sustained(mon.topic("system.node"), since, reporting) is not None and t_output is not None
                and face_back(mon, t_output) is not None):
            break
        time.sleep(0.2)
    t_restart = first_health(mon.health, t0, restarted)
    t_output = first_sustained(mon.topic(topic), since, output_back)
    after = mon.latest_health()
    new = node_of(after, victim)
    ev.restarts = new.restarts - old.restarts
    ev.restart_s = seconds_after(t_restart, t0)
    ev.health_s = seconds_after(first_health(mon.health, t0, lambda h: changed(old, node_of(h, victim))), t0)
    if victim != "bus":
        ev.back_s = seconds_after(first_sustained(mon.topic("system.node"), since, reporting), t0)
    ev.output_s = seconds_after(t_output, t0)
    # from when its output is back: fusion keeps using a face estimate for face_timeout_s after the kill
    ev.full_s = seconds_after(face_back(mon, t_output or since), t0)
    outage_figures(ev, mon, t0, t_output or time.monotonic_ns())
    ev.collateral = collateral(before, after, victim)
    ev.checks = {
        "restarted": t_restart is not None and ev.restarts == 1 and new.pid != old.pid,
        "restart_in_time": ev.restart_s is not None and ev.restart_s <= RESTART_LIMIT_S,
        "health_reported": ev.health_s is not None,
        "health_in_time": ev.health_s is not None and ev.health_s <= (
            BUS_HEALTH_LIMIT_S if victim == "bus" else HEALTH_LIMIT_S),
        "output_back": t_output is not None,
        "full_content_back": ev.full_s is not None,
        "no_collateral_restart": not ev.collateral,
    }
    if victim not in PRODUCERS:
        ev.checks["kept_rate"] = kept_rate(ev.fps, ev.fps_before)
    if victim == "face":
        ev.checks["said_face_missing"] = "face" in ev.missing and bool(ev.note)
    if victim == "fusion":
        faces = mon.topic("face.tracks")
        upstream = rate_hz(faces, t0, t_output or t0)
        ev.extra["face_tracks_hz_while_down"] = upstream
        ev.extra["face_tracks_hz_before"] = rate_hz(faces, t0 - BASELINE_NS, t0)
        ev.checks["upstream_unaffected"] = kept_rate(upstream, ev.extra["face_tracks_hz_before"])
    if victim == "bus":
        bus_subscribers_back(ev, mon, t_restart)
    return ev


def bus_subscribers_back(ev: Event, mon: Monitor, back: int | None) -> None:
    """After the proxy restarts (at ``back``), every node's sockets must have reconnected by themselves:
    each node reports again (its PUB), face and fusion publish (their SUBs get frames), and the manager
    still hears every node's reports (its SUB) once a node that went silent would be called stalled."""
    from moodwire.pipeline.runtime.manager import STALLED_AFTER_S

    if back is None:
        ev.checks["subscribers_reconnected"] = False
        return
    names = [n.name for n in mon.latest_health().nodes if n.name != "bus"]
    judged = back + int((STALLED_AFTER_S + 1.5) * 1e9)
    none_stalled = lambda h: all(n.state != "stalled" for n in h.nodes)  # noqa: E731
    deadline = time.monotonic() + RECOVER_TIMEOUT_S
    while time.monotonic() < deadline:
        reported = {s.source for s in mon.topic("system.node", back)}
        if set(names) <= reported and first_health(mon.health, judged, none_stalled) is not None:
            break
        time.sleep(0.2)
    reported = {s.source for s in mon.topic("system.node", back)}
    ev.extra["not_reporting_after_bus_restart"] = sorted(set(names) - reported)
    ev.checks["publishers_reconnected"] = set(names) <= reported
    ev.checks["subscribers_reconnected"] = bool(mon.topic("face.tracks", back)) and bool(
        mon.topic("affect.frame", back))
    ev.checks["manager_resubscribed"] = first_health(mon.health, judged, none_stalled) is not None


# ---------------------------------------------------------------- SIGSTOP


def stall_node(run: PipelineRun, mon: Monitor, victim: str = "face", stall_s: float = STALL_S) -> Event:
    before = wait_steady(run, mon, RECOVER_TIMEOUT_S)
    old = node_of(before, victim)
    ev = Event(f"SIGSTOP {victim} {stall_s:.0f} s", victim)
    os.kill(old.pid, signal.SIGSTOP)
    t0 = time.monotonic_ns()
    time.sleep(stall_s)
    os.kill(old.pid, signal.SIGCONT)
    t_cont = time.monotonic_ns()
    topic = output_topic(victim)
    deadline = time.monotonic() + RECOVER_TIMEOUT_S
    running = lambda h: node_of(h, victim).state == "running" and node_of(h, victim).rate_hz > 0  # noqa: E731
    while time.monotonic() < deadline:
        if (face_back(mon, t_cont) is not None
                and first_health(mon.health, t_cont, running) is not None):
            break
        time.sleep(0.2)
    after = mon.latest_health()
    ev.restarts = node_of(after, victim).restarts - old.restarts
    ev.health_s = seconds_after(first_health(mon.health, t0, lambda h: node_of(h, victim).state == "stalled"), t0)
    ev.back_s = seconds_after(first_health(mon.health, t_cont, running), t_cont)
    ev.output_s = seconds_after(first_sustained(mon.topic(topic), t_cont + SETTLE_NS, lambda s: s.source == victim),
                                t_cont)
    ev.full_s = seconds_after(face_back(mon, t_cont), t_cont)
    outage_figures(ev, mon, t0, t_cont)
    ev.collateral = collateral(before, after, "")
    ev.extra["times_from"] = "health_s from SIGSTOP; back_s, output_s, full_s from SIGCONT"
    ev.checks = {
        "not_restarted": not ev.collateral,
        "health_reported": ev.health_s is not None,
        "health_in_time": ev.health_s is not None and ev.health_s <= stall_s,
        "health_back_to_running": ev.back_s is not None,
        "output_back": ev.output_s is not None,
        "full_content_back": ev.full_s is not None,
        "kept_rate": kept_rate(ev.fps, ev.fps_before),
    }
    if victim == "face":
        ev.checks["said_face_missing"] = "face" in ev.missing and bool(ev.note)
    return ev


# ---------------------------------------------------------------- flood


FLOOD_TOPICS = ("video.frame", "face.tracks", "speech.transcript", "affect.frame", "system.health", "rogue.topic")
BIG_HEADER_EVERY = 500  # a 2 MiB header (twice the wire's limit) now and then: copying it is slow
OVERSIZED_AT = (1000, 20000)  # a frame over the proxy's MAXMSGSIZE: it drops that connection


def flood_message(i: int, max_frame_bytes: int) -> list[bytes]:
    """The rogue publisher's ``i``-th message: malformed headers on real topics and an unknown one,
    with a header over the wire limit and a frame over the proxy's limit in between."""
    if i in OVERSIZED_AT:
        return [b"video.frame", bytes(max_frame_bytes + 1)]
    if i % BIG_HEADER_EVERY == BIG_HEADER_EVERY - 1:
        return [b"affect.utterance", b"\xc1" * (2 << 20)]
    return [FLOOD_TOPICS[i % len(FLOOD_TOPICS)].encode(), b"\xc1 not msgpack"]


def flood_worker(address: str, flood_s: float, rate: float, conn: Any) -> None:
    """The rogue publisher, in a process of its own (its CPU and GIL are not the observer's): connects,
    says "go", sends ``rate`` messages a second (in bursts; 0: as fast as it can) for ``flood_s``, then
    sends back (sent, refused by its own HWM)."""
    import zmq

    from moodwire.pipeline.core.bus import MAX_FRAME_BYTES

    ctx = zmq.Context()
    rogue = ctx.socket(zmq.PUB)
    rogue.setsockopt(zmq.SNDHWM, 1000)
    rogue.setsockopt(zmq.LINGER, 0)
    rogue.connect(address)
    time.sleep(0.3)  # the connection comes up
    conn.send("go")
    sent = dropped = 0
    start = time.monotonic()
    while (now := time.monotonic()) < start + flood_s:
        if rate and sent + dropped >= rate * (now - start):
            time.sleep(FLOOD_BURST / rate)
            continue
        try:
            rogue.send_multipart(flood_message(sent, MAX_FRAME_BYTES), zmq.NOBLOCK)
            sent += 1
        except zmq.Again:
            dropped += 1
    rogue.close()
    ctx.term()
    conn.send((sent, dropped))


def flood(run: PipelineRun, mon: Monitor, flood_s: float = FLOOD_S, rate: float = FLOOD_RATE) -> Event:
    import multiprocessing

    before = wait_steady(run, mon, RECOVER_TIMEOUT_S)
    ev = Event(f"flood {flood_s:.0f} s", "bus")
    mp = multiprocessing.get_context("spawn")
    here, there = mp.Pipe()
    worker = mp.Process(target=flood_worker, args=(f"ipc://{run.run_dir()}/pub.sock", flood_s, rate, there),
                        daemon=True)
    worker.start()
    if not here.poll(30) or here.recv() != "go":
        worker.kill()
        raise RuntimeError("the flood process did not start")
    t0 = time.monotonic_ns()
    sent, dropped = here.recv() if here.poll(flood_s + 30) else (0, 0)
    t1 = time.monotonic_ns()
    worker.join(5)
    ev.extra.update(sent=sent, refused_by_own_hwm=dropped, rate_per_s=round(sent / flood_s))

    def reported(h: Any) -> bool:  # a node's own report of what it refused (pipeline/core/wire.py's words)
        return any("not valid msgpack" in n.last_error or "exceeds" in n.last_error for n in h.nodes)

    wait_face_back(mon, t1)
    after = mon.latest_health()
    ev.restarts = sum(n.restarts for n in after.nodes) - sum(n.restarts for n in before.nodes)
    ev.health_s = seconds_after(first_health(mon.health, t0, reported), t0)
    ev.full_s = seconds_after(face_back(mon, t1), t1)
    outage_figures(ev, mon, t0, t1)
    ev.collateral = collateral(before, after, "")
    ev.extra["times_from"] = "health_s from the start of the flood; full_s from its end"
    ev.extra["malformed_seen_by_this_subscriber"] = mon.sub.malformed
    ev.extra["events_lost"] = events_lost(mon, t0 - BASELINE_NS, t1 + BASELINE_NS)
    ev.checks = {
        "nothing_restarted": not ev.collateral and ev.restarts == 0,
        "health_reported": ev.health_s is not None,
        "kept_rate": kept_rate(ev.fps, ev.fps_before),
        "full_content_back": ev.full_s is not None,
    }
    return ev


def events_lost(mon: Monitor, t0: int, t1: int) -> dict[str, int]:
    """Per topic/publisher, messages of event (queued) topics lost in [t0, t1) (tools/harness/stats.py
    says what "lost" is); only those that lost any."""
    gaps = event_losses(mon.topic("", t0, t1), event_topics())
    return {name: g.lost for name, g in gaps.items() if g.lost}


# ---------------------------------------------------------------- a fake camera, and unplugging it


class FakeCapture:
    """The ``cv2.VideoCapture`` interface over a video file, paced like a camera: ``read()`` blocks until
    the next frame is due, loops at the end, and returns ``(False, None)`` once the flag file exists
    (what OpenCV's V4L2 backend returns when the device goes away)."""

    def __init__(self, path: str, unplugged_flag: str, fps: float = float(FPS)) -> None:
        import cv2

        self._cv2, self._path, self._flag, self._fps = cv2, path, unplugged_flag, fps
        self._cap = cv2.VideoCapture(path)
        self._next = time.monotonic()

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's names); unplugged, the device cannot be opened
        return not os.path.exists(self._flag) and self._cap.isOpened()

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return self._fps if prop == self._cv2.CAP_PROP_FPS else 0.0

    def read(self) -> tuple[bool, Any]:
        self._next += 1.0 / self._fps
        time.sleep(max(0.0, self._next - time.monotonic()))
        if os.path.exists(self._flag):
            return False, None
        ok, image = self._cap.read()
        if not ok:  # end of the file: a camera does not end
            self._cap.release()
            self._cap = self._cv2.VideoCapture(self._path)
            ok, image = self._cap.read()
        return ok, image

    def release(self) -> None:
        self._cap.release()


def install_fake_camera(path: str, unplugged_flag: str) -> None:
    """Make ``moodwire.pipeline.sources.webcam`` find ``FakeCapture`` as camera device (this process only); the
    real ``open_camera`` and ``Webcam`` run on it, so unplugged it fails as a real camera does."""
    from moodwire.pipeline.sources import webcam

    webcam.camera_device = lambda index: FakeCapture(path, unplugged_flag)


def fake_camera_env(folder: Path, clip: Path) -> tuple[dict[str, str], Path]:
    """Environment whose Python processes (the manager and every node) see the fake camera, via a
    ``sitecustomize`` on PYTHONPATH; and the flag file that unplugs it."""
    flag = folder / "camera-unplugged"
    (folder / "sitecustomize.py").write_text(
        "from moodwire.tools.faults import install_fake_camera\n"
        f"install_fake_camera({str(clip)!r}, {str(flag)!r})\n")
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH", "")]))
    return dict(os.environ, PYTHONPATH=path), flag


def unplug_camera(run: PipelineRun, mon: Monitor, flag: Path, unplug_s: float = UNPLUG_S) -> Event:
    before = wait_steady(run, mon, RECOVER_TIMEOUT_S)
    old = node_of(before, "video_source")
    ev = Event(f"camera unplugged {unplug_s:.0f} s", "video_source")
    flag.touch()
    t0 = time.monotonic_ns()
    time.sleep(unplug_s)
    flag.unlink()
    t_plug = time.monotonic_ns()
    wait_face_back(mon, t_plug)
    after = mon.latest_health()
    new = node_of(after, "video_source")

    def says_unplugged(h: Any) -> bool:
        n = node_of(h, "video_source")
        return n.state != "running" and ("stopped delivering" in n.last_error or "no camera" in n.last_error)

    t_health = first_health(mon.health, t0, says_unplugged)
    ev.restarts = new.restarts - old.restarts
    ev.health_s = seconds_after(t_health, t0)
    ev.output_s = seconds_after(first_sustained(mon.topic("video.frame"), t_plug, lambda s: True), t_plug)
    ev.full_s = seconds_after(face_back(mon, t_plug), t_plug)
    outage_figures(ev, mon, t0 + SETTLE_NS, t_plug)
    ev.extra["health_said"] = next((node_of(m, "video_source").last_error for t, m in mon.health
                                    if t == t_health), "")
    ev.extra["fusion_alive_meanwhile"] = node_of(after, "fusion").pid == node_of(before, "fusion").pid
    ev.extra["times_from"] = "health_s from the unplug; output_s, full_s from plugging back"
    ev.collateral = collateral(before, after, "video_source")
    ev.checks = {
        "retried": ev.restarts >= 1,
        "health_reported": ev.health_s is not None,
        "health_in_time": ev.health_s is not None and ev.health_s <= HEALTH_LIMIT_S + 1.0,
        "video_back": ev.output_s is not None,
        "video_back_in_time": ev.output_s is not None and ev.output_s <= UNPLUG_RECOVER_LIMIT_S,
        "full_content_back": ev.full_s is not None,
        "no_collateral_restart": not ev.collateral,
    }
    return ev


def file_ends(run: PipelineRun, mon: Monitor, clip_s: float, started: float) -> Event:
    """Wait for the (non-looping) audio file to end: its node is finished, not restarted, and the run
    goes on with video; after the speech hold, affect.frame says voice and text are missing."""
    from moodwire.pipeline.core.config import FusionConfig

    ev = Event("audio file ends", "audio_source")
    before = mon.latest_health()
    finished = lambda h: node_of(h, "audio_source").state == "finished"  # noqa: E731
    deadline = started + clip_s + RECOVER_TIMEOUT_S
    while time.monotonic() < deadline and first_health(mon.health, 0, finished) is None:
        time.sleep(0.5)
    t_end = first_health(mon.health, 0, finished)
    if t_end is not None:  # voice and text are carried this long after the last utterance, then missing
        time.sleep(max(0.0, FusionConfig.speech_hold_s + 2.0 - (time.monotonic_ns() - t_end) / 1e9))
    after = mon.latest_health()
    audio = node_of(after, "audio_source")
    ev.restarts = audio.restarts - node_of(before, "audio_source").restarts
    now = time.monotonic_ns()
    last_second = mon.topic("affect.frame", now - 1_000_000_000)
    ev.fps = rate_hz(last_second, now - 1_000_000_000, now)
    ev.missing = sorted({m for f in last_second for m in f.missing})
    ev.extra["state"] = audio.state
    ev.extra["run_still_going"] = run.proc.poll() is None
    ev.checks = {
        "finished_not_restarted": t_end is not None and ev.restarts == 0 and not audio.alive,
        "run_goes_on_with_video": run.proc.poll() is None and bool(last_second),
        "says_speech_missing": {"voice", "text"} <= set(ev.missing),
    }
    return ev


# ---------------------------------------------------------------- the runs


def run_a(clip: Path, kills: Sequence[str], kinds: set[str], stall_s: float, flood_s: float,
          flood_rate: float) -> tuple[list[Event], dict]:
    """Kills, stall and flood on ``--source CLIP`` (looping); then Ctrl-C."""
    run = PipelineRun.start(["--source", str(clip), "--set", "sources.loop=true"])

    def inject(mon: Monitor, events: list[Event]) -> None:
        if "kill" in kinds:
            for victim in kills:
                events.append(report(kill_node(run, mon, victim)))
        if "stall" in kinds:
            events.append(report(stall_node(run, mon, "face", stall_s)))
        if "flood" in kinds:
            events.append(report(flood(run, mon, flood_s, flood_rate)))

    return observed("run A", run, inject)


def run_b(wav: Path, clip: Path, clip_s: float, unplug_s: float) -> tuple[list[Event], dict]:
    """The fake camera unplugged and plugged back, then the audio file's end; then Ctrl-C."""
    folder = Path(tempfile.mkdtemp(prefix="moodwire-fakecam-"))
    env, flag = fake_camera_env(folder, clip)
    run = PipelineRun.start(["--set", "sources.video=webcam", "--set", "sources.audio=file",
                     "--set", f"sources.file={wav}", "--set", "sources.loop=false"], env)
    started = time.monotonic()

    def inject(mon: Monitor, events: list[Event]) -> None:
        events.append(report(unplug_camera(run, mon, flag, unplug_s)))
        events.append(report(file_ends(run, mon, clip_s, started)))

    try:
        return observed("run B", run, inject)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def observed(name: str, run: PipelineRun, inject: Callable[[Monitor, list[Event]], None]) -> tuple[list[Event], dict]:
    """Once the run is steady, ``inject`` its faults (appending events as they end, so a failure keeps the
    ones before it); then Ctrl-C and the check that nothing is left."""
    mon = Monitor(run.endpoint)
    events: list[Event] = []
    try:
        wait_steady(run, mon, LOAD_TIMEOUT_S)
        inject(mon, events)
    except RuntimeError as exc:
        events.append(report(Event(name, "pipeline", extra={"error": str(exc)}, checks={"steady": False})))
    finally:
        mon.close()
        stop = run.ctrl_c()
        log = run.output()
        run.close()
    return events, stop_verdict(stop, log)


def stop_verdict(stop: dict[str, Any], log: str) -> dict[str, Any]:
    stop["checks"] = {"exit_0": stop["exit_code"] == 0, "no_processes_left": not stop["left_processes"],
                      "no_files_left": not stop["left_files"]}
    stop["ok"] = all(stop["checks"].values())
    if not stop["ok"]:
        stop["log_tail"] = log_tail(log, 30)
    print(f"  Ctrl-C: exit {stop['exit_code']} after {stop['stop_s']} s; {stop['processes_seen']} processes seen, "
          f"left {stop['left_processes'] or 'none'}; files left {stop['left_files'] or 'none'}", flush=True)
    return stop


def report(ev: Event) -> Event:
    status = "ok" if ev.ok else "FAILED: " + ", ".join(ev.failed())
    print(f"  {ev.fault}: {status}", flush=True)
    return ev


# ---------------------------------------------------------------- output


COLUMNS = ("fault", "restarts", "restart_s", "health_s", "back_s", "output_s", "full_s", "fps_before", "fps", "missing",
           "speech_hz", "checks")


def table(events: Sequence[Event]) -> str:
    """One markdown row per event."""
    def cell(ev: Event, key: str) -> str:
        if key == "checks":
            return "ok" if ev.ok else "FAILED " + ",".join(ev.failed())
        value = getattr(ev, key)
        if isinstance(value, list):
            return ",".join(value) or "-"
        return "-" if value is None else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(ev, k) for k in COLUMNS) + " |" for ev in events]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"kill {', '.join(QUICK_KILLS)} only, shorter stall and flood, no unplug run")
    parser.add_argument("--only", nargs="+", choices=KINDS, default=list(KINDS), help="which kinds of fault")
    parser.add_argument("--kill", nargs="+", choices=KILL_ORDER, help="which nodes to kill (default: all)")
    parser.add_argument("--flood-rate", type=float, default=FLOOD_RATE,
                        help=f"rogue messages a second (default {FLOOD_RATE}; 0 = as fast as one process can)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = set(args.only) - ({"unplug"} if args.quick and args.only == list(KINDS) else set())
    kills = args.kill or (QUICK_KILLS if args.quick else KILL_ORDER)
    stall_s, flood_s = (5.0, 2.0) if args.quick else (STALL_S, FLOOD_S)
    host, command = announce()
    count = 2 if args.quick else len(SENTENCES)
    wav, mkv, _, clip_s = make_media(count)
    events: list[Event] = []
    stops: dict[str, dict] = {}
    if kinds & {"kill", "stall", "flood"}:
        print(f"run A: moodwire run --source {mkv.name} --set sources.loop=true ({clip_s:.1f} s clip)", flush=True)
        got, stops["A"] = run_a(mkv, kills, kinds, stall_s, flood_s, args.flood_rate)
        events += got
    if "unplug" in kinds:
        print(f"run B: fake camera on {mkv.name}, audio {wav.name} not looping ({clip_s:.1f} s)", flush=True)
        got, stops["B"] = run_b(wav, mkv, clip_s, UNPLUG_S)
        events += got
    print("\n" + table(events) + "\n")
    ok = all(ev.ok for ev in events) and all(s["ok"] for s in stops.values()) and bool(events)
    print(f"faults: {'all checks passed' if ok else 'FAILED'}")
    print(json.dumps({"tool": "faults", "command": command, "machine": host, "ok": ok,
                      "events": [{**asdict(ev), "ok": ev.ok} for ev in events], "ctrl_c": stops}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
