"""The naive peer of tools/bench.py: moodwire's models in ONE process and ONE loop, no ZeroMQ.

What a user would write by hand around the same models: read video frames with OpenCV and the
audio from a WAV, and per frame run, in sequence, in one thread: the audio that came due through
the VAD (webrtcvad) and, when an utterance ends, faster-whisper on the whole utterance (blocking)
and the text model on its transcript; then mediapipe landmarks + the expression ONNX + the
valence/arousal rule on the frame; then the fusion model. To be the SAME models with the same pre-
and post-processing, it loads them with the project's own builders (``build_face_step``,
``build_vad_step``, ``build_asr_step``, ``build_voice_step``, ``build_text_step``,
``build_fusion_step``) and calls their ``process`` directly, each output handed to the steps that
consume its topic in pipeline/runtime/process_table.py. What it does NOT do, as a hand-written loop would
not: no processes, no bus, no partial or speculative ASR decodes (the ASR step's ``idle`` is never
called, so it decodes once, on the utterance's final piece, and the video waits meanwhile).

Two passes over the same stretch of the clip (from ``--start`` s, so it holds speech), paced first:

* ``fast``: frames fed back to back. Time inside the steps runs on a virtual clock (media time),
  so fusion and the VAD see the stream as live. Latency = wall time to handle one frame (its due
  audio, any blocking ASR decode, then the frame) up to its ``affect.frame``; fps = frames / wall.
* ``paced``: real time at the clip's 30 fps, as from a camera read latest-only: when the loop
  comes back late it takes the newest due frame and drops the ones in between (counted); audio
  is never dropped (a microphone buffers it). Latency = the frame's capture time (when it came
  due) -> its ``affect.frame`` (blocking ASR decodes included); end of speech (``t_speech_end``)
  -> ``affect.utterance``.

CPU = this process's user+system time (all threads) over the pass / wall, in % of one core.
RSS sampled every 15 frames (max) and the kernel's peak (``ru_maxrss``).

    .venv/bin/python -m tools.naive_loop CLIP.mkv SPEECH.wav [--start S] [--fast-s S] [--paced-s S]

Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .bench_face import video_frame
from .harness.memory import MemorySampler, peak_rss_mb
from .harness.stats import summary

FPS = 30
FRAME_NS = 1_000_000_000 // FPS
RSS_EVERY = 15  # frames between RSS samples
STEP_NODES = ("face", "vad", "asr", "voice", "text", "fusion")  # in process-table order


# ---------------------------------------------------------------- the loop


def build_steps(config) -> dict[str, Any]:
    """Every model the pipeline runs, loaded by the project's own builders (warmed up)."""
    from moodwire.pipeline.asr.step import build_asr_step
    from moodwire.pipeline.face.step import build_face_step
    from moodwire.pipeline.fusion.step import build_fusion_step
    from moodwire.pipeline.text.step import build_text_step
    from moodwire.pipeline.vad.step import build_vad_step
    from moodwire.pipeline.voice.step import build_voice_step

    quiet = lambda line: print(line, file=sys.stderr)  # noqa: E731
    return {"face": build_face_step(config), "vad": build_vad_step(config),
            "asr": build_asr_step(config, quiet), "voice": build_voice_step(config),
            "text": build_text_step(config), "fusion": build_fusion_step(config)}


def consumers(names: tuple[str, ...]) -> dict[str, list[str]]:
    """topic -> the named nodes that take it, from the process table (one place for that fact)."""
    from moodwire.pipeline.runtime.process_table import get_node

    routes: dict[str, list[str]] = {}
    for name in names:
        for topic in get_node(name).inputs:
            routes.setdefault(topic, []).append(name)
    return routes


class Loop:
    """Hands a message to every step that consumes its topic, then their outputs on, in order, in
    this thread. ``seen`` gets every output (topic, msg) as it is made."""

    def __init__(self, steps: dict[str, Any], seen: Callable[[str, Any], None]) -> None:
        self.steps = steps
        self.routes = consumers(tuple(steps))
        self.seen = seen
        self.seq: dict[str, int] = {}

    def feed(self, topic: str, msg: Any) -> None:
        queue = deque([(topic, msg)])
        while queue:
            topic, msg = queue.popleft()
            for name in self.routes.get(topic, ()):
                for out_topic, out in self.steps[name].process(topic, msg):
                    queue.append((out_topic, self._stamp(out_topic, out, name)))

    def idle(self, now: int) -> None:
        """Timers of every step but ASR (a hand-written loop decodes only when an utterance ends)."""
        for name, step in self.steps.items():
            if name != "asr":
                for out_topic, out in step.idle(now):
                    self.feed(out_topic, self._stamp(out_topic, out, name))

    def _stamp(self, topic: str, msg: Any, source: str) -> Any:
        """The envelope Publisher.send would fill, so consumers see what they would on the bus."""
        from moodwire.pipeline.core.clock import now_ns

        msg.seq = self.seq.get(topic, 0)
        self.seq[topic] = msg.seq + 1
        msg.t_publish, msg.source = now_ns(), source
        self.seen(topic, msg)
        return msg


