"""The whole pipeline in one table, beside its peers: ``python -m tools.bench``.

Input: the muxed clip of tools/bench_speech.py (the real one-face carphone footage, 640x480 at
30 fps, with espeak-ng sentences in its audio track), long enough for loading, warm-up and the window.

1. moodwire: ``moodwire run --source CLIP`` with the default config (every node its own process,
   real-time pacing), observed by one subscriber on the public endpoint that takes every topic
   (``video.frame`` included, so the bus row includes forwarding 27 MB/s of frames to it). Once
   every node has sent its first ``system.node`` report and ``face.tracks`` and ``affect.frame``
   flow, ``WARMUP_S`` pass, then the window: ``--seconds`` of capture time. Node pids come from
   ``system.health``; the manager (``moodwire run`` itself) is a row too.

   Per node: rate = messages of its main topic with capture time in the window / window; CPU =
   psutil user+system time of its process over the window / wall time, in % of one core; RSS =
   psutil, sampled every second (max, and at the window's end). Latency, per node (LATENCY_RULES):
     video_source   video.frame t_publish - t_capture (pacing and decode)
     audio_source   audio.chunk t_publish - capture time of its last sample
     face           face.tracks t_publish - t_capture of its frame (capture -> face.tracks out)
     vad            speech.audio t_publish - capture time of the piece's last sample
     asr            final speech.transcript t_publish - t_speech_end of its speech.vad end
     voice          voice.affect t_publish - t_end of its utterance (hangover included)
     text           text.affect t_publish - t_publish of the final transcript it scores
     fusion         affect.frame t_publish - t_publish of the same frame's face.tracks
     bus            every message: arrival at this subscriber - t_publish (proxy + TCP hop)
   Event latencies (speech.*, voice, text, affect.utterance) count utterances that end in the window;
   collection goes on up to TAIL_S after it for their results.
   End to end: capture -> affect.frame arrival here; the VAD's end (speech.vad ``t_end``, hangover
   included) and the end of speech (``t_speech_end``, the last voiced audio) -> the utterance's first
   affect.utterance (stage acoustic) and its final one, arrival here. Drops: video frames captured in the window (distinct
   ``frame_index``) against affect.frame and face.tracks frames; frames the source skipped
   (``frame_index`` gaps of video.frame); ``seq`` gaps per (source, topic) over the whole run.

2. Peers, one after the other on the same clip (the machine has 2 cores):
   * naive loop (tools/naive_loop.py): the same models in one process and one loop, paced at
     30 fps, and fed as fast as possible.
   * fer: ``FER().detect_emotions`` per frame, back to back, in .venv-fer-baseline
     (tools/fer_baseline.py, as tools/bench_face.py runs it). fer's ``Video`` class is not used:
     it needs pandas and moviepy, which that venv leaves out. fer is face only.
   Ratios are moodwire / peer: latency p50, fps, CPU (% of a core, and CPU-ms per video frame,
   which does not depend on the rate), RSS (moodwire: the sum over its processes, which counts
   shared pages once per process).

    .venv/bin/python -m tools.bench [--quick] [--seconds S] [--no-peers] [--json FILE] [--set KEY=VALUE ...]

The tables are GitHub markdown. Machines are noisy: compare ratios within one run. The last
stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .bench_affect import prepare
from .bench_face import run_fer
from .harness.json_tool import emit_result, run_json_tool, skipped
from .harness.launch import PipelineRun, log_tail
from .harness.memory import MemorySampler
from .harness.stats import cpu_share, index_gaps, ratio, seq_gaps, summary
from .media.speech_clip import FPS, LEAD_S

FULL_S, QUICK_S = 30.0, 8.0  # quick: 8 s holds at least one sentence's end (they come every 7.5 s)
STREAMS_S = 15.0  # --streams: each number of cameras, measured this long
WARMUP_S = 2.0
TAIL_S = 10.0  # longest wait after the window for its utterances' results (ASR is slow on a loaded machine)
GRACE_S = 90.0
RSS_EVERY_S = 1.0
NAIVE_START_S = LEAD_S - 1.0  # the naive loop starts just before the first sentence
NAIVE_FAST_S = 10.0  # media seconds the naive loop is fed as fast as it goes (it holds a sentence's end)
MS = 1e6

NODES = ("video_source", "audio_source", "face", "vad", "asr", "voice", "text", "fusion", "bus")
MAIN_TOPIC = {"video_source": "video.frame", "audio_source": "audio.chunk", "face": "face.tracks",
              "vad": "speech.audio", "asr": "speech.transcript", "voice": "voice.affect", "text": "text.affect",
              "fusion": "affect.frame", "bus": "(every topic)"}
LATENCY_RULES = {
    "video_source": "capture -> publish", "audio_source": "last sample -> publish",
    "face": "frame capture -> face.tracks", "vad": "piece's last sample -> speech.audio",
    "asr": "end of speech -> final transcript", "voice": "end of utterance -> voice.affect",
    "text": "final transcript -> text.affect", "fusion": "face.tracks -> affect.frame",
    "bus": "publish -> arrival at a TCP subscriber",
}


# ---------------------------------------------------------------- what the subscriber saw


@dataclass
class Record:
    """The header fields the figures need (never the arrays: frames are not kept)."""

    topic: str
    source: str
    seq: int
    t_capture: int
    t_publish: int
    t_receive: int
    key: int | None = None  # frame_index, chunk_index or utterance_id
    final: bool = False  # speech.vad end, final transcript or piece
    t_end: int = 0  # capture time the latency counts from, where it is not t_capture
    t_decided: int = 0  # speech.vad end: the VAD's end (hangover included), where t_end is the speech's


def record_of(topic: str, msg: Any, t_receive: int) -> Record:
    rec = Record(topic, msg.source, msg.seq, msg.t_capture, msg.t_publish, t_receive)
    rec.key = getattr(msg, "frame_index", getattr(msg, "chunk_index", getattr(msg, "utterance_id", None)))
    if topic in ("audio.chunk", "speech.audio"):
        rec.t_end = msg.t_capture + round(msg.samples.size * 1e9 / msg.sample_rate)
        rec.final = bool(getattr(msg, "final", False))
    elif topic == "speech.vad":
        rec.final, rec.t_end, rec.t_decided = msg.kind == "end", msg.t_speech_end, msg.t_end
    elif topic in ("speech.transcript", "text.affect"):
        rec.final, rec.t_end = msg.final, msg.t_end
    elif topic == "voice.affect":
        rec.final, rec.t_end = True, msg.t_end
    elif topic == "affect.utterance":  # final: the record with the words; the first one is stage acoustic
        rec.final, rec.t_end = msg.stage == "final", msg.t_end
    return rec


@dataclass
class Seen:
    """Everything one run's subscriber collected, by topic."""

    records: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    reported: set[str] = field(default_factory=set)  # nodes that sent system.node
    pids: dict[str, int] = field(default_factory=dict)  # from the latest system.health
    restarts: dict[str, int] = field(default_factory=dict)

    def add(self, topic: str, msg: Any, t_receive: int) -> None:
        if topic == "system.node":
            self.reported.add(msg.name)
        elif topic == "system.health":
            self.pids = {n.name: n.pid for n in msg.nodes if n.pid}
            self.restarts = {n.name: n.restarts for n in msg.nodes}
        if not topic.startswith("system."):
            self.records[topic].append(record_of(topic, msg, t_receive))

    def ready(self) -> bool:
        """Every node but the bus (which never reports) has reported, and frames flow to fusion."""
        nodes = set(self.pids) - {"bus"}
        return bool(nodes) and nodes <= self.reported and bool(self.records["face.tracks"]) \
            and bool(self.records["affect.frame"])

    def ended(self, window: tuple[int, int]) -> list[Record]:
        """speech.vad end events whose end of speech lies in the window."""
        return [r for r in self.records["speech.vad"] if r.final and window[0] <= r.t_end < window[1]]

    def settled(self, window: tuple[int, int]) -> bool:
        """Every utterance that ended in the window has its final transcript, voice, text and fused result."""
        topics = ("speech.transcript", "voice.affect", "text.affect", "affect.utterance")
        done = [{r.key for r in self.records[t] if r.final} for t in topics]
        return all(r.key in keys for r in self.ended(window) for keys in done)


