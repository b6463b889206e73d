"""The adapter between fusion's estimates and the fusion model (engines/fusion_spec.py is the contract).

The model is an ONNX file run through the engine interface; this module only builds its
inputs and reads its outputs. No fusion arithmetic lives here: what the weights are and how
sources are pooled is the model's business (exporters/fusion.py), so a fitted model replaces a
hand-set one without touching the node.

A source with valence/arousal but no class probabilities (voice without a trained model) is
present with ``probs_present`` 0: the model then keeps it out of the class pool while its
arousal and its weight count. Its class row is left at zeros, which the model never reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from moodwire.engines.engine import Engine
from moodwire.engines.fusion_spec import MODALITIES, N_CLASSES, blank_inputs
from moodwire.pipeline.core.config import Config
from moodwire.pipeline.core.labels import LABELS


@dataclass(frozen=True)
class Estimate:
    """One modality's estimate for one person, as the model takes it.

    ``probs`` is in ``LABELS`` order, or None when the source has no class probabilities;
    ``valence``/``arousal`` None when it has no such dimension. ``confidence`` is the modality's (its
    weight, its say in the classes); ``va_confidence`` weighs its valence and arousal apart, for a
    source surer of one than of the other (None: ``confidence`` for both). ``t_capture`` is the
    capture time the estimate describes (a face's frame; an utterance's end). ``note`` is kept in the
    published ``ModalityInput.reason`` even though the modality is present (e.g. "decayed").
    """

    modality: str
    probs: np.ndarray | None
    valence: float | None
    arousal: float | None
    confidence: float
    t_capture: int
    utterance_id: int | None = None
    note: str = ""
    va_confidence: tuple[float, float] | None = None
    source: str = ""  # the model or rule behind the numbers (ModalityInput.source)

    def dimension_confidence(self) -> tuple[float, float]:
        return self.va_confidence if self.va_confidence is not None else (self.confidence, self.confidence)

    def decayed(self, factor: float, note: str) -> "Estimate":
        """Every confidence times ``factor``, and ``note`` added."""
        va_confidence = None if self.va_confidence is None else tuple(c * factor for c in self.va_confidence)
        return replace(self, confidence=self.confidence * factor, va_confidence=va_confidence,
                       note=f"{self.note}; {note}" if self.note else note)


Row = tuple["Estimate | None", "Estimate | None", "Estimate | None"]  # face, voice, text


@dataclass
class FusionBatch:
    """One row per person: the estimate of each modality in ``MODALITIES`` order, None when absent."""

    rows: list[Row] = field(default_factory=list)

    def feeds(self) -> dict[str, np.ndarray]:
        """The model inputs (engines/fusion_spec.py), absent modalities left at zeros."""
        x = blank_inputs(len(self.rows))
        for i, row in enumerate(self.rows):
            for m, est in enumerate(row):
                if est is not None:
                    _fill(x, i, m, est)
        return x


def _fill(x: dict[str, np.ndarray], i: int, m: int, est: Estimate) -> None:
    x["present"][i, m] = 1.0
    x["confidence"][i, m] = est.confidence
    if est.probs is not None:
        x["probs"][i, m] = est.probs
        x["probs_present"][i, m] = 1.0
    for d, (value, confidence) in enumerate(zip((est.valence, est.arousal), est.dimension_confidence())):
        if value is not None:
            x["va"][i, m, d] = value
            x["va_present"][i, m, d] = 1.0
            x["va_confidence"][i, m, d] = confidence


@dataclass
class FusionResult:
    """Per person: fused ``probs`` (P, 7), ``va`` (P, 2), ``confidence`` (P,), and ``weights`` (P, 3): each
    modality's share of the fusion (0 when absent)."""

    probs: np.ndarray
    va: np.ndarray
    confidence: np.ndarray
    weights: np.ndarray


class FusionModel:
    """``fuse`` runs one batch of persons through the engine in one call."""

    labels: tuple[str, ...] = LABELS
    modalities: tuple[str, ...] = MODALITIES

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def backend(self) -> str:
        return self.engine.backend

    def fuse(self, batch: FusionBatch) -> FusionResult:
        if not batch.rows:
            return FusionResult(np.zeros((0, N_CLASSES), np.float32), np.zeros((0, 2), np.float32),
                                np.zeros(0, np.float32), np.zeros((0, len(MODALITIES)), np.float32))
        return FusionResult(*self.engine.run(batch.feeds()))


def build_fusion_model(config: Config | None = None) -> FusionModel:
    """The model for ``fusion.params`` and the profiles switched on (as ``moodwire export fusion`` made it),
    loaded and warmed up."""
    from moodwire.engines.fusion_spec import fusion_onnx
    from moodwire.engines.loader import load_engine
    from moodwire.engines.profiles import selected_names

    config = config or Config()
    engine = load_engine(fusion_onnx(config.fusion.params, selected_names(config)), config.fusion.engine, threads=1)
    engine.warm_up()
    return FusionModel(engine)
