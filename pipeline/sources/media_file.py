"""Video and audio from a media file (any container FFmpeg reads, WAV included).

Decoding is by PyAV. Video frames become BGR uint8; audio is resampled to
16 kHz mono int16 in 20 ms chunks, whatever the file holds: any sample rate
(8 kHz, 44.1 kHz, 48 kHz...), any sample format (8-bit unsigned, 16/32-bit,
float; full scale stays full scale) and any channel count (averaged to mono).
What cannot be played is refused by ``probe_media`` with SourceUnavailable
naming the file and what to do, before any node starts: a missing file, a
directory, an empty (0-byte) file, bytes FFmpeg cannot read (random data, a
truncated MP4 whose index is lost), a file with neither video nor audio, or a
track without one decodable frame (a WAV with no samples). A file damaged
further in (a WAV cut mid-sample) plays up to the damage; the source then says
on stderr where and why that track stopped, and ends there as at the file's
end. Both tracks are placed on the run's shared timeline: a sample at media
time ``s`` has ``t_capture = t0 + s`` (plus one clip length per completed
loop), so the video and audio nodes, separate processes, stay aligned, and a
restarted node seeks to where the timeline is.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_CHUNK, AUDIO_RATE
from moodwire.pipeline.core.clock import now_ns
from moodwire.pipeline.core.messages import AudioChunk, Message, VideoFrame
from moodwire.pipeline.sources import SourceUnavailable
from moodwire.pipeline.sources.pacing import wait_until

LATE_DROP_S = 0.5  # in real time, a video frame this late is skipped rather than sent


def _av():
    try:
        import av
    except ImportError:
        raise SourceUnavailable("media files need PyAV: pip install -e '.[video]'") from None
    return av


@dataclass(frozen=True)
class MediaInfo:
    path: str
    has_video: bool
    has_audio: bool
    duration_s: float
    fps: float = 0.0
    width: int = 0
    height: int = 0
    audio_rate: int = 0
    audio_channels: int = 0

    def describe(self) -> str:
        parts = []
        if self.has_video:
            parts.append(f"video {self.width}x{self.height} @ {self.fps:.2f} fps")
        if self.has_audio:
            parts.append(f"audio {self.audio_rate} Hz x{self.audio_channels} (resampled to 16 kHz mono)")
        return f"{self.path}: {self.duration_s:.1f} s, " + ", ".join(parts)


def probe_media(path: str | Path) -> MediaInfo:
    """Open ``path``, decode one frame of each track, and describe it; or explain why not."""
    path = Path(path)
    if path.is_dir():
        raise SourceUnavailable(f"media file {path} is a directory; pass a video or WAV file to --source")
    if not path.is_file():
        raise SourceUnavailable(f"media file {path} does not exist; pass an existing file to --source")
    if path.stat().st_size == 0:
        raise SourceUnavailable(f"media file {path} is empty (0 bytes); pass a video or WAV file to --source")
    av = _av()
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            audio = container.streams.audio[0] if container.streams.audio else None
            if video is None and audio is None:
                raise SourceUnavailable(f"{path} has neither a video nor an audio track; pass a video or WAV file "
                                        f"to --source")
            for stream in (video, audio):
                if stream is not None:
                    _first_frame(container, stream)
                    container.seek(0)
            return MediaInfo(
                path=str(path), has_video=video is not None, has_audio=audio is not None,
                duration_s=_duration(container),
                fps=float(video.average_rate or video.guessed_rate or 0) if video else 0.0,
                width=video.codec_context.width if video else 0,
                height=video.codec_context.height if video else 0,
                audio_rate=audio.codec_context.sample_rate if audio else 0,
                audio_channels=audio.codec_context.channels if audio else 0,
            )
    except SourceUnavailable:
        raise
    except (av.FFmpegError, StopIteration, ValueError, OSError) as exc:
        raise SourceUnavailable(
            f"cannot decode media file {path}: {exc or type(exc).__name__}. "
            f"Check that it plays (ffprobe {path}) or pass another file to --source") from None


def _first_frame(container, stream) -> None:
    for frame in container.decode(stream):
        return
    raise SourceUnavailable(f"{container.name}: the {stream.type} track holds no decodable frame; check that it "
                            f"plays (ffprobe {container.name}) or pass another file to --source")


def _decoded(container, stream) -> Iterator:
    """The track's frames up to its end, or up to damage that FFmpeg cannot decode past (said on stderr)."""
    av = _av()
    frame = None
    try:
        for frame in container.decode(stream):
            yield frame
    except av.FFmpegError as exc:
        at = f"{frame.time:.2f} s" if frame is not None and frame.time is not None else "its start"
        print(f"{container.name}: the {stream.type} track cannot be decoded after {at} ({exc}); it ends there. "
              f"Re-encode the file (ffmpeg -i in out.mp4) to play all of it", file=sys.stderr, flush=True)


