"""The bus over real ZeroMQ sockets: proxy, prefixes, delivery policies, freshness, bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import astuple

import msgpack
import numpy as np
import pytest

from moodwire.pipeline.core.bus import BusEndpoints, Publisher, Subscriber
from moodwire.pipeline.core.messages import AudioChunk, VideoFrame


@pytest.fixture
def bus(tmp_path, endpoint):
    """The proxy in its own process, as the bus node runs it."""
    endpoints = BusEndpoints.in_dir(str(tmp_path), endpoint)
    code = ("import sys; from moodwire.pipeline.core.bus import BusEndpoints, run_proxy; "
            "run_proxy(BusEndpoints(*sys.argv[1:4]))")
    proc = subprocess.Popen([sys.executable, "-c", code, *astuple(endpoints)])
    yield endpoints
    proc.kill()
    proc.wait()


def frame(i: int) -> VideoFrame:
    return VideoFrame(frame_index=i, width=4, height=2, fps_nominal=30.0, image=np.full((2, 4, 3), i % 256, np.uint8))


def chunk(i: int) -> AudioChunk:
    return AudioChunk(chunk_index=i, sample_rate=16000, samples=np.full(320, i, np.int16))


def _probe():
    from moodwire.pipeline.core.messages import NodeStats
    return NodeStats(name="probe", pid=0)


def settle(sub, pub):
    """Wait until the subscription has reached the publisher through the proxy."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pub.send("system.node", _probe())
        got = sub.recv(0.05)
        if got is not None:
            while sub.recv(0.05) is not None:
                pass
            return
    raise AssertionError("subscription never reached the publisher")


@pytest.fixture
def linked(bus):
    """link(prefix): a publisher and a subscriber (internal, or public tcp) that have met."""
    made = []

    def link(prefix: str, public: bool = False):
        pub = Publisher(bus.internal_pub, "test")
        sub = Subscriber(bus.public if public else bus.internal_sub, [prefix, "system.node"])
        made.append((pub, sub))
        settle(sub, pub)
        return pub, sub

    yield link
    for pub, sub in made:
        sub.close()
        pub.close()


def test_queued_topic_delivers_every_message_in_order(linked):
    pub, sub = linked("audio.")
    for i in range(500):  # 1 kHz, twenty times audio.chunk's rate; a flood beyond bus.hwm would drop
        pub.send("audio.chunk", chunk(i))
        time.sleep(0.001)
    got = [sub.recv(2.0) for _ in range(500)]
    assert [g.msg.chunk_index for g in got] == list(range(500))
    assert [g.msg.seq for g in got] == list(range(500))
    assert got[0].msg.source == "test" and got[0].msg.t_publish <= got[0].t_receive


def test_latest_topic_keeps_only_the_newest_unread_frame(linked):
    pub, sub = linked("video.")
    for i in range(50):
        pub.send("video.frame", frame(i))
    time.sleep(0.5)  # the subscriber reads nothing meanwhile
    got = sub.recv(1.0)
    assert got.msg.frame_index == 49 and got.msg.image[0, 0, 0] == 49
    assert sub.recv(0.2) is None
    fresh = sub.freshness("video.frame")
    assert fresh.received == 50 and fresh.superseded == 49


def test_prefix_filters_topics(linked):
    pub, sub = linked("audio.")
    pub.send("video.frame", frame(1))
    pub.send("audio.chunk", chunk(2))
    got = sub.recv(2.0)
    assert got.topic == "audio.chunk"
    assert sub.recv(0.3) is None


def test_public_tcp_endpoint_carries_the_same_stream(linked):
    pub, sub = linked("audio.", public=True)
    for i in range(20):
        pub.send("audio.chunk", chunk(i))
    assert [sub.recv(2.0).msg.chunk_index for _ in range(20)] == list(range(20))


def test_malformed_message_is_counted_and_skipped(linked):
    pub, sub = linked("audio.")
    pub.send_raw([b"audio.chunk", b"\xc1 not msgpack"])
    pub.send_raw([b"audio.chunk", b"\x80"])  # an empty map: no envelope
    huge = {"v": 1, "seq": 0, "t_capture": 0, "t_publish": 0, "source": "x", "valid": True, "chunk_index": 0,
            "sample_rate": 16000, "samples": {"$buf": 0, "dtype": "<i2", "shape": [2**32, 2**32]}}
    pub.send_raw([b"audio.chunk", msgpack.packb(huge), b""])  # a size that overflows int64 arithmetic
    pub.send("audio.chunk", chunk(5))
    got = sub.recv(2.0)
    assert got.msg.chunk_index == 5
    assert sub.malformed == 3 and "needs" in sub.last_error


