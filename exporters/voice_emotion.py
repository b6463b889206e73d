"""The small voice-emotion model (PyTorch) and its ONNX export with a parity check.

Log-mel frames (pipeline/voice/logmel.py) -> three conv blocks -> mean and max over time -> 7
classes in the face model's label order. About 19 k parameters: small enough to train on a CPU
in minutes from RAVDESS or CREMA-D, and to run in about 3 ms per 5 s utterance on one CPU thread.

No labelled emotional speech ships in any package this project can install, so no trained model
ships either: tools/train_voice.py trains one on a folder the user has, and only a model that went
through training gets exported with a sidecar (``export_trained`` refuses otherwise).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from moodwire.exporters.results import ExportResult
from moodwire.pipeline.core.labels import LABELS
from moodwire.pipeline.voice.logmel import N_MELS, RECIPE
from moodwire.pipeline.voice.model import SIDECAR_KIND, sidecar_for

INPUT_NAME = "logmel"
OUTPUT_NAME = "probs"
OPSET = 17
TOLERANCE = 1e-5  # absolute, on probabilities
PARITY_FRAMES = (32, 157, 500)  # the time axis is dynamic: check several lengths


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class VoiceEmotionNet(nn.Module):
    """(batch, 1, N_MELS, frames) log-mel -> (batch, 7) logits. Any frames >= 8."""

    def __init__(self, n_classes: int = len(LABELS), width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        self.features = nn.Sequential(_block(1, width), _block(width, 2 * width), _block(2 * width, 2 * width))
        self.head = nn.Sequential(nn.Linear(4 * width, 64), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(64, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).mean(dim=2)  # (batch, channels, time)
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.head(pooled)


class WithSoftmax(nn.Module):
    """What gets exported: probabilities, so every runtime reads the same numbers."""

    def __init__(self, net: VoiceEmotionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


def parity_input(frames: int, seed: int = 0) -> np.ndarray:
    """Fixed pseudo-random features in the log-mel range."""
    return np.random.default_rng(seed + frames).uniform(-2.5, 2.5, (1, 1, N_MELS, frames)).astype(np.float32)


def export_checked(net: VoiceEmotionNet, onnx_path: Path) -> float:
    """Export with dynamic batch and time axes; the file only appears under its name if ONNX Runtime
    matches PyTorch within ``TOLERANCE`` at every length of ``PARITY_FRAMES``. Returns that max |diff|."""
    from moodwire.exporters.onnx_export import export_parity_checked, max_abs_diff_vs_torch

    model = WithSoftmax(net).eval()
    axes = {INPUT_NAME: {0: "batch", 3: "frames"}, OUTPUT_NAME: {0: "batch"}}

    def parity(candidate: Path) -> float:
        return max(max_abs_diff_vs_torch(candidate, model, {INPUT_NAME: parity_input(n)}) for n in PARITY_FRAMES)

    return export_parity_checked(model, (torch.from_numpy(parity_input(100)),), Path(onnx_path), [INPUT_NAME],
                                 [OUTPUT_NAME], axes, OPSET, parity, TOLERANCE)


def export_trained(net: VoiceEmotionNet, onnx_path: Path, training: dict[str, Any]) -> ExportResult:
    """Export a TRAINED model with its sidecar. ``training`` must say what it was trained on and how
    it scored on held-out speakers; anything else is refused, so no untrained weights get a sidecar."""
    from moodwire.exporters.onnx_export import write_sidecar

    missing = [k for k in ("data_folder", "description", "epochs_run", "val_accuracy", "counts_per_class")
               if k not in training]
    if missing or int(training.get("epochs_run", 0)) < 1:
        raise ValueError(f"refusing to export an untrained voice model (training record lacks {missing or 'epochs'})")
    diff = export_checked(net, onnx_path)
    sidecar = write_sidecar(sidecar_for(onnx_path), {
        "kind": SIDECAR_KIND,
        "status": "trained",
        "labels": list(LABELS),
        "input": INPUT_NAME, "output": OUTPUT_NAME, "opset": OPSET,
        "features": RECIPE,
        "training": training,
        "onnx_sha256": hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest(),
        "parity_max_abs_diff": diff, "parity_tolerance": TOLERANCE,
        "torch": torch.__version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return ExportResult(Path(onnx_path), sidecar, diff, TOLERANCE)
