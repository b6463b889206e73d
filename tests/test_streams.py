"""Two cameras into one server, as real processes on this machine: the server runs the bus and one
face, VAD, voice and fusion node for both; each camera is a host of its own joined to the bus over
loopback (``moodwire run --nodes ... --bus`` with ``sources.stream``), cam1 with its microphone.
Each stream's messages come on its own topics, with its own tracks, and a client can take one stream.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from moodwire.tools.harness.launch import PipelineRun, free_port
from tests.conftest import MOODWIRE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_cameras(session_cache):
    ingest = f"tcp://127.0.0.1:{free_port()}"
    server = PipelineRun.start(["--quiet", "--nodes", "bus,face,vad,voice,fusion", "--set", "nodes.asr=false",
                                "--set", "nodes.text=false", "--set", "bus.host=server",
                                "--set", f"bus.ingest={ingest}"],
                               subscribe=["affect.", "face.tracks", "audio.chunk", "system.health"])
    cameras = []
    try:
        for k, audio in ((1, "sample"), (2, "none")):
            cameras.append(PipelineRun.start([
                "--quiet", "--nodes", "video_source" + (",audio_source" if audio != "none" else ""),
                "--bus", server.endpoint, "--set", f"bus.join_ingest={ingest}", "--set", f"bus.host=cam{k}",
                "--set", f"sources.stream=cam{k}", "--set", "sources.video=sample", "--set", f"sources.audio={audio}"]))
        yield server
    finally:
        for run in [*cameras, server]:
            run.stop()
            run.close()


def test_each_camera_is_a_stream_with_its_own_topics_tracks_and_health(two_cameras):
    topics: dict[str, list] = {}
    health = None

    def take(got) -> None:
        nonlocal health
        if got.name == "system.health":
            health = got.msg
        else:
            topics.setdefault(got.topic, []).append(got.msg)

    def both_fused() -> bool:
        return all(any(f.persons and f.frame_index >= 0 for f in topics.get(f"affect.frame@{s}", []))
                   for s in ("cam1", "cam2"))

    assert two_cameras.watch(take, both_fused, timeout_s=180) == "done", two_cameras.output()[-3000:]
    two_cameras.watch(take, timeout_s=3)
    assert not [t for t in topics if t.split("@")[0] in ("affect.frame", "face.tracks") and "@" not in t]
    assert "audio.chunk@cam1" in topics and "audio.chunk@cam2" not in topics
    for stream in ("cam1", "cam2"):
        tracks = {f.track_id for m in topics[f"face.tracks@{stream}"] for f in m.faces}
        assert tracks and min(tracks) == 1, (stream, tracks)  # each stream counts its own tracks
        assert len(topics[f"affect.frame@{stream}"]) >= 30
    sources = {(n.host, n.name, n.stream) for n in health.nodes if n.name.endswith("_source")}
    assert sources == {("cam1", "video_source", "cam1"), ("cam1", "audio_source", "cam1"),
                       ("cam2", "video_source", "cam2")}
    assert {n.name for n in health.nodes if n.host == "server"} == {"bus", "face", "vad", "voice", "fusion"}


def test_a_client_takes_one_stream(two_cameras):
    done = subprocess.run([*MOODWIRE, "listen", "", "--stream", "cam2", "--json", "--duration", "3",
                           "--endpoint", two_cameras.endpoint], capture_output=True, text=True, timeout=60)
    got = [json.loads(line)["topic"] for line in done.stdout.splitlines()]
    assert "affect.frame@cam2" in got and "video.frame@cam2" in got and "system.health" in got
    assert not [t for t in got if "@" in t and not t.endswith("@cam2")]
    assert not [t for t in got if "@" not in t and not t.startswith("system.")]


def test_a_wrong_stream_id_is_refused_before_anything_starts():
    done = subprocess.run([*MOODWIRE, "run", "--set", "sources.stream=cam 2", "--set", "sources.video=synthetic",
                           "--set", "sources.audio=none", "--duration", "5"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "sources.stream = 'cam 2': a stream id is 1 to 32 letters" in done.stderr
