"""Synthetic video and audio for tests and demos: deterministic, no devices.

Video: a grey gradient with a white square that moves one step per frame.
Audio: alternating one second of a 220 Hz harmonic tone and one second of
silence. Sample ``n`` is always due at ``t0 + n * period``, so a restarted
source continues where the timeline is, not from zero.
"""

from __future__ import annotations

import threading
from typing import Iterator

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_CHUNK, AUDIO_RATE
from moodwire.pipeline.core.messages import AudioChunk, Message, VideoFrame
from moodwire.pipeline.sources.pacing import elapsed_index, wait_until

SQUARE = 48


class SyntheticVideo:
    def __init__(self, width: int, height: int, fps: float, t0_ns: int) -> None:
        self.width, self.height, self.fps, self.t0_ns = width, height, fps, t0_ns
        ramp = np.linspace(40, 200, width, dtype=np.float32)
        self._background = np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2).astype(np.uint8)

    def frame(self, index: int) -> np.ndarray:
        image = self._background.copy()
        x = (index * 4) % max(1, self.width - SQUARE)
        y = (index * 3) % max(1, self.height - SQUARE)
        image[y:y + SQUARE, x:x + SQUARE] = 255
        return image

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]:
        period = 1e9 / self.fps
        index = elapsed_index(self.t0_ns, period)
        while True:
            t = self.t0_ns + int(index * period)
            if not wait_until(t, stop):
                return
            yield "video.frame", VideoFrame(
                frame_index=index, width=self.width, height=self.height, fps_nominal=self.fps,
                image=self.frame(index), t_capture=t)
            index += 1


class SyntheticAudio:
    def __init__(self, t0_ns: int, tone_hz: float = 220.0) -> None:
        self.t0_ns, self.tone_hz = t0_ns, tone_hz

    def chunk(self, index: int) -> np.ndarray:
        n = np.arange(index * AUDIO_CHUNK, (index + 1) * AUDIO_CHUNK)
        t = n / AUDIO_RATE
        voiced = (n // AUDIO_RATE) % 2 == 0
        wave = sum(np.sin(2 * np.pi * self.tone_hz * k * t) / k for k in (1, 2, 3))
        return (np.where(voiced, wave, 0.0) * 6000).astype(np.int16)

    def messages(self, stop: threading.Event) -> Iterator[tuple[str, Message]]:
        period = 1e9 * AUDIO_CHUNK / AUDIO_RATE
        index = elapsed_index(self.t0_ns, period)
        while True:
            t = self.t0_ns + int(index * period)
            if not wait_until(t + int(period), stop):  # a chunk exists once its last sample does
                return
            yield "audio.chunk", AudioChunk(chunk_index=index, sample_rate=AUDIO_RATE,
                                            samples=self.chunk(index), t_capture=t)
            index += 1