# ---------------------------------------------------------------- input


@dataclass
class Media:
    """The stretch of the clip both passes play: video file, its audio, and where to start."""

    clip: Path
    audio: np.ndarray  # 16 kHz mono int16, from the start
    start_s: float

    def frames(self):
        """BGR frames from ``start_s`` on (earlier ones decoded and discarded: a file read, not a seek)."""
        import cv2

        capture = cv2.VideoCapture(str(self.clip))
        try:
            for _ in range(round(self.start_s * FPS)):
                capture.grab()
            while True:
                ok, image = capture.read()
                if not ok:
                    return
                yield image
        finally:
            capture.release()

    def chunk(self, k: int) -> np.ndarray:
        from moodwire.pipeline.core.audio import AUDIO_CHUNK

        begin = round(self.start_s * 16000) + k * AUDIO_CHUNK
        return self.audio[begin:begin + AUDIO_CHUNK]


def audio_chunk(index: int, samples: np.ndarray, t_capture: int):
    from moodwire.pipeline.core.messages import AudioChunk

    return AudioChunk(chunk_index=index, sample_rate=16000, samples=samples, t_capture=t_capture)


# ---------------------------------------------------------------- measuring


@dataclass
class Tally:
    """What one pass saw: latencies, drops, CPU, RSS."""

    frame_ms: list[float] = field(default_factory=list)
    utterance_ms: list[float] = field(default_factory=list)
    speech_end: dict[int, int] = field(default_factory=dict)  # utterance_id -> t_speech_end
    affect_frames: int = 0
    dropped: int = 0
    transcripts: list[str] = field(default_factory=list)
    memory: MemorySampler = field(default_factory=lambda: MemorySampler(lambda: {"loop": os.getpid()}))

    def seen(self, topic: str, msg: Any) -> None:
        from moodwire.pipeline.core.clock import now_ns

        if topic == "affect.frame":
            self.affect_frames += 1
        elif topic == "speech.vad" and msg.kind == "end":
            self.speech_end[msg.utterance_id] = msg.t_speech_end
        elif topic == "speech.transcript" and msg.final:
            self.transcripts.append(msg.text)
        elif topic == "affect.utterance" and msg.utterance_id in self.speech_end:
            self.utterance_ms.append((now_ns() - self.speech_end[msg.utterance_id]) / 1e6)

    def sample_rss(self, index: int) -> None:
        if index % RSS_EVERY == 0:
            self.memory.sample()


def cpu_seconds() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system


def report(tally: Tally, frames: int, wall_s: float, cpu_s: float) -> dict[str, Any]:
    return {"frames": frames, "affect_frames": tally.affect_frames, "dropped_frames": tally.dropped,
            "wall_s": round(wall_s, 2), "fps": round(frames / wall_s, 2) if wall_s else 0.0,
            "frame_latency_ms": summary(tally.frame_ms, 1),
            "speech_end_to_utterance_ms": summary(tally.utterance_ms, 1),
            "transcripts": tally.transcripts, "cpu_percent": round(100 * cpu_s / wall_s, 1) if wall_s else None,
            "rss_max_mb": tally.memory.max_mb("loop")}


# ---------------------------------------------------------------- the two passes


def fast_pass(steps: dict[str, Any], media: Media, seconds: float) -> dict[str, Any]:
    """Frames back to back; the steps' clocks follow media time (see module docstring)."""
    from moodwire.pipeline.core.clock import now_ns

    tally, base = Tally(), now_ns()
    virtual = {"now": base}
    for step in steps.values():
        if hasattr(step, "clock"):
            step.clock = lambda: virtual["now"]
    loop, count, chunk = Loop(steps, tally.seen), round(seconds * FPS), 0
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for index, image in zip(range(count), media.frames()):
        start = time.perf_counter()
        t_frame = base + index * FRAME_NS
        chunk = feed_audio(loop, media, chunk, base, t_frame + FRAME_NS)
        virtual["now"] = t_frame + FRAME_NS
        loop.feed("video.frame", video_frame(index, image, t_frame))
        loop.idle(virtual["now"])
        tally.frame_ms.append((time.perf_counter() - start) * 1e3)
        tally.sample_rss(index)
    tally.utterance_ms.clear()  # virtual time: end of speech -> utterance means nothing here
    for step in steps.values():
        if hasattr(step, "clock"):
            step.clock = now_ns
    return report(tally, len(tally.frame_ms), time.perf_counter() - t0, cpu_seconds() - cpu0)