def in_window(records: list[Record], window: tuple[int, int]) -> list[Record]:
    return [r for r in records if window[0] <= r.t_capture < window[1]]


def by_key(records: list[Record], final_only: bool = False) -> dict[int, Record]:
    """The first record per key (per frame or utterance)."""
    out: dict[int, Record] = {}
    for r in records:
        if not final_only or r.final:
            out.setdefault(r.key, r)
    return out


def node_latencies(seen: Seen, window: tuple[int, int]) -> dict[str, np.ndarray]:
    """Milliseconds per node, by LATENCY_RULES."""
    rec = seen.records
    win = {t: in_window(rs, window) for t, rs in rec.items()}
    ends = {r.key: r for r in seen.ended(window)}
    finals = by_key(rec["speech.transcript"], final_only=True)
    faces = by_key(rec["face.tracks"])

    def ms(pairs):
        return np.array([(a - b) / MS for a, b in pairs], dtype=np.float64)

    return {
        "video_source": ms((r.t_publish, r.t_capture) for r in win.get("video.frame", [])),
        "audio_source": ms((r.t_publish, r.t_end) for r in win.get("audio.chunk", [])),
        "face": ms((r.t_publish, r.t_capture) for r in win.get("face.tracks", [])),
        "vad": ms((r.t_publish, r.t_end) for r in win.get("speech.audio", [])),
        "asr": ms((finals[k].t_publish, e.t_end) for k, e in ends.items() if k in finals),
        "voice": ms((r.t_publish, r.t_end) for r in rec["voice.affect"] if r.key in ends),
        "text": ms((r.t_publish, finals[r.key].t_publish) for r in rec["text.affect"]
                   if r.final and r.key in ends and r.key in finals),
        "fusion": ms((r.t_publish, faces[r.key].t_publish) for r in win.get("affect.frame", []) if r.key in faces),
        "bus": ms((r.t_receive, r.t_publish) for rs in win.values() for r in rs),
    }


