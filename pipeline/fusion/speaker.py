"""Active speaker: which visible face spoke an utterance, from its mouth moving with the voice.

A documented RULE, not a trained model (no audiovisual training data ships with moodwire).

Mouth openness per frame (``mouth_openness``):
    openness = 0.5 * jawOpen + 0.5 * mean(mouthLowerDownLeft, mouthLowerDownRight)
jawOpen alone misses speech made with the jaw nearly shut (on the real carphone footage whole
syllables show as lips parting, mouthLowerDown 0.3-0.7, with jawOpen under 0.05); the lip term
alone misses a dropped jaw behind tight lips. mediapipe's ``mouthClose`` stays near 0 whatever
the mouth does, so it is not used. The result lies in [0, 1].

Voice envelope (``audio_envelope``): RMS of consecutive 20 ms frames, full scale = 1, each
placed at its frame's centre.

The rule (``attribute_speaker``), per utterance span [t_start, t_end]:

1. Coverage. A track is a candidate only if its frames cover at least ``MIN_COVERAGE`` (60 %)
   of the span (time between consecutive frames counts when under ``MAX_FRAME_GAP_NS``). A face
   seen for a moment of the utterance cannot show that its mouth followed the voice.
2. Alignment. The envelope is averaged over each of the track's frame intervals (a frame
   period centred on its capture time) and interpolated where no envelope frame falls inside.
3. Score = r * motion. r = Pearson correlation between openness and the envelope, both first
   smoothed by a moving average over ``SMOOTH_S`` (100 ms: keeps the 4-5 Hz syllable rhythm,
   removes the landmarker's frame-to-frame jitter). motion = min(1, std(openness) /
   ``MOTION_FULL``): the secondary cue, mouth movement energy. A mouth that hardly moves (a
   still face, a frozen picture, detector jitter) cannot reach a high score from a chance
   correlation of tiny noise. A series with no variance scores 0.
   The frame-to-frame change of openness was tried as a second correlate (max of the two) and
   dropped: on the two-face clip (tools/media/two_faces.py) it scored the silent face
   higher than the speaking one in places, and a max of two correlations gives every silent
   face two chances.
4. Decision. No candidate: ``None``. Best score < ``min_score``: ``None``. Best minus second
   best < ``margin``: ``None`` (ambiguous). Otherwise the best track. The reason always says which.

Zero lag is used: mouth and voice are within a frame or two of each other in speech, and a lag
search would give every non-speaking face more chances of a chance correlation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moodwire.pipeline.core.audio import frame_rms

MIN_COVERAGE = 0.6  # share of the utterance a track must be seen for to be a candidate
MAX_FRAME_GAP_NS = 250_000_000  # a longer gap between a track's frames counts as not seen
MOTION_FULL = 0.05  # std of openness at and above which mouth movement counts in full
SMOOTH_S = 0.1  # moving average applied to both series before correlating
MIN_FRAMES = 5  # fewer frames than this in the span: no score (not a candidate)
ENVELOPE_FRAME_S = 0.02
OPENNESS_WEIGHTS = {"jawOpen": 0.5, "mouthLowerDownLeft": 0.25, "mouthLowerDownRight": 0.25}


@dataclass(frozen=True)
class SpeakerResult:
    """``track_id``: the face that spoke, or None; ``reason`` says why either way; ``scores``:
    track id -> score of every candidate track (see the module docstring)."""

    track_id: int | None
    reason: str
    scores: dict[int, float]


def mouth_openness(blendshapes: np.ndarray, names: list[str]) -> float:
    """How open the mouth is, in [0, 1], from mediapipe's 52 blendshapes (rule in the module docstring)."""
    try:
        value = sum(w * float(blendshapes[names.index(n)]) for n, w in OPENNESS_WEIGHTS.items())
    except ValueError:
        missing = [n for n in OPENNESS_WEIGHTS if n not in names]
        raise KeyError(f"blendshapes lack {missing}: mouth openness needs mediapipe's blendshape set") from None
    return min(1.0, max(0.0, value))


def audio_envelope(samples: np.ndarray, t_start: int, sample_rate: int) -> list[tuple[int, float]]:
    """(capture ns of the frame centre, RMS) per 20 ms frame; int samples are scaled to full scale 1.
    A trailing partial frame is dropped."""
    x = np.asarray(samples).reshape(-1)
    scale = float(np.iinfo(x.dtype).max) + 1 if np.issubdtype(x.dtype, np.integer) else 1.0
    n = max(1, int(round(ENVELOPE_FRAME_S * sample_rate)))
    rms = frame_rms(x, n) / scale
    count = rms.size
    if count == 0:
        return []
    centres = t_start + ((np.arange(count) * n + n / 2) * 1e9 / sample_rate).round().astype(np.int64)
    return [(int(t), float(v)) for t, v in zip(centres, rms)]


