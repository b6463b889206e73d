"""The sample clip used when no camera or microphone exists: made here, not downloaded.

It is generated once into the user cache: 12 s of 640x480 @ 30 fps H.264
showing a drawn cartoon face whose mouth opens with the sound, and AAC audio
of three sentences spoken by espeak-ng (Debian package espeak-ng) with pauses
between them, or tone bursts where espeak-ng is not installed. It is a
demo signal: it is not a recording of a person, so face detectors may find
no face in it.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_RATE
from moodwire.pipeline.core.paths import cache_dir
from moodwire.pipeline.sources.spoken import espeak_available, speak

CLIP_NAME = "sample_v2.mp4"  # v2: the audio carries its timestamp (v1 played 64 ms late)
DURATION_S = 12.0
FPS = 30
WIDTH, HEIGHT = 640, 480
SENTENCES = (
    "Hello, this is the moodwire sample clip.",
    "I am really happy to see you today.",
    "The stream goes on when a camera is missing.",
)
SENTENCE_STARTS_S = (0.5, 4.5, 8.5)


def clip_path() -> Path:
    """Where the sample clip lives (or will, once made)."""
    return cache_dir() / CLIP_NAME


def ensure_sample_clip() -> Path:
    """Path of the sample clip, generating it first if it is not in the cache."""
    path = clip_path()
    if not path.exists():
        fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent)
        os.close(fd)
        try:
            write_clip(Path(tmp), make_audio(), duration_s=DURATION_S)
            os.replace(tmp, path)  # atomic: concurrent callers see a whole file or none
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def make_audio() -> np.ndarray:
    """DURATION_S of 16 kHz mono int16: spoken sentences, or tone bursts without espeak-ng."""
    audio = np.zeros(int(DURATION_S * AUDIO_RATE), dtype=np.int16)
    for start_s, sentence in zip(SENTENCE_STARTS_S, SENTENCES):
        speech = speak(sentence) if espeak_available() else None
        if speech is None:
            t = np.arange(int(2.0 * AUDIO_RATE)) / AUDIO_RATE
            speech = (np.sin(2 * np.pi * 180 * t) * np.hanning(t.size) * 8000).astype(np.int16)
        begin = int(start_s * AUDIO_RATE)
        speech = speech[: audio.size - begin]
        audio[begin:begin + speech.size] = speech
    return audio


def face_frame(index: int, loudness: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A cartoon face that drifts sideways; the mouth opens with ``loudness`` in [0, 1]."""
    image = np.full((HEIGHT, WIDTH, 3), (60, 50, 40), dtype=np.uint8)
    cx = WIDTH / 2 + 60 * np.sin(index / 45)
    cy = HEIGHT / 2
    image[((xx - cx) / 130) ** 2 + ((yy - cy) / 170) ** 2 <= 1] = (140, 170, 220)
    for ex in (cx - 50, cx + 50):
        image[((xx - ex) / 18) ** 2 + ((yy - cy + 40) / 12) ** 2 <= 1] = (40, 30, 30)
    mouth_h = 6 + 30 * loudness
    image[((xx - cx) / 45) ** 2 + ((yy - cy - 80) / mouth_h) ** 2 <= 1] = (50, 40, 150)
    return image


def write_clip(path: Path, audio: np.ndarray | None, duration_s: float, fps: int = FPS) -> None:
    """An H.264 clip of the cartoon face, with ``audio`` (16 kHz int16) as AAC, or no audio track."""
    import av

    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    per_frame = AUDIO_RATE // fps
    peak = max(1, int(np.abs(audio).max())) if audio is not None else 1
    with av.open(str(path), "w") as out:
        vstream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "28"})
        vstream.width, vstream.height, vstream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        astream = out.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio is not None else None
        for i in range(int(duration_s * fps)):
            window = audio[i * per_frame:(i + 1) * per_frame] if audio is not None else np.zeros(0)
            loudness = float(np.abs(window).mean()) / peak * 4 if window.size else 0.0
            frame = av.VideoFrame.from_ndarray(face_frame(i, min(1.0, loudness), yy, xx), format="bgr24")
            out.mux(vstream.encode(frame))
        out.mux(vstream.encode(None))
        if astream is not None:
            aframe = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
            # with a timestamp, the muxer records the AAC encoder's priming delay and audio starts with frame 0
            aframe.sample_rate, aframe.pts, aframe.time_base = AUDIO_RATE, 0, Fraction(1, AUDIO_RATE)
            out.mux(astream.encode(aframe))
            out.mux(astream.encode(None))