def node_rates(seen: Seen, window: tuple[int, int], seconds: float) -> dict[str, float]:
    """Messages per second of each node's main topic (the bus: of every topic) in the window."""
    counts = {t: len(in_window(rs, window)) for t, rs in seen.records.items()}
    rates = {n: round(counts.get(MAIN_TOPIC[n], 0) / seconds, 2) for n in NODES if n != "bus"}
    rates["bus"] = round(sum(counts.values()) / seconds, 1)
    return rates


def end_to_end(seen: Seen, window: tuple[int, int]) -> dict[str, Any]:
    """Frames from capture; utterances from the VAD's end and from the end of speech (the last voiced audio,
    ``vad.hangover_s`` earlier), to their first record (acoustic, or final where none came first) and final."""
    frames = in_window(seen.records["affect.frame"], window)
    ends = {r.key: r for r in seen.ended(window)}
    first: dict[int, Record] = {}
    for r in seen.records["affect.utterance"]:
        if r.key in ends:
            first.setdefault(r.key, r)
    final = [r for r in seen.records["affect.utterance"] if r.key in ends and r.final]
    return {"capture_to_affect_frame_ms": summary([(r.t_receive - r.t_capture) / MS for r in frames], 1),
            "vad_end_to_first_utterance_ms": summary([(r.t_receive - ends[r.key].t_decided) / MS
                                                      for r in first.values()], 1),
            "speech_end_to_first_utterance_ms": summary([(r.t_receive - ends[r.key].t_end) / MS
                                                         for r in first.values()], 1),
            "speech_end_to_affect_utterance_ms": summary([(r.t_receive - ends[r.key].t_end) / MS for r in final], 1),
            "utterances_ended": len(ends), "affect_utterances": len(final),
            "acoustic_first": sum(r.key in first and not r.final for r in first.values())}


def drops(seen: Seen, window: tuple[int, int]) -> dict[str, Any]:
    """Frames captured against frames analysed and fused; seq gaps per (source, topic), whole run."""
    frames = {r.key for r in in_window(seen.records["video.frame"], window)}
    fused = {r.key for r in in_window(seen.records["affect.frame"], window)}
    faced = {r.key for r in in_window(seen.records["face.tracks"], window)}
    streams: dict[str, list[int]] = defaultdict(list)
    for topic, records in seen.records.items():
        for r in records:
            streams[f"{r.source}/{topic}"].append(r.seq)
    gaps = {name: seq_gaps(seqs) for name, seqs in sorted(streams.items())}  # "lost": tools/harness/stats.py
    return {"video_frames": len(frames), "affect_frames": len(fused), "affect_frame_missing": len(frames - fused),
            "face_tracks": len(faced), "face_tracks_skipped": len(frames - faced),
            "source_skipped": index_gaps([r.key for r in in_window(seen.records["video.frame"], window)]),
            "seq_lost": sum(g.lost for g in gaps.values()),
            "seq_restarts": sum(g.restarts for g in gaps.values()),
            "seq_gaps": {k: {"lost": g.lost, "restarts": g.restarts} for k, g in gaps.items() if g.lost or g.restarts}}


