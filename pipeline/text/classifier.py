"""Zero-shot emotion of a sentence: nearest labelled prototypes in a general sentence-embedding space.

This is NOT a trained emotion classifier. all-MiniLM-L6-v2 was trained for
semantic similarity; moodwire compares a transcript's embedding with the
embeddings of the prototype sentences of each of the 7 labels (a data file a
user can edit, pipeline/text/prototypes.json) and turns the similarities into
probabilities. The method, ``prototype-similarity-v1``:

1. ``score_l`` = mean of the ``TOP_K`` largest cosine similarities between the
   sentence and label l's prototypes (a mean of the best few, not the single
   best, so one odd prototype does not decide alone).
2. ``probs = softmax(score / TEMPERATURE)``.
3. With the negation rule on (default), ``negation-shift-v1`` (negation.py)
   then moves probability away from negated labels; ``method`` says so.
4. valence, arousal = probability-weighted mean of the labels' circumplex
   placements from the data file; confidence = top probability minus the
   second (0 when two labels tie, 1 when one takes everything).

TOP_K = 3 and TEMPERATURE = 0.05 were chosen by leave-one-out over the packaged
prototypes themselves (each prototype classified by the others: best accuracy
and log-likelihood), never on the test sentences of tools/data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moodwire.pipeline.text import negation
from moodwire.pipeline.text.encoder import SentenceEmbedder
from moodwire.pipeline.text.prototypes import PrototypeSet

METHOD = "prototype-similarity-v1"
TOP_K = 3
TEMPERATURE = 0.05


@dataclass(frozen=True)
class TextScore:
    probs: np.ndarray  # (7,) in labels order, sums to 1
    similarity: np.ndarray  # (7,) per-label mean top-k cosine
    valence: float
    arousal: float
    confidence: float
    negated: tuple[str, ...]  # labels the negation rule acted on


class TextClassifier:
    """Holds the prototype embeddings (computed once, cached on disk per file and encoder)."""

    def __init__(self, embedder: SentenceEmbedder, prototypes: PrototypeSet, negation_rule: bool = True,
                 cache_dir: Path | None = None) -> None:
        self.embedder = embedder
        self.prototypes = prototypes
        self.negation_rule = negation_rule
        self.labels = prototypes.names
        texts, owners = prototypes.sentences()
        self._owners = np.asarray(owners)
        self._matrix = _prototype_embeddings(embedder, texts, prototypes.sha256, cache_dir)
        self._placement = np.array([[s.valence, s.arousal] for s in prototypes.labels], dtype=np.float64)
        self._negatable = {s.name: s.negatable for s in prototypes.labels}
        self._when_negated = {s.name: s.when_negated for s in prototypes.labels}

    @property
    def method(self) -> str:
        return f"{METHOD}+{negation.RULE_NAME}" if self.negation_rule else METHOD

    def score(self, text: str) -> TextScore:
        return self.score_batch([text])[0]

    def score_batch(self, texts: list[str]) -> list[TextScore]:
        """One encoder call for all ``texts``."""
        sims = self.embedder.embed(texts) @ self._matrix.T
        return [self._score(text, row) for text, row in zip(texts, sims)]

    def _score(self, text: str, cosines: np.ndarray) -> TextScore:
        per_label = np.array([_mean_top_k(cosines[self._owners == i]) for i in range(len(self.labels))])
        logits = per_label / TEMPERATURE
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        negated: list[str] = []
        if self.negation_rule:
            negated = negation.negated_labels(text, self._negatable)
            probs = negation.shift(probs, self.labels, negated, self._when_negated)
        valence, arousal = probs @ self._placement
        top2 = np.sort(probs)[-2:]
        return TextScore(probs.astype(np.float32), per_label.astype(np.float32), float(valence), float(arousal),
                         float(top2[1] - top2[0]), tuple(negated))


def _mean_top_k(values: np.ndarray) -> float:
    return float(np.sort(values)[-TOP_K:].mean())


def _prototype_embeddings(embedder: SentenceEmbedder, texts: list[str], file_sha256: str,
                          cache_dir: Path | None) -> np.ndarray:
    """The prototypes' embeddings, from ``cache_dir`` when this file and encoder made them before."""
    if cache_dir is None:
        return embedder.embed(texts)
    path = Path(cache_dir) / f"prototypes-{file_sha256[:16]}-{embedder.model_id[:16]}.npy"
    try:
        cached = np.load(path)
        if cached.shape[0] == len(texts):
            return cached
    except (OSError, ValueError):
        pass
    matrix = embedder.embed(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(tmp, "wb") as fh:
        np.save(fh, matrix)
    os.replace(tmp, path)
    return matrix
