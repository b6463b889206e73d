"""Speed and memory of ``moodwire analyze`` against the hand-written loop and the live run, in one run.

The clip: the benchmarks' talking clip (tools/media/speech_clip.py: the real carphone face at 640x480,
30 fps, under espeak-ng sentences). Three contenders, one after another on the same machine:

* ``moodwire analyze`` (every node on, lossless): its ``summary.json``: speed over the whole run (model
  loading included) and once the models are loaded; peak resident memory of its process tree (the
  manager, in the analyze process, and every node), sampled every 0.2 s;
* ``tools/naive_loop.py``, fast pass: the same models in one process and one loop, frames back to back
  over the whole clip (models loaded first, not counted);
* ``moodwire run --source CLIP`` in real time: its peak resident memory, the live figure the lossless
  run must not exceed.

    .venv/bin/python -m tools.bench_analyze [--sentences N]

Prints a Markdown table and, as the last line, one JSON object. Figures vary with the machine's load:
compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .harness.json_tool import run_json_tool
from .harness.machine import machine
from .harness.memory import MemorySampler
from .media.speech_clip import make_media

SAMPLE_S = 0.2


def tree_peak_mb(command: list[str], timeout_s: float, log: Path) -> tuple[int, float, float]:
    """Run ``command`` (its stderr into ``log``); (exit code, wall seconds, peak total RSS of it and its
    descendants, MB)."""
    import psutil

    started = time.monotonic()
    with log.open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    root = psutil.Process(proc.pid)

    def pids() -> dict[str, int]:
        try:
            return {str(p.pid): p.pid for p in [root, *root.children(recursive=True)]}
        except psutil.NoSuchProcess:
            return {}

    sampler = MemorySampler(pids).start(SAMPLE_S)
    try:
        code = proc.wait(timeout=timeout_s)
    finally:
        sampler.stop()
        if proc.poll() is None:
            proc.kill()
    return code, time.monotonic() - started, sampler.max_mb("total") or 0.0


def failed(code: int, log: Path) -> dict[str, Any]:
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("moodwire")][-3:]
    return {"status": "failed", "reason": f"exit {code}: {' | '.join(tail)}"}


def run_analyze(mkv: Path, out: Path) -> dict[str, Any]:
    log = out / "analyze.log"
    code, wall, peak = tree_peak_mb([sys.executable, "-m", "moodwire.pipeline.runtime.cli", "analyze", str(mkv),
                                     "--out", str(out), "--quiet"], 1800, log)
    if code != 0:
        return failed(code, log)
    summary = json.loads((out / mkv.stem / "summary.json").read_text())
    keep = ("duration_s", "frames_in_file", "frames_analysed", "utterances", "wall_s", "speed_x", "processing_s",
            "processing_speed_x")
    return {"status": "ran", **{k: summary[k] for k in keep}, "rss_peak_mb": round(peak, 1), "command_wall_s": wall}


def run_live(mkv: Path, seconds: float, folder: Path) -> dict[str, Any]:
    log = folder / "live.log"
    code, wall, peak = tree_peak_mb([sys.executable, "-m", "moodwire.pipeline.runtime.cli", "run", "--quiet",
                                     "--source", str(mkv), "--set", "bus.public=tcp://127.0.0.1:5597"],
                                    seconds + 300, log)
    if code != 0:
        return failed(code, log)
    return {"status": "ran", "rss_peak_mb": round(peak, 1), "wall_s": round(wall, 1)}


def rows(analyze: dict[str, Any], naive: dict[str, Any], live: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(contender, speed as a multiple of real time, what the speed counts, peak RSS)."""
    out = []
    if analyze.get("status") == "ran":
        out.append(("moodwire analyze (processes, lossless)", f"{analyze['processing_speed_x']:.2f}x",
                    "once the models are loaded", f"{analyze['rss_peak_mb']:.0f} MB"))
        out.append(("moodwire analyze, the whole command", f"{analyze['speed_x']:.2f}x",
                    "model loading included", ""))
    if naive.get("status") == "ran":
        fast = naive["fast"]
        out.append(("naive loop (one process), as fast as it goes", f"{fast['fps'] / 30:.2f}x",
                    "models loaded first", f"{naive['rss_peak_mb']:.0f} MB"))
    if live.get("status") == "ran":
        out.append(("moodwire run --source (real time)", "1.00x", "paced by the clip", f"{live['rss_peak_mb']:.0f} MB"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=4, help="sentences in the clip (about 7.5 s each)")
    args = parser.parse_args(argv)
    wav, mkv, _, seconds = make_media(args.sentences)
    print(f"clip: {mkv.name}, {seconds:.1f} s; analyze ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as folder:
        analyze = run_analyze(mkv, Path(folder))
        print("naive loop ...", file=sys.stderr, flush=True)
        naive = run_json_tool([sys.executable, "-m", "moodwire.tools.naive_loop", str(mkv), str(wav), "--start", "0",
                               "--paced-s", "1", "--fast-s", str(int(seconds))], timeout_s=1800)
        print("live run ...", file=sys.stderr, flush=True)
        live = run_live(mkv, seconds, Path(folder))
    table = rows(analyze, naive, live)
    print("| contender | speed (x real time) | counted | peak RSS |\n| --- | --- | --- | --- |")
    for row in table:
        print("| " + " | ".join(row) + " |")
    ratio = (analyze["processing_speed_x"] / (naive["fast"]["fps"] / 30)
             if analyze.get("status") == "ran" and naive.get("status") == "ran" else None)
    print(f"\nanalyze / naive loop throughput: {ratio:.2f}" if ratio else "\n(no ratio: a contender failed)")
    print(json.dumps({"tool": "bench_analyze", "machine": machine(), "clip_s": round(seconds, 2),
                      "analyze": analyze, "naive": naive, "live": live, "analyze_over_naive": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
