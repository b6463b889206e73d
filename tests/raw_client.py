"""A moodwire subscriber written only from docs/schema.md: libzmq + msgpack + numpy.

It imports nothing from ``pipeline``, to show that the document is enough.
    python tests/raw_client.py --prefix video. --count 5
"""

import argparse
import json
import sys
import time

import msgpack
import numpy as np
import zmq

SUPPORTED_VERSION = 1


def _arrays(value, buffers):
    """Replace every {"$buf", "dtype", "shape"} map, at any depth, by a zero-copy array."""
    if isinstance(value, dict):
        if "$buf" in value:
            buf, dtype, shape = buffers[value["$buf"]], np.dtype(value["dtype"]), value["shape"]
            if len(buf) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
                raise ValueError(f"buffer {value['$buf']} has {len(buf)} bytes, not {shape} of {dtype.str}")
            return np.frombuffer(buf, dtype=dtype).reshape(shape)
        return {k: _arrays(v, buffers) for k, v in value.items()}
    if isinstance(value, list):
        return [_arrays(v, buffers) for v in value]
    return value


def receive(endpoint: str, prefix: str, count: int, timeout_s: float) -> list[dict]:
    """Up to ``count`` messages under ``prefix``, or fewer when ``timeout_s`` runs out."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(endpoint)
    out, deadline = [], time.monotonic() + timeout_s
    try:
        while len(out) < count:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0 or not sock.poll(left_ms):
                break
            frames = sock.recv_multipart(copy=False)
            t_receive = time.monotonic_ns()
            if len(frames) < 2:
                continue  # not [topic, header, *buffers]
            header = msgpack.unpackb(frames[1].buffer, raw=False)
            if not isinstance(header, dict) or not isinstance(header.get("v"), int) \
                    or header["v"] > SUPPORTED_VERSION:
                continue  # not a map, or a schema newer than this client: skip
            buffers = [f.buffer for f in frames[2:]]
            out.append({"topic": frames[0].bytes.decode("utf-8"),
                        "header": _arrays(header, buffers), "t_receive": t_receive})
    finally:
        sock.close()
    return out


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return {"dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5560")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    for m in receive(args.endpoint, args.prefix, args.count, args.timeout):
        print(json.dumps({**m, "header": _jsonable(m["header"])}))
    sys.stdout.flush()
