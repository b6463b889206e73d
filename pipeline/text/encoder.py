"""Sentences -> unit-length all-MiniLM-L6-v2 embeddings, through the engine interface (no torch)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moodwire.engines.engine import Engine
from moodwire.pipeline.text.tokenizer import TextTokenizer


class SentenceEmbedder:
    """Tokeniser + exported encoder (text_encoder.onnx: pooling and normalisation are in the graph)."""

    def __init__(self, engine: Engine, tokenizer: TextTokenizer, model_id: str) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.model_id = model_id  # sha256 of the ONNX file: part of the prototype-embedding cache key

    def embed(self, sentences: Sequence[str], batch: int = 32) -> np.ndarray:
        """(len(sentences), 384) float32; batches of ``batch`` keep padding and memory small."""
        parts = [self.engine.run(self.tokenizer(sentences[i:i + batch]))[0]
                 for i in range(0, len(sentences), batch)]
        return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros((0, 384), np.float32)
