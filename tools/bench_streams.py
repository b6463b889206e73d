"""How many cameras one server takes: ``python -m tools.bench --streams N`` (this module does the work).

For n = 1 .. N, on this machine:

- a server: ``moodwire run --nodes bus,face,fusion`` with ``bus.ingest`` on loopback and no local
  sources (``sources.audio = none``: this measures the video path);
- n camera hosts joined to its bus (``moodwire run --nodes video_source --bus ...``), each its own
  stream (``sources.stream = camK``), each playing the real 640x480 30 fps one-face clip
  (tools/media/reference.py ``carphone_640x480``), looped, in real time.

One face node and one fusion node serve every stream (``PerStream``: their own state per stream,
the models shared). After every stream's first ``affect.frame`` and ``WARMUP_S``, for ``seconds``:
per stream, the rate of ``face.tracks`` and ``affect.frame`` (by capture time, at a subscriber on
the public endpoint), and capture to ``affect.frame`` latency; the CPU (% of one core, psutil) of
the face and fusion processes and of every process of the run. "keeps 25 fps" is every stream's
face.tracks and affect.frame at 25 Hz or more. Cost per stream is the CPU of face + fusion / n.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from moodwire.tools.harness.launch import PipelineRun, free_port
from moodwire.tools.harness.stats import cpu_share

WARMUP_S = 5.0
KEEPS_HZ = 25.0


def run_streams(n: int, clip: Path, seconds: float) -> dict[str, Any]:
    """One server and ``n`` joined cameras; the figures of the docstring."""
    import psutil

    ingest = f"tcp://127.0.0.1:{free_port()}"
    server = PipelineRun.start(["--quiet", "--nodes", "bus,face,fusion", "--set", "sources.audio=none",
                                "--set", "bus.host=server", "--set", f"bus.ingest={ingest}"],
                               subscribe=["face.tracks", "affect.frame", "system.health"])
    cameras: list[PipelineRun] = []
    try:
        health = _first_health(server)
        for k in range(1, n + 1):
            cameras.append(PipelineRun.start([
                "--quiet", "--nodes", "video_source", "--bus", server.endpoint, "--set",
                f"bus.join_ingest={ingest}", "--set", f"bus.host=cam{k}", "--set",
                f"sources.stream=cam{k}", "--set", "sources.audio=none", "--set", "sources.video=file",
                "--set", f"sources.file={clip}", "--set", "sources.loop=true"]))
        times: dict[tuple[str, str], list[int]] = defaultdict(list)
        latency: dict[str, list[float]] = defaultdict(list)
        seen: set[str] = set()

        def take(got) -> None:
            nonlocal health
            if got.name == "system.health":
                health = got.msg
            elif got.name in ("face.tracks", "affect.frame") and got.msg.frame_index >= 0:
                times[(got.name, got.stream)].append(got.msg.t_capture)
                if got.name == "affect.frame":
                    seen.add(got.stream)
                    latency[got.stream].append(got.msg.latency_ms)

        server.watch(take, lambda: len(seen) == n, timeout_s=120)
        server.watch(take, timeout_s=WARMUP_S)
        pids = {f"{node.host}/{node.name}": node.pid for node in health.nodes if node.alive}
        procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        before = {name: p.cpu_times() for name, p in procs.items()}
        t0 = time.monotonic_ns()
        start = time.monotonic()
        for values in (*times.values(), *latency.values()):
            values.clear()
        server.watch(take, timeout_s=seconds)
        wall = time.monotonic() - start
        t1 = time.monotonic_ns()
        after = {name: _cpu(p) for name, p in procs.items()}
        cpu = {name: cpu_share(before[name], after[name], wall) for name in procs}
        return _figures(n, times, latency, cpu, t0, t1)
    finally:
        for run in [*cameras, server]:
            run.stop()
            run.close()


def _figures(n: int, times, latency, cpu: dict[str, float | None], t0: int, t1: int) -> dict[str, Any]:
    streams = [f"cam{k}" for k in range(1, n + 1)]
    span = (t1 - t0) / 1e9
    rate = {key: sum(t0 <= t < t1 for t in values) / span for key, values in times.items()}
    face = [rate.get(("face.tracks", s), 0.0) for s in streams]
    fused = [rate.get(("affect.frame", s), 0.0) for s in streams]
    lat = [v for s in streams for v in latency.get(s, [])]
    models = sum(cpu.get(f"server/{name}") or 0.0 for name in ("face", "fusion"))
    return {
        "streams": n, "face_hz_min": round(min(face), 1), "affect_hz_min": round(min(fused), 1),
        "keeps_25": min(face) >= KEEPS_HZ and min(fused) >= KEEPS_HZ,
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat else None,
        "latency_p99_ms": round(float(np.percentile(lat, 99)), 1) if lat else None,
        "face_cpu": cpu.get("server/face"), "fusion_cpu": cpu.get("server/fusion"),
        "all_cpu": round(sum(v or 0.0 for v in cpu.values()), 1), "models_cpu_per_stream": round(models / n, 1),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| streams | face.tracks Hz, slowest stream | affect.frame Hz, slowest | keeps 25 fps | "
            "capture to affect.frame p50 / p99 ms | face CPU % | fusion CPU % | all processes CPU % | "
            "face + fusion CPU % per stream |")
    lines = [head, "|" + " --- |" * 9]
    for r in rows:
        lines.append(f"| {r['streams']} | {r['face_hz_min']} | {r['affect_hz_min']} | "
                     f"{'yes' if r['keeps_25'] else 'no'} | {r['latency_p50_ms']} / {r['latency_p99_ms']} | "
                     f"{r['face_cpu']} | {r['fusion_cpu']} | {r['all_cpu']} | {r['models_cpu_per_stream']} |")
    return "\n".join(lines)


def measure(max_streams: int, seconds: float) -> list[dict[str, Any]]:
    from moodwire.tools.media.reference import carphone_640x480

    with tempfile.TemporaryDirectory(prefix="bench-streams-") as folder:
        clip = carphone_640x480(Path(folder))
        rows = []
        for n in range(1, max_streams + 1):
            print(f"streams: {n} camera(s) into one server", flush=True)
            rows.append(run_streams(n, clip, seconds))
        return rows


def _cpu(proc) -> Any:
    try:
        return proc.cpu_times()
    except Exception:  # the process is gone (psutil.NoSuchProcess): no figure for it
        return None


def _first_health(server: PipelineRun):
    got = server.sub.recv(60)
    while got is not None and got.name != "system.health":
        got = server.sub.recv(60)
    if got is None:
        raise RuntimeError(f"the server sent no system.health; its output:\n{server.output()}")
    return got.msg
