"""PyTorch -> ONNX for every model slot: atomic export, an ONNX Runtime parity figure, JSON sidecars.

The exporter is torch's TorchScript one (``dynamo=False``). In torch 2.13 it
is deprecated but works offline with only ``onnx``, exports at the opset asked
for, in under a second here. The dynamo exporter needs two more packages
(onnxscript, onnx-ir), takes several seconds, and cannot lower this graph to
opset 17 (it keeps 18).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch


class ParityError(RuntimeError):
    """The ONNX model's outputs differ from PyTorch's by more than the stated tolerance."""


def export_onnx(model: torch.nn.Module, example_inputs: tuple, path: Path, input_names: Sequence[str],
                output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]],
                opset: int = 17) -> Path:
    """Export ``model`` (eval mode) to ``path`` via a temporary name, so a failure never leaves a partial file."""
    import onnx  # only export needs it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the exporter's own deprecation notice: the choice is explained in this module's docstring
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(model.eval(), example_inputs, str(tmp), input_names=list(input_names),
                              output_names=list(output_names),
                              dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def max_abs_diff_vs_torch(onnx_path: Path, model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> float:
    """Largest absolute difference over all outputs, ONNX Runtime CPU vs ``model``.

    ``inputs`` maps ONNX input names to arrays, in the order of the model's positional arguments.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, inputs)
    with torch.no_grad():
        want = model.eval()(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()))
    want = [want] if isinstance(want, torch.Tensor) else list(want)
    if len(got) != len(want):
        raise ParityError(f"{onnx_path}: {len(got)} ONNX outputs, PyTorch gives {len(want)}")
    diffs = []
    for ort_out, torch_out in zip(got, want):
        ref = torch_out.numpy()
        if ort_out.shape != ref.shape:
            raise ParityError(f"{onnx_path}: ONNX output shape {ort_out.shape}, PyTorch {ref.shape}")
        diffs.append(float(np.max(np.abs(ort_out.astype(np.float64) - ref.astype(np.float64)), initial=0.0)))
    return max(diffs)


def write_sidecar(path: Path, data: dict) -> Path:
    """Write ``data`` as indented JSON next to an exported model, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path
