"""Robot + server on this machine, measured: ``python -m tools.bench_hosts`` (as root).

Two network namespaces joined by a veth pair, the robot's monotonic clock 10 hours ahead of the
server's (tools/harness/netns.py). The server runs the bus, face, VAD, voice and fusion; the robot
runs the sample clip's camera and microphone and joins the server's bus over CURVE. After the first
fused frame and ``--warmup`` seconds, for ``--seconds``, first with every node on the server (the
baseline, in the same run), then split:

- capture (robot) to ``affect.frame`` made (server): ``latency_ms`` of each frame, p50 and p99;
- ``audio.chunk``: arrival at a client on the server minus ``t_capture``;
- the clock: the offset the robot measured against the true one (the time namespace's 10 hours
  exactly: the two hosts share one hardware clock), and the uncertainty it reports;
- what the robot sends over the link: its veth's byte counter, in Mbit/s.

The veth is a memory copy, so link figures are the cost of CURVE and TCP, not of a real network.
The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from moodwire.tools.harness.netns import ROBOT_AHEAD_S, Deployment, TwoHosts, namespaces_unavailable


def measure(run: Deployment, hosts: TwoHosts, seconds: float, warmup: float) -> dict:
    run.stream.wait_for("the first fused frame", lambda m: m["topic"] == "affect.frame" and m["persons"], 300)
    time.sleep(warmup)
    start, bytes_before, t0 = len(run.stream.lines), hosts.robot_bytes_sent(), time.monotonic()
    health_start = len(run.health.lines)
    time.sleep(seconds)
    span = time.monotonic() - t0
    sent = hosts.robot_bytes_sent() - bytes_before
    frames = [m for m in run.stream.since(start, "affect.frame") if m["frame_index"] >= 0]
    chunks = run.stream.since(start, "audio.chunk")
    latency = np.array([f["latency_ms"] for f in frames])
    result = {
        "affect_frame_hz": len(frames) / span,
        "latency_p50_ms": float(np.percentile(latency, 50)), "latency_p99_ms": float(np.percentile(latency, 99)),
        "audio_age_p50_ms": statistics.median((c["t_receive"] - c["t_capture"]) / 1e6 for c in chunks),
        "robot_sends_mbit_s": sent * 8 / span / 1e6,
    }
    robots = [h for m in run.health.lines[health_start:] for h in m["hosts"] if h["name"] == "robot"]
    if robots:
        error_ms = [abs(r["clock_offset_ms"] + ROBOT_AHEAD_S * 1e3) for r in robots]
        result.update(clock_error_max_ms=max(error_ms), clock_uncertainty_p50_ms=statistics.median(
            r["clock_uncertainty_ms"] for r in robots), clock_within_uncertainty=all(
            e <= r["clock_uncertainty_ms"] for e, r in zip(error_ms, robots)))
    return result


def table(two: dict, one: dict) -> str:
    rows = [("affect.frame rate", f"{two['affect_frame_hz']:.1f} Hz", f"{one['affect_frame_hz']:.1f} Hz"),
            ("capture to affect.frame, p50 / p99", f"{two['latency_p50_ms']:.1f} / {two['latency_p99_ms']:.1f} ms",
             f"{one['latency_p50_ms']:.1f} / {one['latency_p99_ms']:.1f} ms"),
            ("audio.chunk capture to a client on the server, p50", f"{two['audio_age_p50_ms']:.1f} ms",
             f"{one['audio_age_p50_ms']:.1f} ms"),
            ("clock offset error (against the true 10 h), max", f"{two['clock_error_max_ms']:.3f} ms", "-"),
            ("clock uncertainty reported, p50", f"{two['clock_uncertainty_p50_ms']:.3f} ms", "-"),
            ("every report's error within its uncertainty", "yes" if two["clock_within_uncertainty"] else "NO", "-"),
            ("robot to server traffic (640x480 BGR, 30 fps, 16 kHz audio, CURVE)",
             f"{two['robot_sends_mbit_s']:.0f} Mbit/s", "-")]
    return "\n".join(["| | robot + server | all on one host |", "| --- | --- | --- |",
                      *(f"| {a} | {b} | {c} |" for a, b, c in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args(argv)
    reason = namespaces_unavailable()
    if reason:
        print(f"bench_hosts: cannot run here: {reason}", file=sys.stderr)
        return 2
    hosts = TwoHosts.make()
    results = {}
    try:
        for name, one_host in (("one_host", True), ("two_hosts", False)):
            with tempfile.TemporaryDirectory(prefix="bench-hosts-") as folder:
                run = Deployment.start(hosts, Path(folder), dict(os.environ), one_host=one_host)
                try:
                    results[name] = measure(run, hosts, args.seconds, args.warmup)
                finally:
                    run.stop()
    finally:
        hosts.remove()
    print(table(results["two_hosts"], results["one_host"]))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
