"""What the bus adds: latency and throughput through the real proxy, between real processes.

Three processes (spawn start method): the proxy (``moodwire.pipeline.core.bus.run_proxy``), a
publisher (``moodwire.pipeline.core.bus.Publisher`` on ``internal_pub``) and a subscriber
(``moodwire.pipeline.core.bus.Subscriber``), on two paths:

  ipc  publisher -> proxy -> subscriber on ``internal_sub`` (how nodes talk)
  tcp  publisher -> proxy -> subscriber on the public endpoint (how clients listen)

Payloads: a 640x480x3 uint8 ``video.frame`` and a 320-sample int16 ``audio.chunk``.

Latency (paced: frames at 30 Hz, chunks at 1000 Hz), in microseconds on the
shared monotonic clock:
  bus  = Received.t_receive - t_publish   (arrival in the subscriber's receiver thread)
  e2e  = monotonic_ns() after recv() returns - t_publish   (includes hand-over and decode)
t_publish is stamped by Publisher.send before encoding, so both include encoding.

Throughput: the publisher sends N messages as fast as it can. ``audio.chunk`` is
QUEUED (every arrival is delivered); ``video.frame`` is latest-only, so the
table shows sent, arrived at the subscriber, delivered by recv() and superseded.

    .venv/bin/python -m tools.bench_bus [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time

import numpy as np

from .harness.launch import free_port
from .harness.stats import summary

WARMUP, END = -1, -2          # index values of warm-up and end-marker messages
WAIT_S = 10.0                 # longest wait for any handshake
IDLE_S = 3.0                  # subscriber gives up this long after the last message


# ---------------------------------------------------------------- payloads


def make_message(kind: str, index: int, image: np.ndarray | None = None):
    from moodwire.pipeline.core.clock import now_ns
    from moodwire.pipeline.core.messages import AudioChunk, VideoFrame
    if kind == "frame":
        return "video.frame", VideoFrame(frame_index=index, width=640, height=480, fps_nominal=30.0,
                                         image=image, t_capture=now_ns())
    return "audio.chunk", AudioChunk(chunk_index=index, sample_rate=16000,
                                     samples=np.zeros(320, np.int16), t_capture=now_ns())


def make_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def wire_bytes(kind: str) -> int:
    from moodwire.pipeline.core.wire import encode
    topic, msg = make_message(kind, 0, make_image())
    return sum(len(memoryview(f).cast("B")) for f in encode(topic, msg))


def index_of(msg) -> int:
    return getattr(msg, "frame_index", getattr(msg, "chunk_index", None))


# ---------------------------------------------------------------- processes


def proxy_main(endpoints, hwm: int) -> None:
    from moodwire.pipeline.core.bus import run_proxy
    from moodwire.pipeline.core.signals import stop_on_signals

    run_proxy(endpoints, hwm=hwm, stop=stop_on_signals())  # Bench.close terminates it with SIGTERM


def publisher_main(conn, endpoints, ev, hwm: int) -> None:
    """Commands: (kind, n, rate_hz or None) -> reply with what was sent and when."""
    from moodwire.pipeline.core.bus import Publisher
    from moodwire.pipeline.core.clock import now_ns
    pub = Publisher(endpoints.internal_pub, "bench", hwm=hwm)
    image = make_image()
    while (cmd := conn.recv()) is not None:
        kind, n, rate = cmd
        # warm-up until the subscriber has seen one: the subscription has propagated
        deadline = time.monotonic() + WAIT_S
        while not ev["warm"].is_set() and time.monotonic() < deadline:
            pub.send(*make_message(kind, WARMUP, image))
            time.sleep(0.02)
        if not ev["warm"].is_set():
            conn.send({"error": "subscriber saw no warm-up message"})
            continue
        time.sleep(0.3)  # let the last warm-ups drain
        ev["baseline"].set()
        ev["baseline_taken"].wait(WAIT_S)
        period = 1e9 / rate if rate else 0
        t0 = now_ns()
        for i in range(n):
            if period:
                delay = (t0 + i * period - now_ns()) / 1e9
                if delay > 0:
                    time.sleep(delay)
            pub.send(*make_message(kind, i, image))
        t1 = now_ns()
        time.sleep(0.3)
        for _ in range(3):
            pub.send(*make_message(kind, END, image))
            time.sleep(0.05)
        conn.send({"sent": n, "t_first_send": t0, "t_last_send": t1})
    pub.close()


def subscriber_main(conn, ev, hwm: int) -> None:
    """Commands: (endpoint, topic) -> reply with one row per measured message."""
    from moodwire.pipeline.core.bus import Subscriber
    from moodwire.pipeline.core.clock import now_ns
    while (cmd := conn.recv()) is not None:
        endpoint, topic = cmd
        rows, base, final, error, ended = [], None, None, "", False
        with Subscriber(endpoint, [topic], hwm=hwm) as sub:
            conn.send("ready")
            last = time.monotonic()
            while True:
                got = sub.recv(timeout=0.05)
                t_done = now_ns()
                if base is None and ev["baseline"].is_set():
                    base = sub.freshness(topic)
                    ev["baseline_taken"].set()
                if got is None:
                    limit = IDLE_S if base else WAIT_S
                    if time.monotonic() - last > limit:
                        if not ev["warm"].is_set():
                            error = (f"no message decoded in {WAIT_S:.0f} s; malformed={sub.malformed} "
                                     f"last_error={sub.last_error!r}")
                        break
                    continue
                last = time.monotonic()
                idx = index_of(got.msg)
                if idx == WARMUP:
                    ev["warm"].set()
                elif idx == END:
                    ended = True
                    break
                else:
                    rows.append((idx, got.msg.seq, got.msg.t_publish, got.t_receive, t_done))
            final = sub.freshness(topic)
            malformed = sub.malformed
        arrived = superseded = dropped = None
        if base is not None:  # counts since the baseline, less the end marker that stopped the loop
            arrived = final.received - base.received - int(ended)
            superseded = final.superseded - base.superseded
            dropped = final.dropped - base.dropped
        conn.send({"rows": rows, "arrived": arrived, "superseded": superseded, "dropped": dropped,
                   "malformed": malformed, "error": error})


# ---------------------------------------------------------------- measuring


class Bench:
    def __init__(self, ctx, endpoints, hwm: int) -> None:
        self.ev = {k: ctx.Event() for k in ("warm", "baseline", "baseline_taken")}
        self.pub_conn, pub_child = ctx.Pipe()
        self.sub_conn, sub_child = ctx.Pipe()
        self.endpoints = endpoints
        self.procs = [ctx.Process(target=proxy_main, args=(endpoints, hwm), daemon=True),
                      ctx.Process(target=publisher_main, args=(pub_child, endpoints, self.ev, hwm), daemon=True),
                      ctx.Process(target=subscriber_main, args=(sub_child, self.ev, hwm), daemon=True)]
        for p in self.procs:
            p.start()

    def run(self, path: str, kind: str, n: int, rate: float | None) -> dict:
        for e in self.ev.values():
            e.clear()
        topic = "video.frame" if kind == "frame" else "audio.chunk"
        endpoint = self.endpoints.internal_sub if path == "ipc" else self.endpoints.public
        self.sub_conn.send((endpoint, topic))
        _reply(self.sub_conn, 30.0, "subscriber did not start")
        self.pub_conn.send((kind, n, rate))
        limit = 3 * WAIT_S + (n / rate if rate else 10.0)
        sent = _reply(self.pub_conn, limit, "publisher did not finish")
        got = _reply(self.sub_conn, limit, "subscriber did not finish")
        if got["error"] or "error" in sent:
            raise RuntimeError(f"{path} {kind}: {got['error'] or sent['error']}")
        rows = np.array(got["rows"], dtype=np.int64).reshape(-1, 5)
        bus_us = (rows[:, 3] - rows[:, 2]) / 1e3
        e2e_us = (rows[:, 4] - rows[:, 2]) / 1e3
        out = {"path": path, "payload": kind, "topic": topic, "mode": "paced" if rate else "flood",
               "rate_hz": rate, "sent": n, "arrived": got["arrived"], "delivered": int(len(rows)),
               "superseded": got["superseded"], "queue_dropped": got["dropped"], "malformed": got["malformed"],
               "bus_us": summary(bus_us, 1), "e2e_us": summary(e2e_us, 1)}
        if not rate and len(rows):
            span_s = (rows[:, 3].max() - sent["t_first_send"]) / 1e9
            size = wire_bytes(kind)
            arrived = got["arrived"] if got["arrived"] is not None else len(rows)
            out.update(msg_bytes=size, span_s=round(span_s, 4),
                       send_rate_msg_s=round(n / max((sent["t_last_send"] - sent["t_first_send"]) / 1e9, 1e-9)),
                       arrived_msg_s=round(arrived / span_s), arrived_mb_s=round(arrived * size / span_s / 1e6, 1),
                       delivered_msg_s=round(len(rows) / span_s))
        return out

    def close(self) -> None:
        for conn in (self.pub_conn, self.sub_conn):
            conn.send(None)
        for p in self.procs[1:]:
            p.join(3)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(3)


def _reply(conn, timeout: float, what: str):
    try:
        if conn.poll(timeout):
            return conn.recv()
    except EOFError:
        pass
    raise RuntimeError(f"{what} within {timeout:.0f} s (did its process die? see its traceback above)")


def print_table(results: list[dict]) -> None:
    def f(v):
        return "-" if v is None else str(v)
    print("\nLatency (paced), microseconds: bus = t_receive - t_publish, e2e = after recv()+decode - t_publish")
    print(f"{'path':<5}{'payload':<8}{'rate':>6}{'sent':>7}{'recv':>7}"
          f"{'bus p50':>10}{'p99':>9}{'max':>9}{'e2e p50':>10}{'p99':>9}{'max':>9}")
    for r in results:
        if r["mode"] == "paced":
            b, e = r["bus_us"], r["e2e_us"]
            print(f"{r['path']:<5}{r['payload']:<8}{r['rate_hz']:>6.0f}{r['sent']:>7}{r['delivered']:>7}"
                  f"{f(b['p50']):>10}{f(b['p99']):>9}{f(b['max']):>9}{f(e['p50']):>10}{f(e['p99']):>9}{f(e['max']):>9}")
    print("\nThroughput (publisher floods N messages; arrived = reached the subscriber socket,"
          " delivered = returned by recv())")
    print(f"{'path':<5}{'payload':<8}{'sent':>7}{'arrived':>8}{'deliv':>7}{'supers':>7}"
          f"{'send msg/s':>11}{'arr msg/s':>10}{'arr MB/s':>9}{'bus p50':>10}{'p99':>10}")
    for r in results:
        if r["mode"] == "flood":
            print(f"{r['path']:<5}{r['payload']:<8}{r['sent']:>7}{f(r['arrived']):>8}{r['delivered']:>7}"
                  f"{f(r['superseded']):>7}{f(r.get('send_rate_msg_s')):>11}{f(r.get('arrived_msg_s')):>10}"
                  f"{f(r.get('arrived_mb_s')):>9}{f(r['bus_us']['p50']):>10}{f(r['bus_us']['p99']):>10}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="latency and throughput of the moodwire bus")
    ap.add_argument("--quick", action="store_true", help="fewer messages: a smoke run")
    ap.add_argument("--hwm", type=int, default=None,
                    help="high-water mark for proxy, publisher and subscriber (default: the bus default)")
    args = ap.parse_args(argv)
    n_frames, n_small, n_flood_small, n_flood_frames = (
        (45, 300, 2000, 100) if args.quick else (300, 3000, 20000, 600))

    import zmq

    from moodwire.pipeline.core.bus import DEFAULT_HWM, BusEndpoints
    hwm = DEFAULT_HWM if args.hwm is None else args.hwm
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="moodwire-bench-") as tmp:
        endpoints = BusEndpoints.in_dir(tmp, public=f"tcp://127.0.0.1:{free_port()}")
        bench = Bench(mp.get_context("spawn"), endpoints, hwm)
        results = []
        try:
            plan = [("frame", n_frames, 30.0), ("small", n_small, 1000.0),
                    ("small", n_flood_small, None), ("frame", n_flood_frames, None)]
            for kind, n, rate in plan:
                for path in ("ipc", "tcp"):
                    r = bench.run(path, kind, n, rate)
                    results.append(r)
                    print(f"  {path} {kind:<5} {r['mode']:<5} n={n}: delivered {r['delivered']}, "
                          f"bus p50 {r['bus_us']['p50']} us", file=sys.stderr, flush=True)
        except RuntimeError as exc:
            print(f"bench_bus: FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            bench.close()
    print_table(results)
    summary = {"bench": "bus", "quick": args.quick, "cpus": os.cpu_count(), "zmq": zmq.zmq_version(),
               "pyzmq": zmq.__version__, "hwm": hwm, "wall_s": round(time.monotonic() - t_start, 1),
               "results": results}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