def feed_audio(loop: Loop, media: Media, chunk: int, t0: int, now: int) -> int:
    """Every 20 ms chunk whose last sample is due by ``now``; returns the next chunk index."""
    from moodwire.pipeline.core.audio import AUDIO_CHUNK

    chunk_ns = AUDIO_CHUNK * 1_000_000_000 // 16000
    while t0 + (chunk + 1) * chunk_ns <= now:
        samples = media.chunk(chunk)
        if samples.size < AUDIO_CHUNK:
            break
        loop.feed("audio.chunk", audio_chunk(chunk, samples, t0 + chunk * chunk_ns))
        chunk += 1
    return chunk


def paced_pass(steps: dict[str, Any], media: Media, seconds: float) -> dict[str, Any]:
    """Real time at 30 fps; a late loop takes the newest due frame and drops the rest."""
    from moodwire.pipeline.core.clock import now_ns

    tally = Tally()
    loop, count, chunk, handled = Loop(steps, tally.seen), round(seconds * FPS), 0, 0
    frames = media.frames()
    frames = itertools.chain([next(frames)], frames)  # the seek to --start is done before the clock starts
    t0 = now_ns() + 100_000_000
    next_index = 0
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    while next_index < count:
        due = (now_ns() - t0) // FRAME_NS
        if due < next_index:
            time.sleep((t0 + next_index * FRAME_NS - now_ns()) / 1e9)
            continue
        due = min(due, count - 1)
        chunk = feed_audio(loop, media, chunk, t0, now_ns())
        image = skip_to(frames, due - next_index)
        if image is None:
            break
        tally.dropped += due - next_index
        before = tally.affect_frames
        loop.feed("video.frame", video_frame(due, image, t0 + due * FRAME_NS))
        if tally.affect_frames > before:
            tally.frame_ms.append((now_ns() - (t0 + due * FRAME_NS)) / 1e6)
        loop.idle(now_ns())
        tally.sample_rss(handled)
        handled, next_index = handled + 1, due + 1
    return report(tally, handled, time.perf_counter() - wall0, cpu_seconds() - cpu0)


def skip_to(frames, skip: int) -> np.ndarray | None:
    """Discard ``skip`` frames (they came and went while the loop was busy); the next one."""
    for _ in range(skip + 1):
        image = next(frames, None)
        if image is None:
            return None
    return image


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path, help="video file (OpenCV reads it), 30 fps")
    parser.add_argument("wav", type=Path, help="its audio: 16 kHz mono 16-bit WAV")
    parser.add_argument("--start", type=float, default=4.0, help="media second both passes start at")
    parser.add_argument("--fast-s", type=float, default=10.0, help="media seconds fed back to back")
    parser.add_argument("--paced-s", type=float, default=30.0, help="seconds played in real time")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from moodwire.pipeline.core.config import load_config
    from moodwire.pipeline.sources.spoken import read_wav

    args = parse_args(argv)
    rate, audio = read_wav(args.wav)
    if rate != 16000:
        raise SystemExit(f"{args.wav}: {rate} Hz; the naive loop feeds the VAD 16 kHz audio as is")
    media = Media(args.clip, audio, args.start)
    t_load = time.perf_counter()
    steps = build_steps(load_config(None))
    load_s = time.perf_counter() - t_load
    print(f"naive loop: models loaded in {load_s:.1f} s; paced pass {args.paced_s} s", file=sys.stderr, flush=True)
    try:  # paced first: the fast pass's virtual clock then starts after every real timestamp (mediapipe
        # and the steps need capture times that only rise)
        paced = paced_pass(steps, media, args.paced_s)
        print(f"naive loop: fast pass {args.fast_s} s", file=sys.stderr, flush=True)
        fast = fast_pass(steps, media, args.fast_s)
    finally:
        steps["face"].close()
    print(json.dumps({"tool": "naive_loop", "clip": args.clip.name, "start_s": args.start, "load_s": round(load_s, 1),
                      "fast": fast, "paced": paced, "rss_peak_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
