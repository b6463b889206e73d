"""What an exporter returns (``moodwire export`` prints its summary)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExportResult:
    """An ONNX file that passed its parity check against PyTorch, and its JSON sidecar."""

    onnx_path: Path
    sidecar_path: Path
    max_abs_diff: float
    tolerance: float

    def summary(self) -> str:
        return (f"{self.onnx_path} (ONNX Runtime vs PyTorch max |diff| {self.max_abs_diff:.2e}, "
                f"tolerance {self.tolerance:.0e}); sidecar {self.sidecar_path}")