def test_freshness_measures_rate_and_notices_silence(linked):
    pub, sub = linked("audio.")
    assert sub.freshness("audio.chunk").alive is False
    start, sent = time.monotonic(), []
    for i in range(50):  # 50 Hz for one second, as well as this machine paces it
        sent.append(time.monotonic())
        pub.send("audio.chunk", chunk(i))
        time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    time.sleep(0.02)
    fresh = sub.freshness("audio.chunk")
    assert fresh.updated and fresh.alive and fresh.received == 50
    # the rate the messages really went out at (a busy machine paces them slower than 50 Hz): the
    # subscriber measures it from their arrivals, which each lag their sending by a little
    assert fresh.rate_hz == pytest.approx(49 / (sent[-1] - sent[0]), rel=0.2), fresh.rate_hz
    assert sub.freshness("audio.chunk").updated is False  # nothing new since the last look
    time.sleep(3 / 50 + 0.1)  # three nominal periods of audio.chunk, and a margin
    assert sub.freshness("audio.chunk").alive is False


def test_run_step_reports_a_refused_message_and_goes_on(bus, endpoint):
    """A step's BadInput costs that one message: the node says why in system.node and handles the next."""
    import threading

    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.core.messages import NodeStats, SpeechEvent
    from moodwire.pipeline.core.node import BadInput, NodeContext, run_step

    class OddChunksRefused:
        inputs = ("audio.chunk",)

        def process(self, topic, msg):
            if msg.chunk_index % 2:
                raise BadInput(f"chunk {msg.chunk_index} is odd")
            yield "speech.vad", SpeechEvent(utterance_id=msg.chunk_index, kind="start", t_start=1)

        def idle(self, now):
            return ()

    ctx = NodeContext("odd", Config(), bus, ("speech.vad",), 0, threading.Event())
    worker = threading.Thread(target=run_step, args=(ctx, OddChunksRefused(), 0.02))
    worker.start()
    pub, sub = Publisher(bus.internal_pub, "test"), Subscriber(bus.internal_sub, ["speech.vad", "system.node"])
    try:
        settle(sub, pub)
        report = _next_report(sub, "odd")  # the node is up, its subscription made before its first report
        for i in range(6):
            pub.send("audio.chunk", chunk(i))
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (len(got) < 3 or not report.malformed_inputs):
            msg = sub.recv(0.1)
            if msg and msg.topic == "speech.vad":
                got.append(msg.msg.utterance_id)
            elif msg and isinstance(msg.msg, NodeStats) and msg.msg.name == "odd":
                report = msg.msg
        assert got == [0, 2, 4]
        assert report.malformed_inputs == 3 and "refused a audio.chunk message: chunk" in report.last_error
    finally:
        ctx.stop.set()
        worker.join(5)
        pub.close()
        sub.close()


def _next_report(sub, name: str, timeout: float = 10.0):
    from moodwire.pipeline.core.messages import NodeStats

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sub.recv(0.1)
        if got and isinstance(got.msg, NodeStats) and got.msg.name == name:
            return got.msg
    raise AssertionError(f"no system.node report from {name}")


def test_each_stream_has_its_own_latest_frame_and_a_subscriber_can_take_one_stream(bus):
    pub = Publisher(bus.internal_pub, "test")
    every = Subscriber(bus.internal_sub, ["video.", "system.node"])
    cam2 = Subscriber(bus.internal_sub, ["video.frame", "system.node"], stream="cam2")
    default = Subscriber(bus.internal_sub, ["video.", "system.node"], stream="")
    try:
        for sub in (every, cam2, default):
            settle(sub, pub)
        time.sleep(0.3)
        for sub in (every, cam2, default):  # the probes of the others' settling
            while sub.recv(0.1) is not None:
                pass
        for i in range(20):
            for stream in ("", "cam2", "cam20"):
                pub.send(f"video.frame@{stream}" if stream else "video.frame", frame(i))
        pub.send("system.node", _probe())  # about no stream: every subscriber gets it
        time.sleep(0.5)
        newest = {got.topic: got for got in iter(lambda: every.recv(0.3), None)}
        assert {t: g.msg.frame_index for t, g in newest.items() if g.name == "video.frame"} == {
            "video.frame": 19, "video.frame@cam2": 19, "video.frame@cam20": 19}  # one latest slot per stream
        assert newest["video.frame@cam2"].stream == "cam2" and newest["video.frame"].stream == ""
        assert sorted((g.topic, g.msg.frame_index if g.name == "video.frame" else None)
                      for g in iter(lambda: cam2.recv(0.3), None)) == [("system.node", None), ("video.frame@cam2", 19)]
        assert sorted(g.topic for g in iter(lambda: default.recv(0.3), None)) == ["system.node", "video.frame"]
    finally:
        for sock in (every, cam2, default, pub):
            sock.close()
