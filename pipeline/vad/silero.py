"""Silero VAD (v5/v6 ONNX, slot ``vad-silero``) as a frame classifier, run through the engine interface.

The streaming protocol of silero_vad.utils_vad.OnnxWrapper, in numpy (no torch at run time):
each call takes a 512-sample window (32 ms at 16 kHz) scaled to [-1, 1], preceded by the last
64 samples of the previous window (the context), plus the recurrent ``state`` [2, 1, 128] and
``sr``; it returns the speech probability and the next state. Decisions use Silero's own
hysteresis: speech starts at ``threshold`` and continues while above ``threshold - 0.15``.
"""

from __future__ import annotations

import numpy as np

from moodwire.engines.engine import Engine
from moodwire.pipeline.vad import SAMPLE_RATE

WINDOW = 512
CONTEXT = 64
HYSTERESIS = 0.15  # get_speech_timestamps' neg_threshold = threshold - 0.15


class SileroClassifier:
    name = "silero"
    frame_samples = WINDOW

    def __init__(self, engine: Engine, threshold: float = 0.5) -> None:
        self.engine = engine
        self.threshold = threshold
        self.reset()

    def fresh(self) -> "SileroClassifier":
        """Its own recurrent state, the same engine."""
        return SileroClassifier(self.engine, self.threshold)

    def reset(self) -> None:
        """A fresh stream: zero state and context, as OnnxWrapper.reset_states."""
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, CONTEXT), np.float32)
        self._speaking = False

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability of one 512-sample int16 window; advances the stream state."""
        if frame.shape != (WINDOW,):
            raise ValueError(f"Silero VAD takes {WINDOW}-sample windows at 16 kHz, got shape {frame.shape}")
        x = np.concatenate([self._context, frame.astype(np.float32)[None] / 32768.0], axis=1)
        out, self._state = self.engine.run({"input": x, "state": self._state,
                                            "sr": np.array(SAMPLE_RATE, dtype=np.int64)})
        self._context = x[:, -CONTEXT:]
        return float(out.reshape(-1)[0])

    def warm_up(self, runs: int = 3) -> None:
        """Run silent windows (the first runs allocate), check the state round-trips, then reset."""
        for _ in range(runs):
            self.probability(np.zeros(WINDOW, np.int16))
        if self._state.shape != (2, 1, 128):
            raise ValueError(f"the model returned a state of shape {self._state.shape}, not (2, 1, 128)")
        self.reset()

    def is_speech(self, frame: np.ndarray) -> bool:
        p = self.probability(frame)
        limit = max(self.threshold - HYSTERESIS, 0.01) if self._speaking else self.threshold
        self._speaking = p >= limit
        return self._speaking


def load_silero(override: str = "", threshold: float = 0.5) -> SileroClassifier:
    """The checked ``vad-silero`` model on ONNX Runtime's CPU provider (one thread: a window costs
    well under a millisecond, a GPU would only add transfers). A file that does not follow the
    v5/v6 interface is refused with ModelError naming it."""
    from moodwire.engines.loader import load_engine
    from moodwire.engines.registry import ModelError, resolve

    model = resolve("vad-silero", override)
    expects = ("inputs input [1, N] float32, state [2, 1, 128] float32, sr int64; "
               "outputs speech probability [1, 1] and the next state")
    try:
        classifier = SileroClassifier(load_engine(model.path, "cpu", 1), threshold)
        classifier.warm_up()  # also proves the file speaks the Silero interface
    except Exception as exc:  # EngineError, or onnxruntime's own untyped errors on a wrong graph
        raise ModelError(f"{model.path} is not a usable Silero VAD v5/v6 ONNX ({expects}): {exc}; "
                         "fix models.vad_silero or remove it to use the packaged model") from exc
    return classifier
