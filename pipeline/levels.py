"""Loudness of audio frames: the one RMS-per-frame used by the ASR's silence test, the speaker's
voice envelope and the two-face clip's speech carrier."""

from __future__ import annotations

import numpy as np


def frame_rms(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of each whole ``frame``-sample frame of ``samples`` (a trailing partial frame is dropped),
    in the samples' own units."""
    x = np.asarray(samples).reshape(-1)
    count = x.size // frame
    frames = x[: count * frame].astype(np.float64).reshape(count, frame)
    return np.sqrt((frames ** 2).mean(axis=1))