def attribute_speaker(mouth: dict[int, list[tuple[int, float]]], envelope: list[tuple[int, float]],
                      t_start: int, t_end: int, min_score: float, margin: float) -> SpeakerResult:
    """The track whose mouth moved with the voice over [t_start, t_end], or None and why (module docstring)."""
    span = max(1, t_end - t_start)
    env = np.asarray(envelope, dtype=np.float64).reshape(-1, 2)
    env = env[(env[:, 0] >= t_start) & (env[:, 0] <= t_end)]
    env = env[np.argsort(env[:, 0], kind="stable")]
    seen: dict[int, float] = {}
    scores: dict[int, float] = {}
    for track_id, series in mouth.items():
        s = np.asarray(series, dtype=np.float64).reshape(-1, 2)
        s = s[(s[:, 0] >= t_start) & (s[:, 0] <= t_end)]
        s = s[np.argsort(s[:, 0], kind="stable")]
        if len(s) == 0:
            continue
        seen[track_id] = _coverage(s[:, 0], span)
        if seen[track_id] >= MIN_COVERAGE and len(s) >= MIN_FRAMES:
            scores[track_id] = _score(s[:, 0], s[:, 1], env) if len(env) >= 2 else 0.0
    rounded = {k: round(v, 3) for k, v in scores.items()}
    if not seen:
        return SpeakerResult(None, "no face in view during the utterance", {})
    if not scores:
        shown = ", ".join(f"track {k} {100 * v:.0f}%" for k, v in sorted(seen.items()))
        return SpeakerResult(None, f"no face in view for most of the utterance ({shown} of it, "
                                   f"{100 * MIN_COVERAGE:.0f}% needed)", {})
    if len(env) < 2 or np.ptp(env[:, 1]) == 0:
        return SpeakerResult(None, "no voice envelope over the utterance to compare mouths with", rounded)
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    best_id, best = ranked[0]
    if best < min_score:
        return SpeakerResult(None, f"no face moved its mouth with the voice (best score {best:.2f} < {min_score:.2f})",
                             rounded)
    if len(ranked) > 1 and best - ranked[1][1] < margin:
        return SpeakerResult(None, f"ambiguous: scores {best:.2f} and {ranked[1][1]:.2f} within margin {margin:.2f}",
                             rounded)
    runner_up = (f", next {ranked[1][1]:.2f} (track {ranked[1][0]})" if len(ranked) > 1
                 else ", the only face in view for most of the utterance")
    return SpeakerResult(best_id, f"mouth moved with the voice: score {best:.2f}{runner_up}", rounded)


def _coverage(times: np.ndarray, span: int) -> float:
    """Share of the span the track was seen: gaps under MAX_FRAME_GAP_NS count, plus one frame period."""
    gaps = np.diff(times)
    if gaps.size == 0:
        return 0.0
    period = float(np.median(gaps))
    covered = float(gaps[gaps <= MAX_FRAME_GAP_NS].sum()) + period
    return min(1.0, covered / span)


def _score(times: np.ndarray, openness: np.ndarray, env: np.ndarray) -> float:
    """r * motion of one track (module docstring, step 3)."""
    voice = _envelope_at(times, env)
    period = float(np.median(np.diff(times)))
    width = max(1, int(round(SMOOTH_S * 1e9 / period))) if period > 0 else 1
    r = _pearson(_smooth(openness, width), _smooth(voice, width))
    motion = min(1.0, float(np.std(openness)) / MOTION_FULL)
    return max(-1.0, min(1.0, r * motion))


def _envelope_at(times: np.ndarray, env: np.ndarray) -> np.ndarray:
    """Envelope averaged over one frame period centred on each time; interpolated where no value falls in it."""
    period = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    lo = np.searchsorted(env[:, 0], times - period / 2, side="left")
    hi = np.searchsorted(env[:, 0], times + period / 2, side="right")
    sums = np.concatenate([[0.0], np.cumsum(env[:, 1])])
    count = hi - lo
    interp = np.interp(times, env[:, 0], env[:, 1])
    return np.divide(sums[hi] - sums[lo], count, out=interp, where=count > 0)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` samples, the ends padded with the edge values."""
    if width <= 1 or x.size < 2:
        return x
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denom if denom > 1e-12 else 0.0
