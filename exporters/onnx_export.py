"""PyTorch -> ONNX for every model slot: atomic export, an ONNX Runtime parity figure, JSON sidecars.

The exporter is torch's TorchScript one (``dynamo=False``). In torch 2.13 it
is deprecated but works offline with only ``onnx``, exports at the opset asked
for, in under a second here. The dynamo exporter needs two more packages
(onnxscript, onnx-ir), takes several seconds, and cannot lower this graph to
opset 17 (it keeps 18).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
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
            # an explicit F.pad (TensorFlow's "same" padding in the face-api.js port) leaves a Slice the folder skips
            warnings.filterwarnings("ignore", message=r"Constant folding - Only steps=1 can be constant folded")
            torch.onnx.export(model.eval(), example_inputs, str(tmp), input_names=list(input_names),
                              output_names=list(output_names),
                              dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export_parity_checked(model: torch.nn.Module, example_inputs: tuple, final: Path, input_names: Sequence[str],
                          output_names: Sequence[str], dynamic_axes: Mapping[str, Mapping[int, str]], opset: int,
                          parity: Callable[[Path], float], tolerance: float) -> float:
    """Export to a hidden name, measure ``parity(candidate)`` (max |ONNX Runtime - PyTorch|), and only when
    it is within ``tolerance`` move the file to ``final``; otherwise ParityError and no file. Returns the diff."""
    final = Path(final)
    candidate = export_onnx(model, example_inputs, final.with_name(f".{final.name}.unchecked"), input_names,
                            output_names, dynamic_axes, opset)
    try:
        diff = parity(candidate)
        if not diff <= tolerance:
            raise ParityError(f"{final.name}: ONNX Runtime differs from PyTorch by {diff:.3g} > {tolerance:g}")
        os.replace(candidate, final)
    finally:
        candidate.unlink(missing_ok=True)
    return diff


def require_checksum(path: Path, sha256: str) -> str:
    """The file's sha256, after checking it equals the recorded one (ValueError naming both otherwise)."""
    from moodwire.engines.registry import sha256_of

    actual = sha256_of(Path(path))
    if actual != sha256.lower():
        raise ValueError(f"{path}: sha256 is {actual}, the recorded checksum is {sha256}")
    return actual


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
    from moodwire.pipeline.core.paths import write_json_atomic

    return write_json_atomic(path, data)
