"""Late fusion of face, voice and text estimates per person: a RULE with a few parameters, exported to ONNX.

The rule (the parameters are hand-set in engines/fusion_params.json
until tools/fit_fusion.py fits them on a labelled recording):

1. Masking. A modality whose ``present`` flag is 0 is replaced by neutral
   values with ``torch.where`` before any arithmetic, so whatever its rows
   hold (zeros, stale values, NaN) cannot reach the outputs; multiplying by 0
   would not do (NaN * 0 is NaN).
2. Tempering. Each modality's probabilities become p^(1/T_m), renormalised
   (a softmax of log p / T_m, with p floored at 1e-6). T_m > 1 flattens an
   over-confident source.
3. Weights. w_m ∝ reliability_m * confidence_m over the present modalities,
   renormalised to sum 1. If every present modality reports confidence 0 the
   weights fall back to reliability alone, so the estimates are still used.
   (Practically 0: Σ reliability·confidence below 1e-6.)
4. Classes. A linear opinion pool over the present modalities that have class
   probabilities (``probs_present``), their weights renormalised over them:
   fused = Σ w_m p̃_m. It is what a mixture of sources means, stays a
   distribution, and a missing source simply drops out. Voice without a
   trained model has arousal but no class probabilities: it is present (its
   weight counts for valence/arousal and confidence) but takes no part here.
   No class source: uniform.
5. Valence, arousal. Per dimension, the mean over the present modalities that
   have that dimension (``va_present``), weighted by reliability_m times that
   dimension's own confidence (``va_confidence``), renormalised over those
   modalities (by reliability alone when they are all practically 0). A source
   can be sure of one dimension and not the other: voice's arousal comes from
   the prosody rule with its confidence, its valence (trained model only) with
   a low one of its own. Voice without a trained model has arousal but no
   valence, so valence then comes from face and text only. No modality: 0.
6. Confidence. Σ w_m confidence_m (how sure the sources that spoke are)
   times the share of total reliability that is present (how much of the
   usual evidence we have). Monotone in every confidence and in presence;
   0 when nothing is present or every present confidence is 0.

The ``weights`` output is step 3's: each present modality's share, the one
the messages report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from moodwire.engines.fusion_spec import (INPUT_NAMES, INPUT_SHAPES, MODALITIES, N_CLASSES, ONNX_NAME, OUTPUT_NAMES,
                                          OUTPUT_SHAPES, PERSON_AXIS, SIDECAR_NAME, FusionParams, FusionParamsError,
                                          blank_inputs, fusion_dir, load_params)
from moodwire.exporters.results import ExportResult
from moodwire.pipeline.core.labels import LABELS

__all__ = ["LateFusion", "FusionParams", "FusionParamsError", "load_params", "export_fusion", "export_fusion_for",
           "random_inputs"]

PROB_FLOOR = 1e-6  # keeps log p finite for a class a source gives exactly 0
MIN_TRUST = 1e-6  # below this, the present confidences count as all 0 (and stay representable in fp16)
OPSET = 17
TOLERANCE = 1e-5  # absolute, over all outputs; measured ORT-vs-PyTorch difference is ~1e-7
PARITY_SEED = 20250505
PARITY_PERSONS = (1, 3, 8)


class LateFusion(nn.Module):
    """The rule of this module's docstring. Reliabilities and temperatures are stored as logs so that
    gradient steps (tools/fit_fusion.py) keep them positive."""

    def __init__(self, params: FusionParams) -> None:
        super().__init__()
        self.log_reliability = nn.Parameter(torch.tensor(params.reliability, dtype=torch.float32).log())
        self.log_temperature = nn.Parameter(torch.tensor(params.temperature, dtype=torch.float32).log())

    def reliability(self) -> list[float]:
        return self.log_reliability.detach().exp().tolist()

    def temperature(self) -> list[float]:
        return self.log_temperature.detach().exp().tolist()

    def forward(self, probs: torch.Tensor, probs_present: torch.Tensor, va: torch.Tensor, va_present: torch.Tensor,
                va_confidence: torch.Tensor, confidence: torch.Tensor, present: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        here = present > 0.5  # [P, M]
        has_probs = here & (probs_present > 0.5)
        zeros = torch.zeros_like(present)
        reliability = self.log_reliability.exp().expand_as(present)  # [P, M]
        uniform = torch.full_like(probs, 1.0 / N_CLASSES)

        clean_probs = torch.where(has_probs.unsqueeze(-1), probs, uniform)
        tempered = torch.softmax(clean_probs.clamp_min(PROB_FLOOR).log()
                                 / self.log_temperature.exp().unsqueeze(-1), dim=-1)

        conf = torch.where(here, confidence.clamp(0.0, 1.0), zeros)
        by_reliability = torch.where(here, reliability, zeros)
        trust = reliability * conf
        trust = torch.where(trust.sum(-1, keepdim=True) > MIN_TRUST, trust, by_reliability)
        weights = _normalise(trust, dim=-1)

        class_weights = torch.where(has_probs, weights, zeros)
        class_fallback = torch.where(has_probs, reliability, zeros)
        class_weights = _normalise(torch.where(class_weights.sum(-1, keepdim=True) > MIN_TRUST, class_weights,
                                               class_fallback), dim=-1)
        any_class = has_probs.any(-1, keepdim=True)  # [P, 1]
        pooled = (class_weights.unsqueeze(-1) * tempered).sum(1)
        fused_probs = torch.where(any_class, pooled, torch.full_like(pooled, 1.0 / N_CLASSES))

        has_dim = here.unsqueeze(-1) & (va_present > 0.5)  # [P, M, 2]
        dim_zeros = torch.zeros_like(va_present)
        clean_va = torch.where(has_dim, va, dim_zeros)
        dim_fallback = torch.where(has_dim, reliability.unsqueeze(-1).expand_as(va_present), dim_zeros)
        dim_trust = dim_fallback * torch.where(has_dim, va_confidence.clamp(0.0, 1.0), dim_zeros)
        dim_trust = torch.where(dim_trust.sum(1, keepdim=True) > MIN_TRUST, dim_trust, dim_fallback)
        fused_va = (_normalise(dim_trust, dim=1) * clean_va).sum(1)

        coverage = by_reliability.sum(-1) / self.log_reliability.exp().sum()
        fused_confidence = (weights * conf).sum(-1) * coverage
        return fused_probs, fused_va, fused_confidence, weights


def _normalise(x: torch.Tensor, dim: int) -> torch.Tensor:
    """x / sum(x) along ``dim``, and 0 (not NaN) where the sum is 0."""
    total = x.sum(dim, keepdim=True)
    return torch.where(total > 0, x / total.clamp_min(1e-12), torch.zeros_like(x))


def random_inputs(persons: int, rng: np.random.Generator, garbage: bool = True) -> dict[str, np.ndarray]:
    """Plausible random inputs with random presence; absent rows hold NaN (``garbage``) to prove masking."""
    x = blank_inputs(persons)
    x["probs"][:] = rng.dirichlet(np.ones(N_CLASSES), (persons, len(MODALITIES)))
    x["va"][:] = rng.uniform(-1, 1, x["va"].shape)
    x["va_present"][:] = rng.random(x["va_present"].shape) < 0.8
    x["confidence"][:] = rng.uniform(0, 1, x["confidence"].shape)
    x["va_confidence"][:] = rng.uniform(0, 1, x["va_confidence"].shape)
    x["probs_present"][:] = rng.random(x["probs_present"].shape) < 0.8
    x["present"][:] = rng.random(x["present"].shape) < 0.6
    if persons > 2:  # one person with nothing present, one whose present confidences are all 0
        x["present"][0] = 0
        x["present"][1] = 1
        x["confidence"][1] = 0
        x["va_confidence"][1] = 0
    if garbage:
        absent = x["present"] == 0
        for name in ("probs", "va", "va_present", "va_confidence", "confidence"):
            x[name][absent] = np.nan
    return x


def export_fusion(params_path: str | Path, out_dir: str | Path,
                  progress: Callable[[str], None] = print, profiles: tuple[str, ...] = ()) -> ExportResult:
    """Build the model from a params file, export it with a dynamic person axis, check ORT vs PyTorch at
    PARITY_PERSONS, and write the sidecar; the ONNX only appears under its final name once it passed."""
    from moodwire.engines.registry import sha256_of
    from moodwire.exporters.onnx_export import export_parity_checked

    params_path, out_dir = Path(params_path), Path(out_dir)
    params = load_params(params_path, profiles)
    model = LateFusion(params).eval()
    progress(f"exporting {ONNX_NAME} from {params_path} (opset {OPSET}), checking parity with ONNX Runtime "
             f"(persons {PARITY_PERSONS}, tolerance {TOLERANCE:g})…")
    final = out_dir / ONNX_NAME
    example = random_inputs(2, np.random.default_rng(PARITY_SEED), garbage=False)
    axes = {name: {0: PERSON_AXIS} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    diff = export_parity_checked(model, tuple(torch.from_numpy(example[n]) for n in INPUT_NAMES), final,
                                 INPUT_NAMES, OUTPUT_NAMES, axes, OPSET, lambda c: _parity(c, model), TOLERANCE)
    sidecar = _write_sidecar(out_dir / SIDECAR_NAME, params, params_path, sha256_of(params_path), final, diff,
                             profiles)
    progress(f"wrote {final} (parity max abs diff {diff:.3g})")
    return ExportResult(final, sidecar, diff, TOLERANCE)


def export_fusion_for(params_path: str | Path = "", progress: Callable[[str], None] = print,
                      profiles: tuple[str, ...] = ()) -> ExportResult:
    """Export the fusion ONNX of a params file ("" = the packaged defaults), with the values of the model
    profiles switched on, into its cache folder (engines/fusion_spec.py ``fusion_dir``), where the node finds it."""
    from moodwire.engines.fusion_spec import default_params_path

    params = Path(params_path) if params_path else default_params_path()
    return export_fusion(params, fusion_dir(params, profiles), progress, profiles)


def _parity(onnx_path: Path, model: LateFusion) -> float:
    from moodwire.exporters.onnx_export import max_abs_diff_vs_torch

    rng = np.random.default_rng(PARITY_SEED)
    return max(max_abs_diff_vs_torch(onnx_path, model, random_inputs(p, rng)) for p in PARITY_PERSONS)


def _write_sidecar(path: Path, params: FusionParams, params_path: Path, params_sha256: str, onnx_path: Path,
                   diff: float, profiles: tuple[str, ...]) -> Path:
    from moodwire.engines.registry import sha256_of
    from moodwire.exporters.onnx_export import write_sidecar

    return write_sidecar(path, {
        "model": "fusion",
        "architecture": "late fusion rule: masked, tempered linear opinion pool (exporters/fusion.py)",
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_of(onnx_path),
        "modalities": list(MODALITIES),
        "labels": list(LABELS),
        "inputs": [{"name": n, "shape": list(INPUT_SHAPES[n]), "dtype": "float32"} for n in INPUT_NAMES],
        "outputs": [{"name": n, "shape": list(OUTPUT_SHAPES[n]), "dtype": "float32"} for n in OUTPUT_NAMES],
        "params": params.to_json(),
        "params_file": {"path": str(params_path), "sha256": params_sha256},
        "profiles": list(profiles),  # model profiles whose entries replaced their modality's values
        "opset": OPSET,
        "torch_version": torch.__version__,
        "exporter": "torch.onnx.export(dynamo=False)",
        "parity": {"max_abs_diff": diff, "tolerance": TOLERANCE, "persons": list(PARITY_PERSONS),
                   "seed": PARITY_SEED, "absent_rows": "NaN", "reference": "PyTorch, CPU",
                   "runtime": "onnxruntime CPU"},
    })
