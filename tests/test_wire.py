"""Encoding and decoding: round trips with arrays, and every kind of malformed message."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from moodwire.pipeline.core.messages import (SCHEMA_VERSION, AffectFrame, AudioChunk, NodeHealth, PersonAffect,
                                             SystemHealth, VideoFrame)
from moodwire.pipeline.core.wire import MAX_BUFFER_BYTES, MAX_BUFFERS, MAX_HEADER_BYTES, WireError, decode, encode


def video_frame(**kw) -> VideoFrame:
    image = np.arange(480 * 640 * 3, dtype=np.uint32).astype(np.uint8).reshape(480, 640, 3)
    return VideoFrame(frame_index=7, width=640, height=480, fps_nominal=30.0, image=image,
                      t_capture=123, seq=4, t_publish=456, source="cam", **kw)


def roundtrip(topic, msg):
    frames = [bytes(f) for f in encode(topic, msg)]
    return decode(frames)


def test_video_frame_roundtrip_keeps_pixels_and_envelope():
    msg = video_frame(valid=False)
    topic, out = roundtrip("video.frame", msg)
    assert topic == "video.frame"
    assert np.array_equal(out.image, msg.image) and out.image.shape == (480, 640, 3)
    assert (out.v, out.seq, out.t_capture, out.t_publish, out.source, out.valid) == \
        (SCHEMA_VERSION, 4, 123, 456, "cam", False)


def test_array_travels_as_its_own_frame_without_copy():
    msg = video_frame()
    frames = encode("video.frame", msg)
    assert len(frames) == 3 and frames[2].nbytes == 480 * 640 * 3
    assert np.shares_memory(np.frombuffer(frames[2], np.uint8), msg.image)
    header = msgpack.unpackb(frames[1])
    assert header["image"] == {"$buf": 0, "dtype": "|u1", "shape": [480, 640, 3]}


def test_non_contiguous_array_is_sent_in_c_order():
    msg = video_frame()
    msg.image = msg.image[:, ::2]
    _, out = roundtrip("video.frame", msg)
    assert np.array_equal(out.image, msg.image)


def test_nested_messages_roundtrip():
    health = SystemHealth(nodes=[NodeHealth(name="a", alive=True, pid=1, restarts=2, uptime_s=1.5, rate_hz=30,
                                            outputs=["video.frame"], last_error="x")], notes=["n"])
    _, out = roundtrip("system.health", health)
    assert out.nodes[0] == health.nodes[0] and out.notes == ["n"]
    affect = AffectFrame(frame_index=3, persons=[PersonAffect(track_id=1, labels=["happy"], probs=[1.0], valence=0.5,
                                                              arousal=-0.2, confidence=0.9,
                                                              modalities={"face": 1.0})])
    _, out = roundtrip("affect.frame", affect)
    assert out.persons == affect.persons


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.int16, np.uint8, np.float32, np.float64, np.int64, np.bool_]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7)))
def test_any_allowed_array_roundtrips(array):
    msg = AudioChunk(chunk_index=1, sample_rate=16000, samples=array)
    _, out = roundtrip("audio.chunk", msg)
    assert out.samples.dtype == array.dtype and out.samples.shape == array.shape
    assert np.array_equal(out.samples, array, equal_nan=array.dtype.kind == "f")


def test_object_arrays_cannot_be_encoded():
    with pytest.raises(WireError, match="dtype object"):
        encode("audio.chunk", AudioChunk(chunk_index=0, sample_rate=16000, samples=np.array([None])))


# --------------------------------------------------------------------------- malformed

def good_frames():
    return [bytes(f) for f in encode("video.frame", video_frame())]


def with_header(**changes):
    frames = good_frames()
    header = msgpack.unpackb(frames[1])
    for key, value in changes.items():
        if value is KeyError:
            del header[key]
        else:
            header[key] = value
    frames[1] = msgpack.packb(header)
    return frames


@pytest.mark.parametrize("frames, message", [
    ([b"video.frame"], "expected \\[topic, header"),
    ([b"\xff\xfe", b"\x80"], "not UTF-8"),
    ([b"no.such.topic", msgpack.packb({"v": 1})], "unknown topic 'no.such.topic'"),
    ([b"video.frame", b"\xc1garbage"], "not valid msgpack"),
    ([b"video.frame", msgpack.packb([1, 2])], "must be a msgpack map"),
    ([b"video.frame", b"x" * (MAX_HEADER_BYTES + 1)], "exceeds"),
    ([b"video.frame", b"\x80"] + [b""] * (MAX_BUFFERS + 1), "exceed the limit"),
    ([b"x" * 200, b"\x80"], "topic frame of 200 bytes"),
])
def test_malformed_layout_is_rejected_clearly(frames, message):
    with pytest.raises(WireError, match=message):
        decode(frames)


@pytest.mark.parametrize("changes, message", [
    ({"width": KeyError}, "required field 'width' is missing"),
    ({"width": "wide"}, "video.frame.width: expected an int, got str"),
    ({"valid": 1}, "valid: expected bool"),
    ({"v": KeyError}, "'v' \\(schema version\\) is missing"),
    ({"v": SCHEMA_VERSION + 1}, "newer than this moodwire"),
    ({"image": {"$buf": 3, "dtype": "|u1", "shape": [480, 640, 3]}}, "buffer index 3 is out of range"),
    ({"image": {"$buf": 0, "dtype": "|O", "shape": [480, 640, 3]}}, "dtype '\\|O' is not allowed"),
    ({"image": {"$buf": 0, "dtype": [], "shape": [480, 640, 3]}}, "dtype \\[\\] is not allowed"),  # unhashable
    ({"image": {"$buf": 0, "dtype": "|u1", "shape": [480, 640, 4]}}, "needs 1228800 bytes but buffer 0 has 921600"),
    ({"image": {"$buf": 0, "dtype": "|u1", "shape": [-1]}}, "non-negative"),
    ({"image": [1, 2]}, "expected an array reference"),
    ({"image": {"$buf": True, "dtype": "|u1", "shape": [480, 640, 3]}}, "buffer index True"),
    ({"image": {"$buf": 0, "dtype": "|u1", "shape": [2**32, 2**32]}}, "needs 18446744073709551616 bytes"),
    ({"seq": KeyError, "source": KeyError}, "envelope field\\(s\\) seq, source missing"),
    ({"v": 0}, "not a positive int"),
])
def test_malformed_content_is_rejected_clearly(changes, message):
    with pytest.raises(WireError, match=message):
        decode(with_header(**changes))


def test_oversized_buffer_is_rejected_before_use():
    frames = good_frames()[:2] + [memoryview(bytearray(MAX_BUFFER_BYTES + 1))]
    with pytest.raises(WireError, match="buffer 0 of"):
        decode(frames)


def test_unknown_extra_keys_are_ignored_for_forward_compatibility():
    _, msg = decode(with_header(added_later="x"))
    assert msg.frame_index == 7


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4),
       st.sampled_from(["video.frame", "audio.chunk", "system.health", "affect.frame"]))
def test_random_bytes_only_ever_raise_wire_error(frames, topic):
    try:
        decode([topic.encode(), *frames])
    except WireError:
        pass