def _duration(container) -> float:
    if container.duration:
        return container.duration / 1e6  # AV_TIME_BASE
    stream = (container.streams.video or container.streams.audio)[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    raise SourceUnavailable(f"{container.name}: duration unknown; remux it (ffmpeg -i in -c copy out.mp4)")


def _origin(container) -> float:
    return container.start_time / 1e6 if container.start_time else 0.0


@dataclass
class _Timeline:
    """Where the shared clock is in the clip: which loop pass and which offset."""

    t0_ns: int
    period_s: float
    loop: bool
    realtime: bool

    def start(self) -> tuple[int, float] | None:
        """(pass, offset_s) to begin at; None when a non-looping clip is already over."""
        if not self.realtime:
            return 0, 0.0
        elapsed = max(0.0, (now_ns() - self.t0_ns) / 1e9)
        if elapsed >= self.period_s and not self.loop:
            return None
        return int(elapsed // self.period_s), elapsed % self.period_s

    def starting_at(self, t0_ns: int) -> "_Timeline":
        return dataclasses.replace(self, t0_ns=t0_ns)

    def t_capture(self, loop_pass: int, media_s: float) -> int:
        return self.t0_ns + int((loop_pass * self.period_s + media_s) * 1e9)


class FileVideo:
    def __init__(self, info: MediaInfo, t0_ns: int, realtime: bool, loop: bool) -> None:
        self.info = info
        self.timeline = _Timeline(t0_ns, info.duration_s, loop, realtime)
        self.late_drops = 0
        self.sent = 0

    def start_at(self, t0_ns: int) -> None:
        """The manager's start of the timeline (every node is ready): the file's first frame is at ``t0_ns``."""
        self.timeline = self.timeline.starting_at(t0_ns)

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]:
        av = _av()
        start = self.timeline.start()
        last_t = -1
        while start is not None:
            loop_pass, offset_s = start
            with av.open(self.info.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                origin = _origin(container)
                if offset_s > 0:
                    container.seek(int((origin + offset_s) * 1e6))
                for frame in _decoded(container, stream):
                    media_s = (frame.time or 0.0) - origin
                    if media_s < offset_s - 1e-6:
                        continue
                    t = self.timeline.t_capture(loop_pass, media_s)
                    if not self.timeline.realtime:  # lossless: a timestamp that does not rise goes 1 ns after the last
                        t = last_t = max(t, last_t + 1)
                    msg = self._message(frame, loop_pass, media_s, t)  # convert before its time comes
                    if self.timeline.realtime:
                        if not wait_until(t, stop):
                            return
                        if now_ns() - t > LATE_DROP_S * 1e9:
                            self.late_drops += 1
                            continue
                    elif stop.is_set():
                        return
                    yield "video.frame", msg
            if not self.timeline.loop:
                return
            start = (loop_pass + 1, 0.0)

    def _message(self, frame, loop_pass: int, media_s: float, t: int) -> VideoFrame:
        """In real time the index follows the time (a restarted source rejoins mid-file); played whole (lossless)
        it counts the frames, so a variable frame rate gives 0, 1, 2, ... with each frame's own time."""
        index = (round((loop_pass * self.info.duration_s + media_s) * self.info.fps) if self.timeline.realtime
                 else self.sent)
        self.sent += 1
        image = frame.to_ndarray(format="bgr24")
        return VideoFrame(frame_index=index, width=image.shape[1], height=image.shape[0],
                          fps_nominal=self.info.fps, image=image, t_capture=t)


class FileAudio:
    def __init__(self, info: MediaInfo, t0_ns: int, realtime: bool, loop: bool) -> None:
        self.info = info
        self.timeline = _Timeline(t0_ns, info.duration_s, loop, realtime)

    def start_at(self, t0_ns: int) -> None:
        """The manager's start of the timeline: the file's first sample is at ``t0_ns``."""
        self.timeline = self.timeline.starting_at(t0_ns)

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]:
        chunks_per_pass = int(np.ceil(self.info.duration_s * AUDIO_RATE / AUDIO_CHUNK))
        chunk_s = AUDIO_CHUNK / AUDIO_RATE
        start = self.timeline.start()
        while start is not None:
            loop_pass, offset_s = start
            for k, (media_s, samples) in enumerate(self._chunks()):
                if media_s + chunk_s <= offset_s or media_s >= self.info.duration_s:
                    continue
                t = self.timeline.t_capture(loop_pass, media_s)
                if self.timeline.realtime:
                    if not wait_until(t + int(chunk_s * 1e9), stop):  # complete once its last sample is
                        return
                elif stop.is_set():
                    return
                yield "audio.chunk", AudioChunk(chunk_index=loop_pass * chunks_per_pass + k,
                                                sample_rate=AUDIO_RATE, samples=samples, t_capture=t)
            if not self.timeline.loop:
                return
            start = (loop_pass + 1, 0.0)

    def _chunks(self) -> Iterator[tuple[float, np.ndarray]]:
        """(media time of first sample, 320 int16 samples), the last one zero-padded."""
        pending = np.zeros(0, dtype=np.int16)
        first_s: float | None = None
        emitted = 0
        for media_s, block in self._resampled():
            if first_s is None:
                first_s = media_s
            pending = np.concatenate([pending, block])
            while len(pending) >= AUDIO_CHUNK:
                yield first_s + emitted * AUDIO_CHUNK / AUDIO_RATE, pending[:AUDIO_CHUNK]
                pending = pending[AUDIO_CHUNK:]
                emitted += 1
        if len(pending) and first_s is not None:
            padded = np.zeros(AUDIO_CHUNK, dtype=np.int16)
            padded[:len(pending)] = pending
            yield first_s + emitted * AUDIO_CHUNK / AUDIO_RATE, padded

    def _resampled(self) -> Iterator[tuple[float, np.ndarray]]:
        av = _av()
        with av.open(self.info.path) as container:
            stream = container.streams.audio[0]
            origin = _origin(container)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
            for frame in _decoded(container, stream):
                media_s = (frame.time or 0.0) - origin
                for out in resampler.resample(frame):
                    yield media_s, out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            for out in resampler.resample(None):
                yield 0.0, out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
