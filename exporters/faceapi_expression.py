"""Export face-api.js's FaceExpressionNet to ``face_expression_faceapi.onnx`` plus a JSON sidecar, checked
against the PyTorch port (exporters/faceapi_net.py). The port itself is checked against the original
JavaScript model by tests/test_faceapi_expression.py.

torch is imported only inside the export. The files and their checksums come from the model registry
(engines/registry.py, slot ``face-expression-faceapi``: the npm tarball's weights and manifest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from moodwire.engines.faceapi_expression_spec import (FACEAPI_LABELS, INPUT_NAME, INPUT_SIZE, OUTPUT_NAME,
                                                      PREPROCESSING)
from moodwire.engines.registry import get_slot, sha256_of
from moodwire.exporters.results import ExportResult

SLOT = "face-expression-faceapi"
ONNX_NAME, SIDECAR_NAME = get_slot(SLOT).derived
OPSET = 17
TOLERANCE = 1e-5  # absolute, on probabilities
PARITY_SEED = 20261207
PARITY_BATCHES = (1, 8)

if TYPE_CHECKING:
    from torch import nn

    from moodwire.engines.registry import ResolvedModel


def export_faceapi_expression(model: ResolvedModel, progress: Callable[[str], None] = print) -> ExportResult:
    """Load the tfjs weights into the PyTorch port, export, parity-check; the ONNX appears only once it passed."""
    import torch

    from moodwire.exporters.faceapi_net import load_faceapi_expression
    from moodwire.exporters.onnx_export import export_parity_checked, write_sidecar

    weights, manifest = model.path, model.companion_paths[0]
    progress(f"loading face-api.js weights from {weights} ({manifest.name})…")
    net = load_faceapi_expression(weights, manifest)
    progress(f"exporting {ONNX_NAME} (opset {OPSET}), parity with ONNX Runtime (tolerance {TOLERANCE:g})…")
    final = model.derived_dir / ONNX_NAME
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    diff = export_parity_checked(net, (torch.from_numpy(_parity_faces(1)),), final, [INPUT_NAME], [OUTPUT_NAME],
                                 axes, OPSET, lambda candidate: _parity(candidate, net), TOLERANCE)
    source = model.slot.source
    sidecar = write_sidecar(model.derived_dir / SIDECAR_NAME, {
        "model": "face_expression_faceapi",
        "architecture": "face-api.js FaceExpressionNet (4 dense blocks of separable convolutions, 0.32 M "
                        "parameters), ported from tfjs weights",
        "onnx": final.name, "onnx_sha256": sha256_of(final),
        "inputs": [{"name": INPUT_NAME, "shape": ["batch", 3, INPUT_SIZE, INPUT_SIZE], "dtype": "float32"}],
        "outputs": [{"name": OUTPUT_NAME, "shape": ["batch", len(FACEAPI_LABELS)], "dtype": "float32",
                     "meaning": "softmax probabilities in labels order"}],
        "preprocessing": PREPROCESSING, "labels": list(FACEAPI_LABELS),
        "source": {"package": f"npm:{source.package}@{source.version}", "file": str(weights),
                   "sha256": model.sha256, "manifest": str(manifest), "license": source.license},
        "opset": OPSET, "torch_version": torch.__version__, "exporter": "torch.onnx.export(dynamo=False)",
        "parity": {"max_abs_diff": diff, "tolerance": TOLERANCE, "batches": list(PARITY_BATCHES),
                   "seed": PARITY_SEED, "reference": "PyTorch port, CPU", "runtime": "onnxruntime CPU"},
    })
    progress(f"wrote {final} (parity max abs diff {diff:.3g})")
    return ExportResult(final, sidecar, diff, TOLERANCE)


def _parity_faces(batch: int) -> np.ndarray:
    """Fixed pseudo-random faces, preprocessed as the run-time path does."""
    from moodwire.engines.faceapi_expression_spec import preprocess

    rng = np.random.default_rng(PARITY_SEED + batch)
    return preprocess([rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8) for _ in range(batch)])


def _parity(onnx_path, net: nn.Module) -> float:
    from moodwire.exporters.onnx_export import max_abs_diff_vs_torch

    return max(max_abs_diff_vs_torch(onnx_path, net, {INPUT_NAME: _parity_faces(b)}) for b in PARITY_BATCHES)
