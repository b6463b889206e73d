"""The text profile (``roberta-base-go-emotions``, engines/profiles.py) as the text node's classifier.

Its ONNX (exported at ``models fetch``) runs through the engine interface on each final transcript,
tokenised by the repository's own tokenizer.json (engines/goemotions_spec.py). GoEmotions labels are
independent (a sigmoid each, several may apply), so folding them onto the 7 labels is a RULE,
``ekman-fold-v1``: each label's Ekman group (pipeline/core/labels.py) scores the chance that at least
one of its members applies, 1 - prod(1 - p_i) over the members, and the 7 group scores are normalised
to sum 1. A softmax model's probabilities are summed per group instead. Valence and arousal are the
probability-weighted circumplex placements of the 7 labels (a rule, as for the packaged method);
confidence is the top probability minus the second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moodwire.engines import goemotions_spec as spec
from moodwire.engines.engine import Engine
from moodwire.pipeline.core.labels import CIRCUMPLEX, GOEMOTIONS_TO_LABELS, LABELS, fold_matrix

FOLD_RULE = "ekman-fold-v1"


@dataclass(frozen=True)
class ProfileTextScore:
    probs: np.ndarray  # (7,) in LABELS order, sums to 1
    raw: np.ndarray  # the model's own scores, in its labels' order
    valence: float
    arousal: float
    confidence: float


class ProfileTextClassifier:
    def __init__(self, engine: Engine, tokenizer, name: str, raw_labels: tuple[str, ...], sigmoid: bool) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.labels = LABELS
        self.raw_labels = raw_labels
        self.sigmoid = sigmoid
        self._fold = fold_matrix(raw_labels, GOEMOTIONS_TO_LABELS)
        self.method = f"{name} (model profile)+{FOLD_RULE}; valence/arousal rule:circumplex"

    def score(self, text: str) -> ProfileTextScore:
        (logits,) = self.engine.run(spec.encode(self.tokenizer, text))
        raw = spec.activate(np.asarray(logits)[0], self.sigmoid)
        probs = fold(raw, self._fold, self.sigmoid)
        valence, arousal = probs @ CIRCUMPLEX
        top2 = np.sort(probs)[-2:]
        return ProfileTextScore(probs.astype(np.float32), raw.astype(np.float32), float(valence), float(arousal),
                                float(top2[1] - top2[0]))


def fold(raw: np.ndarray, matrix: np.ndarray, independent: bool) -> np.ndarray:
    """The model's scores onto the 7 labels (``ekman-fold-v1``, see the module docstring)."""
    if independent:
        none_applies = np.exp(np.log1p(-np.clip(raw, 0.0, 1.0 - 1e-7)) @ matrix)  # prod(1 - p) per group
        groups = 1.0 - none_applies
    else:
        groups = raw @ matrix
    total = groups.sum()
    return groups / total if total > 0 else np.full(len(LABELS), 1.0 / len(LABELS))


def load_profile_text_classifier(name: str, engine: str = "auto", threads: int = 1) -> tuple[ProfileTextClassifier, str]:
    """The fetched profile's checked files, its ONNX loaded; returns the classifier and what it runs on."""
    from moodwire.engines.loader import load_engine
    from moodwire.engines.profiles import check_labels, fetched_file, fetched_json, get_profile

    profile = get_profile(name, "text")
    config = fetched_json(profile, "config.json")
    check_labels(profile, config, profile.folder / "config.json")
    loaded = load_engine(fetched_file(profile), engine, threads)
    tokenizer = spec.load_tokenizer(fetched_file(profile, "tokenizer.json"))
    return ProfileTextClassifier(loaded, tokenizer, profile.name, profile.labels, spec.multi_label(config)), loaded.backend
