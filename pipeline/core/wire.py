"""Wire format: ZeroMQ multipart ``[topic, header, *buffers]``.

``topic`` is UTF-8. ``header`` is a msgpack map holding the envelope and the
message fields, flat. Every ``np.ndarray`` field, at any depth, is replaced in
the header by a map ``{"$buf": i, "dtype": "<u1", "shape": [...]}`` and its
bytes travel, C-contiguous, as frame ``2 + i``. No pickle anywhere.

Decoding checks sizes, types and the envelope, and raises ``WireError`` with a
message that names the problem; subscribers count and skip such messages.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any

import msgpack
import numpy as np

from moodwire.pipeline.core.messages import ENVELOPE_FIELDS, SCHEMA_VERSION, Message
from moodwire.pipeline.core.topics import UnknownTopicError, get_topic

MAX_TOPIC_BYTES = 128
MAX_HEADER_BYTES = 1 << 20
MAX_BUFFER_BYTES = 64 << 20
MAX_BUFFERS = 256
ALLOWED_DTYPES = frozenset(
    np.dtype(t).str for t in ("u1", "i1", "u2", "i2", "<i4", "<u4", "<i8", "<f4", "<f8", "?")
)
BUF_KEY = "$buf"


class WireError(ValueError):
    """A message that cannot be decoded; the text says what is wrong."""


# ---------------------------------------------------------------- encoding


def encode(topic: str, msg: Message) -> list[bytes | memoryview]:
    """Frames for ``msg`` on ``topic``; array buffers are not copied."""
    buffers: list[memoryview] = []

    def to_buffer(value: np.ndarray) -> dict:
        arr = owned(np.ascontiguousarray(value).reshape(value.shape))  # ascontiguousarray makes 0-d into 1-d
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise WireError(f"array dtype {arr.dtype} cannot travel; use one of {sorted(ALLOWED_DTYPES)}")
        buffers.append(memoryview(arr).cast("B") if arr.size else memoryview(b""))
        return {BUF_KEY: len(buffers) - 1, "dtype": arr.dtype.str, "shape": list(arr.shape)}

    header = to_plain(msg, to_buffer)
    return [topic.encode(), msgpack.packb(header, use_bin_type=True), *buffers]


def owned(arr: np.ndarray) -> np.ndarray:
    """``arr``, or a copy of it when its memory belongs to something other than numpy (a decoder's frame pool,
    a memory map): ZeroMQ sends a buffer without copying it, later, from its own thread, and keeps alive only
    the array handed to it; memory that PyAV or FFmpeg reuse or free meanwhile would be sent changed, or
    crash the sender (EFAULT, "Bad address"). An array numpy owns, or a view of one, stays as it is."""
    base = arr
    while isinstance(base, np.ndarray) and not base.flags.owndata:
        base = base.base
    return arr if isinstance(base, (np.ndarray, bytes)) else arr.copy()


def to_plain(value: Any, on_array: typing.Callable[[np.ndarray], Any]) -> Any:
    """Dataclasses, lists and maps as plain msgpack/JSON values; each array replaced by ``on_array(array)``."""
    if isinstance(value, np.ndarray):
        return on_array(value)
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name), on_array) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, on_array) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v, on_array) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------- decoding


def decode(frames: typing.Sequence[Any]) -> tuple[str, Message]:
    """Parse ``[topic, header, *buffers]`` into the registered message type."""
    topic, header, buffers = split_frames(frames)
    try:
        spec = get_topic(topic)
    except UnknownTopicError as exc:
        raise WireError(str(exc)) from None
    _check_envelope(header, topic)
    msg = _build(spec.msg_type, header, buffers, path=topic)
    return topic, msg


def split_frames(frames: typing.Sequence[Any]) -> tuple[str, dict, list[memoryview]]:
    """Check the frame layout and unpack the header, without the registry."""
    if len(frames) < 2:
        raise WireError(f"expected [topic, header, *buffers], got {len(frames)} frame(s)")
    if len(frames) - 2 > MAX_BUFFERS:
        raise WireError(f"{len(frames) - 2} buffer frames exceed the limit of {MAX_BUFFERS}")
    raw = [_as_view(f) for f in frames]
    if len(raw[0]) > MAX_TOPIC_BYTES:
        raise WireError(f"topic frame of {len(raw[0])} bytes exceeds {MAX_TOPIC_BYTES}")
    try:
        topic = bytes(raw[0]).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("topic frame is not UTF-8") from None
    if len(raw[1]) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(raw[1])} bytes exceeds {MAX_HEADER_BYTES} on {topic!r}")
    for i, buf in enumerate(raw[2:]):
        if len(buf) > MAX_BUFFER_BYTES:
            raise WireError(f"buffer {i} of {len(buf)} bytes exceeds {MAX_BUFFER_BYTES} on {topic!r}")
    try:
        header = msgpack.unpackb(raw[1], raw=False, strict_map_key=True)
    except (ValueError, TypeError) as exc:  # msgpack's unpack errors all derive from these
        raise WireError(f"header of {topic!r} is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise WireError(f"header of {topic!r} must be a msgpack map, got {type(header).__name__}")
    return topic, header, raw[2:]


def _as_view(frame: Any) -> memoryview:
    if hasattr(frame, "buffer"):  # zmq.Frame received with copy=False
        return frame.buffer
    if isinstance(frame, memoryview):
        return frame
    if isinstance(frame, (bytes, bytearray)):
        return memoryview(frame)
    raise WireError(f"frame of type {type(frame).__name__} is not bytes")


def _check_envelope(header: dict, topic: str) -> None:
    version = header.get("v")
    if type(version) is not int or version < 1:
        raise WireError(f"{topic}: envelope field 'v' (schema version) is missing or not a positive int")
    missing = [name for name in ENVELOPE_FIELDS if name not in header]
    if missing:
        raise WireError(f"{topic}: envelope field(s) {', '.join(missing)} missing; every header carries "
                        f"{', '.join(ENVELOPE_FIELDS)}")
    if version > SCHEMA_VERSION:
        raise WireError(
            f"{topic}: schema version {version} is newer than this moodwire ({SCHEMA_VERSION}); upgrade moodwire"
        )


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: Any, buffers: list[memoryview], path: str) -> Any:
    if not isinstance(data, dict):
        raise WireError(f"{path}: expected a map for {cls.__name__}, got {type(data).__name__}")
    kwargs = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(f"{path}: required field {f.name!r} is missing")
            continue  # unknown extra keys are ignored: newer minor additions
        kwargs[f.name] = _convert(hints[f.name], data[f.name], buffers, f"{path}.{f.name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, buffers: list[memoryview], path: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is np.ndarray:
        return _array(value, buffers, path)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, buffers, path)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, buffers, path)
    if origin is list:
        if not isinstance(value, list):
            raise WireError(f"{path}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, buffers, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise WireError(f"{path}: expected a map, got {type(value).__name__}")
        key_t, val_t = typing.get_args(hint)
        return {_convert(key_t, k, buffers, path): _convert(val_t, v, buffers, f"{path}.{k}")
                for k, v in value.items()}
    return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise WireError(f"{path}: expected an int, got {type(value).__name__}")
    if hint in (str, bool) and not isinstance(value, hint):
        raise WireError(f"{path}: expected {hint.__name__}, got {type(value).__name__}")
    if hint is float:
        raise WireError(f"{path}: expected a number, got {type(value).__name__}")
    return value


def _array(ref: Any, buffers: list[memoryview], path: str) -> np.ndarray:
    if not isinstance(ref, dict) or BUF_KEY not in ref:
        raise WireError(f"{path}: expected an array reference {{'$buf', 'dtype', 'shape'}}")
    index, dtype, shape = ref.get(BUF_KEY), ref.get("dtype"), ref.get("shape")
    if type(index) is not int or not 0 <= index < len(buffers):
        raise WireError(f"{path}: buffer index {index!r} is out of range (message has {len(buffers)} buffers)")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise WireError(f"{path}: dtype {dtype!r} is not allowed; allowed: {sorted(ALLOWED_DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError(f"{path}: shape {shape!r} must be a list of non-negative ints")
    expected = math.prod(shape) * np.dtype(dtype).itemsize  # Python ints: no overflow
    if expected != len(buffers[index]):
        raise WireError(
            f"{path}: shape {shape} of {dtype} needs {expected} bytes but buffer {index} has {len(buffers[index])}"
        )
    return np.frombuffer(buffers[index], dtype=dtype).reshape(shape)
