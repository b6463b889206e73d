"""What the voice profile (``superb-wav2vec2-base-er``) expects and returns, with no torch.

The contract is the one transformers' ``audio-classification`` pipeline applies to this model: 16 kHz
mono float samples, normalised to zero mean and unit variance over the utterance when the repository's
preprocessor_config.json says ``do_normalize`` (``Wav2Vec2FeatureExtractor``, eps 1e-7), fed as
``input_values`` (1, T); a softmax over the logits, in the config's ``id2label`` order.
tests/test_hub_profiles.py proves this module gives the pipeline's numbers on the same audio and weights.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
INPUT_NAME = "input_values"
OUTPUT_NAME = "logits"
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
MIN_SAMPLES = 400  # the conv front end's receptive field (25 ms): shorter input has no output frame


def read_do_normalize(preprocessor: dict) -> bool:
    """The preprocessor config's normalisation switch; ValueError for a config this module cannot honour."""
    if preprocessor.get("sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise ValueError(f"preprocessor_config.json: sampling_rate {preprocessor.get('sampling_rate')}, "
                         f"this path feeds {SAMPLE_RATE} Hz")
    if preprocessor.get("feature_size", 1) != 1:
        raise ValueError("preprocessor_config.json: feature_size is not 1 (raw waveform expected)")
    return bool(preprocessor.get("do_normalize", True))


def preprocess(samples: np.ndarray, do_normalize: bool) -> np.ndarray:
    """int16 (or float in [-1, 1]) mono 16 kHz samples -> (1, T) float32 ``input_values``.

    Audio shorter than MIN_SAMPLES is padded with zeros after normalising (the reference fails on it)."""
    x = np.asarray(samples).ravel()
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    if do_normalize:
        x = (x - x.mean()) / np.sqrt(x.var() + NORM_EPS)
    if len(x) < MIN_SAMPLES:
        x = np.pad(x, (0, MIN_SAMPLES - len(x)))
    return x[None, :].astype(np.float32)

