"""What the text profile (``roberta-base-go-emotions``) expects and returns, with no torch.

The contract is the one transformers' ``text-classification`` pipeline applies to this model: the
repository's fast tokenizer (tokenizer.json: RoBERTa byte-level BPE, ``<s> ... </s>``), ``input_ids``
and ``attention_mask`` (1, n) int64; an independent sigmoid per label when config.json's problem_type
is ``multi_label_classification`` (a softmax otherwise), in ``id2label`` order.
tests/test_hub_profiles.py proves this module gives the pipeline's numbers on the same text and weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moodwire.engines import activations

INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "logits"
MAX_TOKENS = 512  # RoBERTa's 514 positions less its padding offset; longer text is truncated (the pipeline fails)


def load_tokenizer(path: Path):
    """The repository's tokenizer.json, through the tokenizers library (no transformers at run time)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def encode(tokenizer, text: str) -> dict[str, np.ndarray]:
    enc = tokenizer.encode(text)
    return {"input_ids": np.asarray([enc.ids], np.int64),
            "attention_mask": np.asarray([enc.attention_mask], np.int64)}


def multi_label(config: dict) -> bool:
    """Sigmoid per label (the pipeline's rule: multi-label problem, or a single output) or softmax."""
    return config.get("problem_type") == "multi_label_classification" or len(config.get("id2label") or {}) == 1


def activate(logits: np.ndarray, sigmoid: bool) -> np.ndarray:
    """The pipeline's activation for this model (``multi_label`` says which), in float64."""
    z = np.asarray(logits, np.float64)
    return activations.sigmoid(z) if sigmoid else activations.softmax(z)