# ---------------------------------------------------------------- processes


class ProcessMeter:
    """CPU over the window (psutil ``cpu_times`` at its start and end) and RSS (the harness's
    MemorySampler, sampled every RSS_EVERY_S) of the manager and every node process."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {}
        for name, pid in pids.items():
            try:
                self.procs[name] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass
        self.memory = MemorySampler(lambda: {name: proc.pid for name, proc in self.procs.items()})
        self.start = self._cpu()
        self.t_start = time.monotonic()
        self.end: dict[str, Any] = {}
        self.wall_s = 0.0
        self.stopped = False
        self.pss_mb: float | None = None

    def _cpu(self) -> dict[str, Any]:
        out = {}
        for name, proc in self.procs.items():
            try:
                out[name] = proc.cpu_times()
            except Exception:  # gone (crashed and restarted under a new pid): no figure for it
                out[name] = None
        return out

    def sample_rss(self) -> None:
        self.memory.sample()

    def stop(self) -> None:
        self.memory.sample()
        self.end, self.wall_s, self.stopped = self._cpu(), time.monotonic() - self.t_start, True
        self.pss_mb = self.memory.pss_mb()

    def figures(self) -> dict[str, dict[str, float | None]]:
        out = {}
        for name in self.procs:
            out[name] = {"cpu_percent": cpu_share(self.start.get(name), self.end.get(name), self.wall_s),
                         "rss_max_mb": self.memory.max_mb(name), "rss_end_mb": self.memory.last_mb(name)}
        cpus = [f["cpu_percent"] for f in out.values() if f["cpu_percent"] is not None]
        out["total"] = {"cpu_percent": round(sum(cpus), 1), "rss_max_mb": self.memory.max_mb("total"),
                        "rss_end_mb": self.memory.last_mb("total"), "pss_end_mb": self.pss_mb}
        return out


def observer_cpu() -> Any:
    import psutil

    return psutil.Process().cpu_times()


# ---------------------------------------------------------------- the pipeline run


def run_pipeline(media: Path, sets: list[str], seconds: float, clip_s: float) -> dict[str, Any]:
    """``moodwire run --source media``, watched until the window and its tail are in; then SIGINT."""
    seen, watch = Seen(), Watch(seconds)
    run = PipelineRun.start(["--source", str(media), "--quiet", *[a for s in sets for a in ("--set", s)]],
                            subscribe=[""])

    def done() -> bool:
        watch.tick(seen, run.proc.pid)
        return watch.done(seen)

    try:
        why = run.watch(lambda got: seen.add(got.topic, got.msg, got.t_receive), done, clip_s + GRACE_S, 0.1)
        watch.stopped_by = watch.stopped_by or why
        run.stop()
        text = run.output()
    finally:
        run.close()
    if watch.stopped_by != "window full":
        print(f"  stopped: {watch.stopped_by}; pipeline log tail:\n{log_tail(text)}", flush=True)
    return figures(seen, watch, run.malformed)


class Watch:
    """When the window opens and closes (monotonic ns, the clock of t_capture), and the meters."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.window: tuple[int, int] | None = None
        self.meter: ProcessMeter | None = None
        self.observer: tuple[Any, Any] = (None, None)
        self.next_rss = 0.0
        self.stopped_by = ""
        self.restarts_before: dict[str, int] = {}

    def tick(self, seen: Seen, manager_pid: int) -> None:
        now = time.monotonic_ns()
        if self.window is None and seen.ready():
            start = now + round(WARMUP_S * 1e9)
            self.window = (start, start + round(self.seconds * 1e9))
        if self.window is None:
            return
        if self.meter is None and now >= self.window[0]:
            self.meter = ProcessMeter({"manager": manager_pid, **seen.pids})
            self.observer = (observer_cpu(), None)
            self.restarts_before = dict(seen.restarts)
        if self.meter and not self.meter.stopped and time.monotonic() >= self.next_rss:
            self.meter.sample_rss()
            self.next_rss = time.monotonic() + RSS_EVERY_S
        if self.meter and not self.meter.stopped and now >= self.window[1]:
            self.meter.stop()
            self.observer = (self.observer[0], observer_cpu())

    def done(self, seen: Seen) -> bool:
        if not (self.meter and self.meter.stopped):
            return False
        late = time.monotonic_ns() - self.window[1]
        if late > 0.5e9 and (seen.settled(self.window) or late > TAIL_S * 1e9):
            self.stopped_by = "window full"
            return True
        return False


