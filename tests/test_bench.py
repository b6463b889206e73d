"""tools/bench.py (``python -m tools.bench``): its figures from the real pipeline and the naive peer,
and the pure functions they are computed with. Not a timing test: ranges only say the numbers mean
what the table says (a rate near the clip's, a latency that is positive and ordered, a CPU share
that two cores can give)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moodwire.pipeline.sources.spoken import espeak_available
from moodwire.tools import bench as bench_tool

ROOT = Path(__file__).resolve().parents[1]
needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (the clip's speech)")
FRAME_NODES = ("video_source", "face", "fusion")
SPEECH_NODES = ("vad", "asr", "voice", "text")


@pytest.fixture(scope="module")
def bench():
    return bench_tool


# ---------------------------------------------------------------- pure functions (the harness's own: test_harness.py)


def record(bench, topic, t_capture, t_publish, key, seq, source="n", final=False, t_end=0, t_receive=None):
    return bench.Record(topic, source, seq, t_capture, t_publish, t_receive or t_publish + 1_000_000, key, final, t_end)


def test_drops_compare_captured_frames_with_fused_and_analysed_ones(bench):
    ms = 1_000_000
    seen = bench.Seen()
    frames = [i for i in range(10) if i != 4]  # the source skipped frame 4
    for seq, i in enumerate(frames):
        seen.records["video.frame"].append(record(bench, "video.frame", i * 33 * ms, i * 33 * ms, i, seq, "video_source"))
    for seq, i in enumerate(i for i in frames if i != 6):  # the face node skipped frame 6
        seen.records["face.tracks"].append(record(bench, "face.tracks", i * 33 * ms, i * 33 * ms + 15 * ms, i, seq, "face"))
    for seq, i in enumerate(i for i in frames if i not in (6, 8)):  # and seq 3 of affect.frame was lost
        seen.records["affect.frame"].append(record(bench, "affect.frame", i * 33 * ms, i * 33 * ms + 17 * ms, i,
                                                   seq + (seq >= 3), "fusion"))
    d = bench.drops(seen, (0, 10 * 33 * ms))
    assert d["video_frames"] == 9 and d["source_skipped"] == 1
    assert d["face_tracks_skipped"] == 1 and d["affect_frame_missing"] == 2
    assert d["seq_lost"] == 1 and list(d["seq_gaps"]) == ["fusion/affect.frame"]


def test_node_latencies_join_each_output_with_what_it_derives_from(bench):
    ms, s = 1_000_000, 1_000_000_000
    seen = bench.Seen()
    seen.records["face.tracks"].append(record(bench, "face.tracks", 1 * s, 1 * s + 20 * ms, 30, 0))
    seen.records["affect.frame"].append(record(bench, "affect.frame", 1 * s, 1 * s + 23 * ms, 30, 0))
    seen.records["speech.vad"].append(record(bench, "speech.vad", 2 * s, 5 * s, 77, 0, final=True, t_end=4 * s))
    seen.records["speech.transcript"].append(record(bench, "speech.transcript", 2 * s, 4 * s + 900 * ms, 77, 0,
                                                    final=True, t_end=4 * s))
    seen.records["text.affect"].append(record(bench, "text.affect", 2 * s, 4 * s + 930 * ms, 77, 0, final=True))
    seen.records["voice.affect"].append(record(bench, "voice.affect", 4 * s, 4 * s + 600 * ms, 77, 0, t_end=4 * s))
    lat = bench.node_latencies(seen, (0, 10 * s))
    assert lat["face"].tolist() == [20.0]  # capture -> face.tracks
    assert lat["fusion"].tolist() == [3.0]  # face.tracks -> affect.frame
    assert lat["asr"].tolist() == [900.0]  # end of speech -> final transcript
    assert lat["text"].tolist() == [30.0]  # final transcript -> text.affect
    assert lat["voice"].tolist() == [600.0]
    assert lat["bus"].size == 6 and np.allclose(lat["bus"], 1.0)
    assert bench.node_latencies(seen, (6 * s, 10 * s))["asr"].size == 0  # that utterance ended before the window


def test_comparison_rows_and_ratios_are_moodwire_over_each_peer(bench):
    pipe = {"end_to_end": {"capture_to_affect_frame_ms": {"p50": 20.0, "p99": 40.0}},
            "nodes": {"fusion": {"rate_hz": 30.0}}, "total": {"cpu_percent": 90.0, "rss_max_mb": 1000.0},
            "drops": {"affect_frame_missing": 0}}
    naive_pass = {"frame_latency_ms": {"p50": 10.0, "p99": 500.0}, "fps": 25.0, "cpu_percent": 60.0,
                  "rss_max_mb": 500.0, "dropped_frames": 12}
    naive = {"status": "ran", "paced": naive_pass, "fast": {**naive_pass, "fps": 50.0, "cpu_percent": 100.0}}
    fer = {"status": "ran", "latency_ms": {"p50": 40.0, "p99": 60.0}, "fps": 20.0, "cpu_percent": 120.0,
           "rss_peak_mb": 800.0}
    rows = bench.comparison_rows(pipe, naive, fer)
    assert [r["name"].split(",")[0] for r in rows] == ["moodwire pipeline", "naive loop", "naive loop",
                                                     "fer FER().detect_emotions"]
    assert rows[0]["cpu_ms_per_frame"] == 30.0  # 90 % of a core at 30 fps
    ratios = bench.ratios(rows)
    assert ratios[0] == {"peer": rows[1]["name"], "p50_ms": 2.0, "fps": 1.2, "cpu_percent": 1.5,
                         "cpu_ms_per_frame": 1.25, "rss_mb": 2.0}
    assert ratios[2]["fps"] == 1.5 and ratios[2]["cpu_ms_per_frame"] == 0.5
    assert bench.comparison_rows(pipe, {"status": "skipped"}, {"status": "failed"}) == rows[:1]


def test_markdown_table_has_one_header_rule_and_right_aligned_numbers(bench):
    table = bench.markdown(["node", "rate /s", "p50 ms"], [["face", 29.97, None], ["bus", 144.6, 0.6]])
    lines = table.splitlines()
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| face | 30.0 | - |" and lines[3] == "| bus | 145 | 0.60 |"
    assert all(line.count("|") == 4 for line in lines)


# ---------------------------------------------------------------- the real run


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, face_models):
    out_json = tmp_path_factory.mktemp("bench") / "bench.json"
    out = subprocess.run([sys.executable, "-m", "tools.bench", "--quick", "--json", str(out_json)], cwd=ROOT,
                         capture_output=True, text=True, timeout=170, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout, json.loads(out_json.read_text())


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_espeak
def test_quick_run_prints_one_table_with_every_node_and_sane_figures(quick_run, bench):
    stdout, summary = quick_run
    assert stdout.startswith("machine: ")
    assert json.loads(stdout.strip().splitlines()[-1]) == summary  # the last line is the same JSON
    pipe = summary["pipeline"]
    assert pipe["stopped_by"] == "window full", stdout[-3000:]
    for node in bench.NODES:
        assert f"\n| {node} | `" in stdout, node  # a markdown row per node
        figures = pipe["nodes"][node]
        assert 0 < figures["cpu_percent"] < 200, (node, figures)  # two cores at most
        assert 10 < figures["rss_max_mb"] < 3000, (node, figures)
        lat = figures["latency_ms"]
        assert lat["n"] >= 1 and 0 < lat["p50"] <= lat["p99"], (node, lat, pipe["end_to_end"])
    # rates: messages with capture time in the window, so never above the clip's (30 fps, 50 chunks/s);
    # whether the pipeline keeps up with them is the benchmark's verdict, not a test's
    for node in FRAME_NODES:
        assert 0 < pipe["nodes"][node]["rate_hz"] <= 30, (node, pipe["nodes"][node])
    assert 0 < pipe["nodes"]["audio_source"]["rate_hz"] <= 50
    assert pipe["nodes"]["bus"]["rate_hz"] > pipe["nodes"]["video_source"]["rate_hz"]  # it carries every topic
    assert pipe["nodes"]["face"]["latency_ms"]["p50"] < pipe["end_to_end"]["capture_to_affect_frame_ms"]["p50"]
    for node in SPEECH_NODES:
        assert pipe["nodes"][node]["rate_hz"] > 0, node  # an utterance ends in any 8 s of the clip
    total = pipe["total"]
    assert total["cpu_percent"] >= max(n["cpu_percent"] for n in pipe["nodes"].values())
    assert total["rss_max_mb"] >= sum(n["rss_max_mb"] for n in pipe["nodes"].values()) * 0.9
    assert 0 < total["pss_end_mb"] <= total["rss_end_mb"]

    e2e = pipe["end_to_end"]
    assert 0 < e2e["capture_to_affect_frame_ms"]["p50"] <= e2e["capture_to_affect_frame_ms"]["p99"]
    assert e2e["speech_end_to_affect_utterance_ms"]["n"] >= 1
    drops = pipe["drops"]
    # 8 s of capture time at 30 fps: the frames that came plus those the source skipped as too late
    assert abs(drops["video_frames"] + drops["source_skipped"] - 240) <= 24
    assert 0 <= drops["affect_frame_missing"] < drops["video_frames"] and drops["seq_lost"] >= 0


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_espeak
def test_quick_run_compares_with_the_naive_loop_and_says_why_fer_is_left_out(quick_run):
    stdout, summary = quick_run
    naive, fer = summary["peers"]["naive loop"], summary["peers"]["fer"]
    assert naive["status"] == "ran", naive
    paced, fast = naive["paced"], naive["fast"]
    assert paced["frames"] + paced["dropped_frames"] == 240  # every frame of 8 s at 30 fps handled or dropped
    assert 0 < paced["frame_latency_ms"]["p50"] <= paced["frame_latency_ms"]["p99"]
    assert paced["transcripts"], "the naive loop's paced pass holds the end of the first sentence"
    assert fast["fps"] > 0 and fast["cpu_percent"] > 0 and paced["rss_max_mb"] > 100
    assert fer["status"] == "skipped" and "--quick" in fer["reason"]
    assert "fer: skipped (--quick" in stdout
    names = [r["peer"] for r in summary["ratios"]]
    assert names == ["naive loop, paced 30 fps", "naive loop, as fast as it goes"]
    for row in summary["ratios"]:
        assert all(row[k] > 0 for k in ("p50_ms", "fps", "cpu_percent", "cpu_ms_per_frame", "rss_mb")), row
    assert "| moodwire / peer |" in stdout
