"""Soak (tools/soak.py): its figures from records, and a short soak of the real pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_tool

soak = load_tool("soak")
faults = load_tool("faults")
ROOT = Path(__file__).resolve().parents[1]


def test_seq_gaps_count_jumps_as_lost_and_steps_back_as_restarts():
    gaps = soak.seq_gaps([5, 6, 7, 10, 11, 0, 1, 3])
    assert (gaps.received, gaps.lost, gaps.resets) == (8, 3, 1)  # 8 and 9 lost, restart at 0, 2 lost
    assert soak.seq_gaps([]).lost == 0 and soak.seq_gaps([40, 41]).lost == 0  # joining late loses nothing


def test_event_losses_are_kept_per_topic_and_publisher():
    recs = [faults.Seen(i, topic, source, seq) for i, (topic, source, seq) in enumerate([
        ("speech.vad", "vad", 0), ("affect.utterance", "fusion", 3), ("speech.vad", "vad", 2),
        ("affect.utterance", "fusion", 4), ("video.frame", "video_source", 9)])]
    got = soak.event_losses(recs, ["speech.vad", "affect.utterance"])
    assert {k: g.lost for k, g in got.items()} == {"speech.vad/vad": 1, "affect.utterance/fusion": 0}
    assert set(soak.event_topics()) >= {"audio.chunk", "speech.vad", "speech.audio", "speech.transcript",
                                        "affect.utterance"}
    assert not {"video.frame", "affect.frame", "system.health"} & set(soak.event_topics())


def test_memory_growth_compares_medians_after_warm_up_and_ignores_the_warm_up():
    assert soak.windows(600) == (60.0, 60.0) and soak.windows(45) == (9.0, 11.25)
    loading = [(t, 50e6 + t * 1e6) for t in range(0, 60)]  # grows while loading: ignored
    flat = [(t, 110e6 + (t % 3) * 1e5) for t in range(60, 601)]
    g = soak.memory_growth(loading + flat, 600)
    assert g.ok and abs(g.growth) < 0.01 and g.first_mb == pytest.approx(110e6 / 2**20, abs=0.2)
    leaking = [(t, 100e6 * (1 + 0.0002 * t)) for t in range(0, 601)]  # +0.02 % a second: ~10 % over the run
    g = soak.memory_growth(leaking, 600)
    assert not g.ok and 0.08 < g.growth < 0.12
    assert soak.memory_growth([(1.0, 1e6)], 600).growth is None  # too few samples: not "ok"


def test_frame_drops_count_missing_indices_against_the_video_frames_received():
    recs = [faults.Seen(i * 33, "video.frame", "video_source", i, index=i) for i in range(10) if i != 4]
    recs += [faults.Seen(i * 33 + 5, "face.tracks", "face", i, index=i) for i in range(0, 10, 2)]
    recs += [faults.Seen(i * 33 + 9, "affect.frame", "fusion", i, index=i) for i in range(10)]
    got = soak.frame_drops(recs, 0, 10_000)
    assert got["video.frame"] == {"expected": 10, "received": 9, "drop_rate": 0.1}
    assert got["face.tracks"] == {"expected": 9, "received": 4, "drop_rate": round(1 - 4 / 9, 4)}  # 0,2,6,8
    assert got["affect.frame"]["drop_rate"] == 0.0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_short_soak_keeps_memory_flat_loses_no_event_and_reports_frame_drops(session_cache, face_models):
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "soak.py"), "--minutes", "0.75"],
                         capture_output=True, text=True, timeout=230)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] and out.returncode == 0, out.stdout[-4000:]
    assert set(result["memory"]) >= {"manager", "bus", "face", "asr", "fusion", "total"}
    assert all(abs(m["growth"]) <= 0.05 for m in result["memory"].values())
    assert result["events"]["affect.utterance/fusion"]["received"] >= 2  # a sentence every 7.5 s
    assert all(e["lost"] == 0 for e in result["events"].values())
    video = result["frames"]["video.frame"]
    assert video["expected"] >= 0.9 * 45 * 30 and result["frames"]["affect.frame"]["drop_rate"] is not None
    assert "| frame topic | expected | received | dropped |" in out.stdout