def figures(seen: Seen, watch: Watch, malformed: int) -> dict[str, Any]:
    if watch.window is None or watch.meter is None or not watch.meter.stopped:
        return {"stopped_by": watch.stopped_by, "window_s": 0.0, "nodes": {}, "error": "the window never closed"}
    window, meter = watch.window, watch.meter
    procs = meter.figures()
    lat = node_latencies(seen, window)
    rates = node_rates(seen, window, watch.seconds)
    nodes = {n: {"topic": MAIN_TOPIC[n], "rate_hz": rates[n], "latency_rule": LATENCY_RULES[n],
                 "latency_ms": summary(lat[n], 1), "pid": seen.pids.get(n),
                 **procs.get(n, {"cpu_percent": None, "rss_max_mb": None, "rss_end_mb": None})}
             for n in NODES if n in seen.pids}
    restarts = {n: seen.restarts.get(n, 0) - watch.restarts_before.get(n, 0) for n in seen.restarts}
    return {"stopped_by": watch.stopped_by, "window_s": watch.seconds, "nodes": nodes,
            "manager": procs.get("manager"), "total": procs["total"], "end_to_end": end_to_end(seen, window),
            "drops": drops(seen, window), "restarts_in_window": {n: k for n, k in restarts.items() if k},
            "observer_cpu_percent": cpu_share(*watch.observer, meter.wall_s), "malformed": malformed}


# ---------------------------------------------------------------- peers


def run_naive(mkv: Path, wav: Path, seconds: float) -> dict[str, Any]:
    """tools/naive_loop.py in its own process (its RSS is then its models' alone)."""
    return run_json_tool([sys.executable, "-m", "moodwire.tools.naive_loop", str(mkv), str(wav),
                          "--start", str(NAIVE_START_S), "--paced-s", str(seconds),
                          "--fast-s", str(min(seconds, NAIVE_FAST_S))])


def run_fer_peer(mkv: Path, seconds: float) -> dict[str, Any]:
    """fer on the clip's first ``seconds`` of frames (the face is in view throughout)."""
    return run_fer([str(mkv), "--frames", str(round(seconds * FPS))])


def cpu_ms_per_frame(cpu_percent: float | None, fps: float | None) -> float | None:
    """CPU time per video frame: % of a core at a frame rate -> core-milliseconds per frame."""
    return round(cpu_percent * 10.0 / fps, 1) if cpu_percent is not None and fps else None


