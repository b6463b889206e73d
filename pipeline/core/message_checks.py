"""What a consumer may rely on beyond the wire's types (pipeline/core/wire.py checks those).

Finite numbers (``VoiceFeatures`` may hold NaN, as documented), 64-bit ints, capture times on this
host's clock, arrays whose dtype and shape match the fields beside them, values in their ranges.
``problem`` names what is wrong, or gives ""; pipeline/core/node.py refuses such a message before a
step sees it, so one bad message cannot poison a step's state (docs/schema.md section 4).
"""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np

from moodwire.pipeline.core.config import SourcesConfig, VadConfig, upper_bound
from moodwire.pipeline.core.messages import (AudioChunk, FaceTracks, Message, SpeechEvent, TextAffect, UtteranceAudio,
                                             VideoFrame, VoiceAffect, VoiceBaseline, VoiceFeatures)

INT64_MAX = 2**63 - 1
MAX_FUTURE_NS = 60 * 1_000_000_000  # t_capture further ahead of the pipeline's clock is refused
MAX_FRAME = (upper_bound(SourcesConfig, "width"), upper_bound(SourcesConfig, "height"))  # largest video.frame
AUDIO_RATES = (1000, 192_000)  # sample rates an audio message may declare
MAX_UTTERANCE_S = 2 * upper_bound(VadConfig, "hard_max_s")  # audio of one utterance beyond this is refused
PROB_SUM_TOLERANCE = 0.01


def problem(msg: Message, now_ns: int) -> str:
    """Why ``msg`` cannot be used by a consumer (its path and what is expected), or ""."""
    return (_value_problem(msg, type(msg).__name__)
            or _time_problem(msg, now_ns)
            or _CONSISTENCY.get(type(msg), lambda m: "")(msg))


def _value_problem(value: object, path: str, nan_ok: bool = False) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return ""
    if isinstance(value, int):
        return "" if -INT64_MAX - 1 <= value <= INT64_MAX else f"{path} = {value} does not fit in 64 bits"
    if isinstance(value, float):
        ok = math.isfinite(value) or (nan_ok and math.isnan(value))
        return "" if ok else f"{path} is {value}; a finite number is expected"
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return f"{path} holds NaN or infinity; finite values are expected"
        return ""
    if isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := _value_problem(v, f"{path}[{i}]", nan_ok))), "")
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := _value_problem(v, f"{path}.{k}", nan_ok))), "")
    if dataclasses.is_dataclass(value):
        nan_ok = nan_ok or isinstance(value, (VoiceFeatures, VoiceBaseline))
        return next((p for f in dataclasses.fields(value)
                     if (p := _value_problem(getattr(value, f.name), f"{path}.{f.name}", nan_ok))), "")
    return f"{path} is a {type(value).__name__}, which no message field holds"


CAPTURE_TIMES = ("t_capture", "t_start", "t_end", "t_speech_end")


def _time_problem(msg: Message, now_ns: int) -> str:
    for name in CAPTURE_TIMES:
        t = getattr(msg, name, 0)
        if t < 0:
            return f"{name} {t} is negative; capture times are time.monotonic_ns() of the sensor sample"
        if t - now_ns > MAX_FUTURE_NS:
            return (f"{name} is {(t - now_ns) / 1e9:.0f} s ahead of the pipeline's clock; capture times are the bus "
                    "host's time.monotonic_ns(), which a joined host's nodes follow (pipeline/core/clock.py); replay "
                    "a recording without --keep-timestamps")
    return ""


def _array_problem(name: str, arr: np.ndarray, dtypes: str, shape: tuple[int | None, ...]) -> str:
    """``shape``: None matches any length on that axis."""
    fits = len(arr.shape) == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if arr.dtype.kind in dtypes and fits:
        return ""
    want = "x".join("n" if s is None else str(s) for s in shape) or "scalar"
    kinds = {"u": "unsigned int", "i": "int", "f": "float"}
    return (f"{name} is {arr.dtype} of shape {arr.shape}; expected {'/'.join(kinds[k] for k in dtypes)} "
            f"of shape ({want})")


def _range_problem(name: str, value: float | None, lo: float, hi: float) -> str:
    return "" if value is None or lo <= value <= hi else f"{name} = {value} is outside [{lo:g}, {hi:g}]"


