"""A trained voice-emotion ONNX (tools/train_voice.py) run through the engine interface.

The model's JSON sidecar (``model.json`` beside ``model.onnx``) must say it was trained, on what,
and with this code's feature recipe; anything else is refused with the reason, so an untrained,
failed or mismatched model never produces numbers on the bus.

Valence from the model: the probability-weighted valence of the classes' circumplex positions
(the labels' circumplex table, pipeline/core/labels.py). Speech without words carries valence
weakly, so its confidence is capped at ``VALENCE_CONFIDENCE_MAX``, and it is 0 for a model trained
on a synthetic set (tools/make_voice_toyset.py), which knows nothing about emotion.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from moodwire.engines.engine import Engine
from moodwire.pipeline.core.labels import CIRCUMPLEX, LABELS
from moodwire.pipeline.voice.logmel import RECIPE, SAMPLE_RATE, model_input

SIDECAR_KIND = "moodwire-voice-emotion"  # exporters/voice_emotion.py writes it
VALENCE_CONFIDENCE_MAX = 0.3


class VoiceModelError(ValueError):
    """A voice model file or sidecar that cannot be used; the text says why and what to do."""


@dataclass(frozen=True)
class VoicePrediction:
    labels: list[str]
    probs: list[float]
    valence: float
    valence_confidence: float


def sidecar_for(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def read_sidecar(onnx_path: Path) -> dict[str, Any]:
    """The checked sidecar of a trained model; VoiceModelError says what is wrong otherwise."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise VoiceModelError(f"voice.model = {onnx_path}: no such file")
    path = sidecar_for(onnx_path)
    try:
        meta = json.loads(path.read_text())
    except OSError:
        raise VoiceModelError(f"{onnx_path}: its sidecar {path} is missing; train and export the model "
                              "with tools/train_voice.py, which writes both") from None
    except ValueError as exc:
        raise VoiceModelError(f"{path} is not valid JSON: {exc}") from None
    _check_sidecar(meta, path, onnx_path)
    return meta


def _check_sidecar(meta: Any, path: Path, onnx_path: Path) -> None:
    if not isinstance(meta, dict) or meta.get("kind") != SIDECAR_KIND:
        raise VoiceModelError(f"{path} is not a voice-emotion sidecar (kind {SIDECAR_KIND!r} expected)")
    if meta.get("status") != "trained":
        raise VoiceModelError(f"{path}: status {meta.get('status')!r}; only a model whose training finished "
                              "(status 'trained') is used")
    training = meta.get("training")
    if not isinstance(training, dict) or not training.get("data_folder") or "val_accuracy" not in training:
        raise VoiceModelError(f"{path}: no record of the training data and validation accuracy; refusing it")
    if meta.get("labels") != list(LABELS):
        raise VoiceModelError(f"{path}: labels {meta.get('labels')} differ from {list(LABELS)}")
    if meta.get("features") != RECIPE:
        raise VoiceModelError(f"{path}: trained with feature recipe {meta.get('features')!r}, this code computes "
                              f"{RECIPE['name']!r} with other settings; retrain with tools/train_voice.py")
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    if meta.get("onnx_sha256") != digest:
        raise VoiceModelError(f"{onnx_path}: sha256 {digest} differs from the one its sidecar recorded; "
                              "the sidecar belongs to another export")


class VoiceClassifier(Protocol):
    """What the voice step needs of a model: a trained one (VoiceModel) or a profile (profile_model.py)."""

    description: str

    def predict(self, samples: np.ndarray, sample_rate: int) -> VoicePrediction: ...


class VoiceModel:
    """The checked model: 16 kHz int16 utterance in, 7 probabilities and a low-confidence valence out."""

    def __init__(self, engine: Engine, meta: dict[str, Any], path: Path) -> None:
        self.engine = engine
        self.meta = meta
        self.labels: list[str] = list(meta["labels"])
        self.input_name: str = meta.get("input", "logmel")
        training = meta["training"]
        self.synthetic = bool(training.get("synthetic", False))
        self.description = f"{Path(path).name}: {training.get('description', '')}".strip()

    def predict(self, samples: np.ndarray, sample_rate: int) -> VoicePrediction:
        samples = at_model_rate(samples, sample_rate)
        (probs,) = self.engine.run({self.input_name: model_input(samples, SAMPLE_RATE)})
        return prediction(self.labels, np.asarray(probs, dtype=np.float64)[0], self.synthetic)


def at_model_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The samples at 16 kHz: the pipeline's audio already is; this only guards other callers."""
    if sample_rate == SAMPLE_RATE:
        return samples
    return np.interp(np.arange(0, len(samples), sample_rate / SAMPLE_RATE), np.arange(len(samples)),
                     np.asarray(samples, np.float64)).astype(np.int16)


def prediction(labels: list[str], probs: np.ndarray, synthetic: bool = False) -> VoicePrediction:
    """7 probabilities in ``labels`` (LABELS) order -> the prediction with its rule-derived, capped valence."""
    valence = float(probs @ CIRCUMPLEX[:, 0])
    confidence = 0.0 if synthetic else VALENCE_CONFIDENCE_MAX * float(probs.max())
    return VoicePrediction(labels, [float(v) for v in probs], valence, confidence)


def load_voice_model(path: str | Path, engine: str = "auto", threads: int = 1) -> VoiceModel:
    """Check the sidecar, then load the ONNX through moodwire.engines.loader and warm it up."""
    from moodwire.engines.loader import load_engine

    path = Path(path).expanduser()
    meta = read_sidecar(path)
    model = VoiceModel(load_engine(path, engine, threads), meta, path)
    silence = np.zeros(SAMPLE_RATE // 2, np.int16)
    for _ in range(2):  # the engine's own warm_up would feed 1 frame, shorter than the model's pooling
        model.predict(silence, SAMPLE_RATE)
    return model