def comparison_rows(pipe: dict[str, Any], naive: dict[str, Any], fer: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per contender: what it is, p50/p99 latency, fps, CPU, CPU per frame, RSS, dropped frames."""
    e2e = pipe.get("end_to_end", {}).get("capture_to_affect_frame_ms", {})
    fps = pipe.get("nodes", {}).get("fusion", {}).get("rate_hz")
    cpu = pipe.get("total", {}).get("cpu_percent")
    rows = [{"name": "moodwire pipeline, paced 30 fps", "latency": "capture -> affect.frame at a subscriber",
             "p50_ms": e2e.get("p50"), "p99_ms": e2e.get("p99"), "fps": fps, "cpu_percent": cpu,
             "cpu_ms_per_frame": cpu_ms_per_frame(cpu, fps), "rss_mb": pipe.get("total", {}).get("rss_max_mb"),
             "dropped": pipe.get("drops", {}).get("affect_frame_missing")}]
    if naive.get("status") == "ran":
        rss = max(x for x in (naive["paced"]["rss_max_mb"], naive["fast"]["rss_max_mb"]) if x is not None)
        for mode, label, rule in (("paced", "naive loop, paced 30 fps", "capture -> affect.frame"),
                                  ("fast", "naive loop, as fast as it goes", "wall time per frame")):
            r = naive[mode]
            rows.append({"name": label, "latency": rule, "p50_ms": r["frame_latency_ms"]["p50"],
                         "p99_ms": r["frame_latency_ms"]["p99"], "fps": r["fps"], "cpu_percent": r["cpu_percent"],
                         "cpu_ms_per_frame": cpu_ms_per_frame(r["cpu_percent"], r["fps"]), "rss_mb": rss,
                         "dropped": r["dropped_frames"]})
    if fer.get("status") == "ran":
        rows.append({"name": "fer FER().detect_emotions, back to back (face only)", "latency": "wall time per call",
                     "p50_ms": fer["latency_ms"]["p50"], "p99_ms": fer["latency_ms"]["p99"], "fps": fer["fps"],
                     "cpu_percent": fer.get("cpu_percent"),
                     "cpu_ms_per_frame": cpu_ms_per_frame(fer.get("cpu_percent"), fer["fps"]),
                     "rss_mb": fer.get("rss_peak_mb"), "dropped": None})
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """moodwire (the first row) / each peer, per measure."""
    ours = rows[0]
    keys = ("p50_ms", "fps", "cpu_percent", "cpu_ms_per_frame", "rss_mb")
    return [{"peer": r["name"], **{k: ratio(ours[k], r[k]) for k in keys}} for r in rows[1:]]


# ---------------------------------------------------------------- report


def cell(value: Any) -> str:
    """Numbers as people read them: three significant figures or so, ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == int(value) or abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def markdown(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table; columns of numbers right-aligned."""
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("---:" if num else "---" for num in numeric) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def node_table(pipe: dict[str, Any]) -> str:
    rows = []
    for name, n in pipe["nodes"].items():
        lat = n["latency_ms"]
        rows.append([name, f"`{n['topic']}`", n["rate_hz"], lat["p50"], lat["p99"], lat["n"], n["latency_rule"],
                     n["cpu_percent"], n["rss_max_mb"], n["rss_end_mb"]])
    for name in ("manager", "total"):
        p = pipe[name] or {}
        rows.append([f"**{name}**" if name == "total" else name, "", None, None, None, None, "",
                     p.get("cpu_percent"), p.get("rss_max_mb"), p.get("rss_end_mb")])
    return markdown(["node", "main topic", "rate /s", "p50 ms", "p99 ms", "n", "latency is", "CPU % core",
                     "RSS max MB", "RSS end MB"], rows)


def flow_table(pipe: dict[str, Any]) -> str:
    e2e, d = pipe["end_to_end"], pipe["drops"]
    frame, utt = e2e["capture_to_affect_frame_ms"], e2e["speech_end_to_affect_utterance_ms"]
    vad1, first = e2e["vad_end_to_first_utterance_ms"], e2e["speech_end_to_first_utterance_ms"]
    rows = [["capture -> `affect.frame` at a subscriber (ms)", f"p50 {cell(frame['p50'])}, p99 {cell(frame['p99'])}"
             f" (n={frame['n']})"],
            ["VAD's end -> first `affect.utterance` (stage acoustic) at a subscriber (ms)",
             f"p50 {cell(vad1['p50'])}, p99 {cell(vad1['p99'])} (n={vad1['n']}, {e2e['acoustic_first']} acoustic)"],
            ["end of speech (last voiced audio) -> first `affect.utterance` (ms)",
             f"p50 {cell(first['p50'])}, p99 {cell(first['p99'])} (n={first['n']})"],
            ["end of speech -> final `affect.utterance` (with the words) (ms)",
             f"p50 {cell(utt['p50'])}, p99 {cell(utt['p99'])} (n={utt['n']} of {e2e['utterances_ended']} ended)"],
            ["video frames captured in the window", d["video_frames"]],
            ["... without `affect.frame`", d["affect_frame_missing"]],
            ["... skipped by the face node (no `face.tracks`)", d["face_tracks_skipped"]],
            ["... skipped by the source (late > 0.5 s)", d["source_skipped"]],
            ["messages lost by `seq` gaps, any topic (whole run)", d["seq_lost"]],
            ["node restarts in the window", sum(pipe["restarts_in_window"].values())]]
    return markdown(["end to end and drops", "value"], rows)


def peer_table(rows: list[dict[str, Any]], notes: list[str]) -> str:
    table = markdown(["run", "latency is", "p50 ms", "p99 ms", "fps", "CPU % core", "CPU ms/frame", "RSS MB",
                      "dropped frames"],
                     [[r["name"], r["latency"], r["p50_ms"], r["p99_ms"], r["fps"], r["cpu_percent"],
                       r["cpu_ms_per_frame"], r["rss_mb"], r["dropped"]] for r in rows])
    return "\n".join([table, *[f"\n{n}" for n in notes]])


def ratio_table(rows: list[dict[str, Any]]) -> str:
    return markdown(["moodwire / peer", "p50 latency", "fps", "CPU % core", "CPU ms/frame", "RSS"],
                    [[r["peer"], r["p50_ms"], r["fps"], r["cpu_percent"], r["cpu_ms_per_frame"], r["rss_mb"]]
                     for r in rows])


def print_report(pipe: dict[str, Any], peers: dict[str, Any], rows: list, ratio_rows: list) -> None:
    print(f"\n### moodwire pipeline, {pipe['window_s']:.0f} s window ({pipe['stopped_by']})\n")
    print(node_table(pipe))
    print("\nRate: messages of the main topic with capture time in the window, per second. CPU: user+system "
          "time of the process over the window, % of one core. RSS: sampled every second; total = sum over "
          f"processes (shared pages counted in each); PSS total at the end (shared pages split): "
          f"{cell(pipe['total'].get('pss_end_mb'))} MB. Observer (this bench) CPU: "
          f"{cell(pipe['observer_cpu_percent'])} %.\n")
    print(flow_table(pipe))
    print("\n### peers, same clip, one after the other\n")
    notes = [f"{name}: {p['status']} ({p.get('reason', '')})" + (f"; set it up with `{p['setup']}`" if "setup" in p
                                                                   else "")
             for name, p in peers.items() if p.get("status") != "ran"]
    print(peer_table(rows, notes))
    if ratio_rows:
        print("\nmoodwire / peer (latency, CPU, RSS: < 1 is better for moodwire; fps: > 1 is):\n")
        print(ratio_table(ratio_rows))


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a {QUICK_S:.0f} s window instead of {FULL_S:.0f} s, and no fer peer")
    parser.add_argument("--seconds", type=float, default=None, help="window length in seconds of capture time")
    parser.add_argument("--no-peers", action="store_true", help="only the pipeline")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for the pipeline run (repeatable)")
    parser.add_argument("--streams", type=int, default=None, metavar="N",
                        help="instead: 1 to N 640x480 30 fps cameras into one server (tools/bench_streams.py)")
    args = parser.parse_args(argv)
    if args.streams is not None and args.streams < 1:
        parser.error(f"--streams must be at least 1, got {args.streams}")
    if args.seconds is not None and args.seconds <= 0:
        parser.error(f"--seconds must be positive, got {args.seconds}")
    return args


def run_peers(args: argparse.Namespace, mkv: Path, wav: Path, seconds: float) -> dict[str, Any]:
    if args.no_peers:
        return {"naive loop": skipped("--no-peers"), "fer": skipped("--no-peers")}
    print("peer: naive loop (tools/naive_loop.py)", flush=True)
    naive = run_naive(mkv, wav, seconds)
    if args.quick:
        return {"naive loop": naive, "fer": skipped("--quick leaves the fer peer out (TensorFlow takes a while)")}
    print("peer: fer (tools/fer_baseline.py in .venv-fer-baseline)", flush=True)
    return {"naive loop": naive, "fer": run_fer_peer(mkv, seconds)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.streams is not None:
        return main_streams(args)
    seconds, host, command, wav, mkv, clip_s = prepare(args, QUICK_S, FULL_S)
    pipe = run_pipeline(mkv, args.set, seconds, clip_s)
    if not pipe["nodes"]:
        print(json.dumps({"tool": "bench", "command": command, "machine": host, "pipeline": pipe}))
        return 1
    peers = run_peers(args, mkv, wav, seconds)
    rows = comparison_rows(pipe, peers["naive loop"], peers["fer"])
    ratio_rows = ratios(rows)
    print_report(pipe, peers, rows, ratio_rows)
    result = {"tool": "bench", "command": command, "machine": host, "clip": mkv.name, "clip_s": round(clip_s, 1),
              "window_s": seconds, "pipeline": pipe, "peers": peers, "comparison": rows, "ratios": ratio_rows}
    emit_result(result, args.json)
    return 0


def main_streams(args: argparse.Namespace) -> int:
    from moodwire.tools.bench_streams import measure, table
    from moodwire.tools.harness.machine import announce

    host, command = announce()
    seconds = args.seconds or (QUICK_S if args.quick else STREAMS_S)
    rows = measure(args.streams, seconds)
    print(table(rows))
    emit_result({"tool": "bench", "command": command, "machine": host, "window_s": seconds, "streams": rows},
                args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
