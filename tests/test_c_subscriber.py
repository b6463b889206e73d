"""examples/c/subscriber.c, written from docs/schema.md alone, decodes real affect.frame messages.

It is compiled here with ``cc`` (skipped, saying what to install, where the compiler or the libzmq and
msgpack-c headers are missing) and run against a real ``moodwire.pipeline.core.bus.Publisher`` on a free port.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from moodwire.pipeline.core.bus import Publisher
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.messages import AffectFrame, PersonAffect

SOURCE = Path(__file__).resolve().parents[1] / "examples" / "c" / "subscriber.c"
INSTALL = "apt-get install libzmq3-dev libmsgpack-dev (tools/setup.sh does)"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def link_flags() -> list[str]:
    """pkg-config's flags for libzmq and msgpack-c (named msgpack-c or, on older Debian, msgpack)."""
    if shutil.which("pkg-config"):
        for msgpack in ("msgpack-c", "msgpack"):
            got = subprocess.run(["pkg-config", "--cflags", "--libs", "libzmq", msgpack], capture_output=True, text=True)
            if got.returncode == 0:
                return got.stdout.split()
    return ["-lzmq", "-lmsgpackc"]


@pytest.fixture(scope="module")
def subscriber_binary(tmp_path_factory) -> Path:
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (cc) on PATH")
    folder = tmp_path_factory.mktemp("c_subscriber")
    probe = folder / "probe.c"
    probe.write_text("#include <zmq.h>\n#include <msgpack.h>\nint main(void) { return 0; }\n")
    if subprocess.run([cc, "-c", str(probe), "-o", str(folder / "probe.o")], capture_output=True).returncode != 0:
        pytest.skip(f"libzmq or msgpack-c headers missing: {INSTALL}")
    binary = folder / "subscriber"
    built = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-std=c11", "-o", str(binary), str(SOURCE),
                            *link_flags()], capture_output=True, text=True)
    assert built.returncode == 0, f"examples/c/subscriber.c does not build:\n{built.stderr}"
    return binary


def published_frame(i: int) -> AffectFrame:
    """Frames of every shape the schema allows: two people (one without a face), nobody, or invalid."""
    if i % 5 == 4:
        return AffectFrame(frame_index=i, t_capture=now_ns(), valid=False, missing=["face", "voice", "text"],
                           notes={"face": "no face in view"})
    persons = [] if i % 5 == 3 else [
        PersonAffect(track_id=i + 1, labels=list(LABELS), probs=[0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.7][::-1]
                     if i % 2 else [0.1, 0.0, 0.0, 0.6, 0.1, 0.1, 0.1],
                     valence=0.123456789 * (i % 7) - 0.4, arousal=-0.987654321 + i / 1000, confidence=i / (i + 3.0),
                     modalities={"face": 1.0}),
        PersonAffect(track_id=None, labels=list(LABELS), probs=[1 / 7] * 6 + [1 - 6 / 7],
                     valence=-1.0, arousal=1, confidence=0.25),  # an int where a float is expected: allowed
    ]
    return AffectFrame(frame_index=i, t_capture=now_ns(), persons=persons)


def expected_line(f: AffectFrame) -> str:
    """What the C subscriber prints for ``f`` (floats exact: 17 significant digits)."""
    parts = [f"frame_index={f.frame_index} t_capture={f.t_capture} valid={int(f.valid)} persons={len(f.persons)}"]
    for p in f.persons:
        label = p.labels[max(range(len(p.probs)), key=p.probs.__getitem__)]
        track = "none" if p.track_id is None else str(p.track_id)
        parts.append(f"track_id={track} label={label} valence={float(p.valence)!r} arousal={float(p.arousal)!r} "
                     f"confidence={float(p.confidence)!r}")
    return "; ".join(parts)


def normalised(line: str) -> str:
    """The C line with its %.17g floats read back as Python floats (so 0.29999999999999999 is 0.3)."""
    return re.sub(r"(valence|arousal|confidence)=([^\s;]+)", lambda m: f"{m[1]}={float(m[2])!r}", line)


def test_c_subscriber_prints_each_frame_as_published(subscriber_binary, endpoint):
    count = 12
    pub = Publisher(endpoint, "fusion", bind=True)
    sent: dict[int, AffectFrame] = {}
    stop = threading.Event()

    def stream() -> None:  # like fusion: a frame every 20 ms until the subscriber has had enough
        i = 0
        while not stop.wait(0.02):
            msg = published_frame(i)
            pub.send("affect.frame", msg)
            sent[i] = msg
            i += 1

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        got = subprocess.run([str(subscriber_binary), endpoint, str(count), "20"], capture_output=True, text=True,
                             timeout=60)
    finally:
        stop.set()
        thread.join(2.0)
        pub.close()
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert len(lines) == count
    indices = [int(re.match(r"frame_index=(\d+) ", line)[1]) for line in lines]
    assert indices == list(range(indices[0], indices[0] + count))  # every frame, in order, none skipped
    for line, index in zip(lines, indices):
        assert normalised(line) == expected_line(sent[index])
    shapes = {len(sent[i].persons) for i in indices} | {sent[i].valid for i in indices}
    assert {0, 2, True, False} <= shapes  # two people, nobody and an invalid frame were all decoded


def test_c_subscriber_says_why_it_got_nothing(subscriber_binary, endpoint):
    got = subprocess.run([str(subscriber_binary), endpoint, "1", "0.3"], capture_output=True, text=True, timeout=30)
    assert got.returncode == 1 and "no message from" in got.stderr and "is moodwire running?" in got.stderr
    assert got.stdout == ""
