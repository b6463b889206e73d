"""webrtcvad (package webrtcvad-wheels) as a frame classifier: 30 ms frames at 16 kHz.

30 ms is the longest frame webrtcvad takes; longer frames give it more evidence per decision.
The plain ``webrtcvad`` sdist imports pkg_resources and breaks; webrtcvad-wheels is a drop-in.
"""

from __future__ import annotations

import numpy as np

from moodwire.pipeline.vad import SAMPLE_RATE

FRAME_SAMPLES = 480  # 30 ms


class WebrtcClassifier:
    """Speech or not per 30 ms frame; ``aggressiveness`` 0 (keeps most as speech) to 3 (strictest)."""

    name = "webrtcvad"
    frame_samples = FRAME_SAMPLES

    def __init__(self, aggressiveness: int = 2) -> None:
        self.aggressiveness = aggressiveness
        self.reset()

    def fresh(self) -> "WebrtcClassifier":
        return WebrtcClassifier(self.aggressiveness)

    def reset(self) -> None:
        """Forget the adaptive noise estimate (after a stream break)."""
        import webrtcvad

        self._vad = webrtcvad.Vad(self.aggressiveness)

    def is_speech(self, frame: np.ndarray) -> bool:
        return self._vad.is_speech(np.ascontiguousarray(frame, dtype=np.int16).tobytes(), SAMPLE_RATE)