def _probs_problem(name: str, probs: typing.Sequence[float] | np.ndarray, labels: list[str]) -> str:
    p = np.asarray(probs, np.float64)
    if len(p) == 0:
        return ""
    if labels and len(labels) != len(p):
        return f"{name} has {len(p)} values for {len(labels)} labels"
    if (p < 0).any() or (p > 1).any() or abs(p.sum() - 1) > PROB_SUM_TOLERANCE:
        return f"{name} are not probabilities (each in [0, 1], sum 1): {np.round(p, 3).tolist()}"
    return ""


def _audio_problem(kind: str, samples: np.ndarray, sample_rate: int, offset: int = 0) -> str:
    lo, hi = AUDIO_RATES
    if not lo <= sample_rate <= hi:
        return f"{kind} sample_rate {sample_rate} Hz is outside {lo} to {hi} Hz"
    if samples.dtype != np.int16 or samples.ndim != 1:
        return f"{kind} samples are {samples.dtype} of shape {samples.shape}; expected mono int16, shape (n,)"
    if offset < 0 or offset + samples.size > MAX_UTTERANCE_S * sample_rate:
        return (f"{kind} offset {offset} + {samples.size} samples lies outside the first {MAX_UTTERANCE_S:g} s "
                f"of an utterance")
    return ""


def _video_problem(m: VideoFrame) -> str:
    max_w, max_h = MAX_FRAME
    if not (1 <= m.width <= max_w and 1 <= m.height <= max_h):
        return f"frame size {m.width}x{m.height} is outside 1x1 to {max_w}x{max_h}"
    if m.image.dtype != np.uint8 or m.image.shape != (m.height, m.width, 3):
        return (f"image is {m.image.dtype} of shape {m.image.shape}; expected uint8 of shape "
                f"({m.height}, {m.width}, 3): height, width, BGR")
    if m.pixel_format != "bgr24":
        return f"pixel_format {m.pixel_format!r}; only 'bgr24' is defined"
    return _range_problem("fps_nominal", m.fps_nominal, 0.0, 1000.0)


def _face_problem(m: FaceTracks) -> str:
    for i, f in enumerate(m.faces):
        name = f"faces[{i}]"
        found = (_array_problem(f"{name}.landmarks", f.landmarks, "f", (None, 3))
                 or _array_problem(f"{name}.blendshapes", f.blendshapes, "f",
                                   (len(m.blendshape_names) if m.blendshape_names else None,))
                 or _array_problem(f"{name}.crop", f.crop, "u", (None, None))
                 or _array_problem(f"{name}.expression", f.expression, "f",
                                   (len(m.expression_labels) if m.expression_labels else None,))
                 or _probs_problem(f"{name}.expression", f.expression, m.expression_labels)
                 or _probs_problem(f"{name}.expression_raw", f.expression_raw, m.expression_raw_labels)
                 or ("" if len(f.box) == 4 else f"{name}.box has {len(f.box)} values; expected x0, y0, x1, y1")
                 or _range_problem(f"{name}.valence", f.valence, -1, 1)
                 or _range_problem(f"{name}.arousal", f.arousal, -1, 1))
        if found:
            return found
    return ""


def _speech_event_problem(m: SpeechEvent) -> str:
    return "" if m.kind in ("start", "end") else f"kind {m.kind!r}; expected 'start' or 'end'"


def _voice_problem(m: VoiceAffect) -> str:
    return (_range_problem("arousal", m.arousal, -1, 1) or _range_problem("valence", m.valence, -1, 1)
            or _range_problem("confidence", m.confidence, 0, 1)
            or _range_problem("valence_confidence", m.valence_confidence, 0, 1)
            or _probs_problem("probs", m.probs, m.labels))


def _text_problem(m: TextAffect) -> str:
    return (_range_problem("valence", m.valence, -1, 1) or _range_problem("arousal", m.arousal, -1, 1)
            or _range_problem("confidence", m.confidence, 0, 1) or _probs_problem("probs", m.probs, m.labels))


_CONSISTENCY: dict[type, typing.Callable[[typing.Any], str]] = {
    VideoFrame: _video_problem,
    AudioChunk: lambda m: _audio_problem("audio.chunk", m.samples, m.sample_rate),
    FaceTracks: _face_problem,
    SpeechEvent: _speech_event_problem,
    UtteranceAudio: lambda m: _audio_problem("speech.audio", m.samples, m.sample_rate, m.offset),
    VoiceAffect: _voice_problem,
    TextAffect: _text_problem,
}
