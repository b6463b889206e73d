"""The voice profile (``superb-wav2vec2-base-er``, engines/profiles.py) as the voice node's model.

Its ONNX (exported at ``models fetch``) runs through the engine interface on the whole utterance once
it ends, with the preprocessing of engines/wav2vec2_er_spec.py. IEMOCAP's four classes are folded onto
the 7 labels (pipeline/core/labels.py: fear, disgust and surprise get 0); valence is derived from the
folded probabilities by the same capped circumplex rule as for a trained voice model (model.py), and
the message's ``model`` says so. Arousal stays the prosody rule's.
"""

from __future__ import annotations

import numpy as np

from moodwire.engines import wav2vec2_er_spec as spec
from moodwire.engines.activations import softmax
from moodwire.engines.engine import Engine
from moodwire.pipeline.core.labels import IEMOCAP4_TO_LABELS, LABELS, fold_matrix
from moodwire.pipeline.voice.model import VoicePrediction, at_model_rate, prediction

VALENCE_RULE = "valence rule:circumplex of the folded classes"


class ProfileVoiceModel:
    """16 kHz int16 utterance in; the profile's probabilities folded onto LABELS and a low-confidence valence out."""

    def __init__(self, engine: Engine, name: str, raw_labels: tuple[str, ...], do_normalize: bool) -> None:
        self.engine = engine
        self.labels = list(LABELS)
        self.raw_labels = raw_labels
        self.do_normalize = do_normalize
        self._fold = fold_matrix(raw_labels, IEMOCAP4_TO_LABELS)
        self.description = f"{name} (model profile, IEMOCAP's 4 classes folded onto 7); {VALENCE_RULE}"

    def predict(self, samples: np.ndarray, sample_rate: int) -> VoicePrediction:
        x = spec.preprocess(at_model_rate(samples, sample_rate), self.do_normalize)
        (logits,) = self.engine.run({spec.INPUT_NAME: x})
        raw = softmax(np.asarray(logits, np.float64)[0])
        return prediction(self.labels, raw @ self._fold)


def load_profile_voice_model(name: str, engine: str = "auto", threads: int = 1) -> ProfileVoiceModel:
    """The fetched profile's checked files, its ONNX loaded and warmed up; ModelMissing with the fetch command."""
    from moodwire.engines.loader import load_engine
    from moodwire.engines.profiles import check_labels, fetched_file, fetched_json, get_profile
    from moodwire.engines.registry import ModelError

    profile = get_profile(name, "voice")
    check_labels(profile, fetched_json(profile, "config.json"), profile.folder / "config.json")
    try:
        do_normalize = spec.read_do_normalize(fetched_json(profile, "preprocessor_config.json"))
    except ValueError as exc:
        raise ModelError(f"{profile.name}: {exc}") from None
    model = ProfileVoiceModel(load_engine(fetched_file(profile), engine, threads), profile.name, profile.labels,
                              do_normalize)
    silence = np.zeros(spec.SAMPLE_RATE // 2, np.int16)
    for _ in range(2):
        model.predict(silence, spec.SAMPLE_RATE)
    return model
