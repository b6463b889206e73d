"""The engine interface and its ONNX Runtime backend, on a small ONNX graph built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from moodwire.engines.accelerators import onnxruntime_providers
from moodwire.engines.engine import EngineError
from moodwire.engines.loader import load_engine
from moodwire.engines.onnxruntime_backend import PREFERENCE, choose_providers


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory) -> Path:
    """y = softmax(x * 2) over a dynamic batch axis."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["s"]),
                               helper.make_node("Softmax", ["s"], ["y"], axis=1)], "g", [x], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "softmax.onnx"
    onnx.save(model, path)
    return path


def test_providers_follow_the_preference_and_always_end_with_cpu():
    assert choose_providers(list(PREFERENCE)) == list(PREFERENCE)
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider"], ("cuda",)) == ["CPUExecutionProvider"]
    assert choose_providers(list(PREFERENCE), ("cpu",)) == ["CPUExecutionProvider"]


def test_cpu_engine_runs_any_batch_and_reports_backend_and_time(softmax_model):
    engine = load_engine(softmax_model, "cpu")
    assert engine.backend == "onnxruntime:CPUExecutionProvider"
    engine.warm_up()
    x = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 5]], dtype=np.float32)
    (y,) = engine.run({"x": x})
    expected = np.exp(2 * x) / np.exp(2 * x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    assert engine.last_run_ms > 0


def test_auto_engine_gets_the_best_provider_this_onnxruntime_has(softmax_model):
    engine = load_engine(softmax_model, "auto")
    best = next(p for p in PREFERENCE if p in onnxruntime_providers())
    assert engine.backend == f"onnxruntime:{best}"


def test_a_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(EngineError, match=r"cannot load ONNX model .*bad.onnx.*moodwire export"):
        load_engine(bad, "cpu")


def test_an_unknown_engine_name_lists_the_choices(softmax_model):
    with pytest.raises(EngineError, match="use one of auto, cpu, cuda, tensorrt"):
        load_engine(softmax_model, "tpu")


@pytest.mark.gpu
def test_on_a_gpu_the_engine_runs_on_cuda_or_tensorrt(softmax_model):
    providers = onnxruntime_providers() or []
    if "CUDAExecutionProvider" not in providers:
        pytest.skip("this onnxruntime has no CUDA provider (install the gpu extra on an NVIDIA machine)")
    engine = load_engine(softmax_model, "cuda")
    assert engine.backend == "onnxruntime:CUDAExecutionProvider"
    (y,) = engine.run({"x": np.zeros((4, 3), np.float32)})
    np.testing.assert_allclose(y, 1 / 3, rtol=1e-5)


def test_every_engine_the_config_allows_is_one_the_loader_knows():
    from moodwire.engines.loader import NATIVE_TENSORRT
    from moodwire.engines.onnxruntime_backend import ENGINE_PROVIDERS
    from moodwire.pipeline.core.config import ENGINE_CHOICES

    assert set(ENGINE_CHOICES) == {*ENGINE_PROVIDERS, NATIVE_TENSORRT}
