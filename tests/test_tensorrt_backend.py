"""The native TensorRT backend (engines/tensorrt_backend.py): its cache key and guards on any machine,
building, caching and running the fusion model where TensorRT and a CUDA GPU are present."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from moodwire.engines.engine import EngineError
from moodwire.engines.loader import load_engine
from moodwire.engines.tensorrt_build import BUILD_RECIPE, build_recipe, engine_cache_key, engine_path

PROFILE = {"persons": (1, 4, 16)}
FP16_ATOL = 5e-3  # fp16 arithmetic on values in [0, 1] and [-1, 1]


@pytest.fixture(scope="module")
def fusion_model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from moodwire.engines.fusion_spec import default_params_path
    from moodwire.exporters.fusion import export_fusion

    return export_fusion(default_params_path(), tmp_path_factory.mktemp("fusion"), lambda line: None).onnx_path


def test_the_cache_key_changes_with_each_of_its_inputs(tmp_path):
    onnx_a, onnx_b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx_a.write_bytes(b"model a")
    onnx_b.write_bytes(b"model b")
    gpu, version, recipe = "NVIDIA H100 80GB HBM3", "10.9.0", build_recipe(PROFILE)
    key = engine_cache_key(onnx_a, gpu, version, recipe)
    assert key == engine_cache_key(onnx_a, gpu, version, recipe)
    variants = {engine_cache_key(onnx_b, gpu, version, recipe),
                engine_cache_key(onnx_a, "NVIDIA H200", version, recipe),
                engine_cache_key(onnx_a, gpu, "10.9.1", recipe),
                engine_cache_key(onnx_a, gpu, version, build_recipe({"persons": (1, 4, 32)})),
                engine_cache_key(onnx_a, gpu, version, BUILD_RECIPE)}
    assert key not in variants and len(variants) == 5
    assert engine_path(onnx_a, tmp_path, gpu, version, PROFILE) == tmp_path / f"{key}.engine"
    assert build_recipe(None) == BUILD_RECIPE  # the slots' engines keep their keys


def test_without_tensorrt_construction_says_why(tmp_path, monkeypatch, fusion_model):
    from moodwire.engines.tensorrt_backend import TensorRTEngine

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(EngineError, match="needs the tensorrt package, which is not installed"):
        TensorRTEngine(fusion_model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_without_a_cuda_gpu_construction_says_why(tmp_path, monkeypatch, fusion_model):
    import types

    from moodwire.engines.tensorrt_backend import TensorRTEngine

    torch = pytest.importorskip("torch")
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineError, match="needs a CUDA GPU"):
        TensorRTEngine(fusion_model, tmp_path)


def test_load_engine_falls_back_to_onnxruntime_and_says_why(monkeypatch, fusion_model):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    engine = load_engine(fusion_model, "tensorrt-native")
    assert engine.backend.startswith("onnxruntime:")
    assert "tensorrt-native unavailable" in engine.backend and "not installed" in engine.backend
    assert len(engine.run(_inputs(2))) == 4


def _inputs(persons: int) -> dict[str, np.ndarray]:
    from moodwire.exporters.fusion import random_inputs

    return random_inputs(persons, np.random.default_rng(100 + persons))


def _require_tensorrt_and_gpu():
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        pytest.skip(f"tensorrt is not installed ({exc}); it cannot be on the CPU machines")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"no CUDA GPU for torch {torch.__version__} (CUDA build {torch.version.cuda})")
    return trt


@pytest.mark.gpu
def test_engine_builds_then_reloads_from_its_cache_and_matches_onnxruntime(tmp_path, fusion_model):
    trt = _require_tensorrt_and_gpu()
    from moodwire.engines.tensorrt_backend import TensorRTEngine

    lines: list[str] = []
    first = TensorRTEngine(fusion_model, tmp_path / "engines", PROFILE, lines.append)
    assert not first.from_cache and first.engine_path.is_file()
    assert first.engine_path.parent == tmp_path / "engines"
    assert any("building" in line for line in lines)
    built_at = first.engine_path.stat().st_mtime_ns
    assert first.backend == f"tensorrt-native:{trt.__version__}:fp16"

    lines.clear()
    engine = TensorRTEngine(fusion_model, tmp_path / "engines", PROFILE, lines.append)
    assert engine.from_cache and engine.engine_path == first.engine_path
    assert engine.engine_path.stat().st_mtime_ns == built_at and not any("building" in line for line in lines)

    engine.warm_up()
    reference = load_engine(fusion_model, "cpu")
    for persons in (1, 5):
        x = _inputs(persons)  # absent rows hold NaN: masking must hold in fp16 too
        got, want = engine.run(x), reference.run(x)
        assert engine.last_run_ms > 0
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == np.float32
            np.testing.assert_allclose(g, w, atol=FP16_ATOL)


@pytest.mark.gpu
def test_a_batch_outside_the_profile_is_refused(tmp_path, fusion_model):
    _require_tensorrt_and_gpu()
    from moodwire.engines.tensorrt_backend import TensorRTEngine

    engine = TensorRTEngine(fusion_model, tmp_path, {"persons": (1, 2, 4)})
    with pytest.raises(EngineError, match="outside the engine's profile"):
        engine.run(_inputs(5))


@pytest.mark.gpu
def test_a_damaged_cached_engine_is_rebuilt(tmp_path, fusion_model):
    _require_tensorrt_and_gpu()
    from moodwire.engines.tensorrt_backend import TensorRTEngine

    path = TensorRTEngine(fusion_model, tmp_path, PROFILE).engine_path
    path.write_bytes(b"not an engine")
    engine = TensorRTEngine(fusion_model, tmp_path, PROFILE)
    assert not engine.from_cache and path.stat().st_size > 100
    assert len(engine.run(_inputs(3))) == 4


def test_the_build_profile_maps_named_dynamic_axes_to_their_sizes(fusion_model):
    """The optimisation profile TensorRT gets, checked with a stand-in network (the real one needs tensorrt)."""
    import types

    from moodwire.engines.fusion_spec import INPUT_SHAPES
    from moodwire.engines.tensorrt_build import _named_profile

    shapes: dict[str, tuple] = {}
    profile = types.SimpleNamespace(set_shape=lambda name, *s: shapes.setdefault(name, s))
    builder = types.SimpleNamespace(create_optimization_profile=lambda: profile)
    inputs = [types.SimpleNamespace(name=n, shape=tuple(-1 if isinstance(d, str) else d for d in s))
              for n, s in INPUT_SHAPES.items()]
    network = types.SimpleNamespace(num_inputs=len(inputs), get_input=inputs.__getitem__)
    _named_profile(builder, network, fusion_model, PROFILE)
    assert shapes["probs"] == ((1, 3, 7), (4, 3, 7), (16, 3, 7))
    assert shapes["confidence"] == ((1, 3), (4, 3), (16, 3))
    with pytest.raises(RuntimeError, match=r"axis 0 \(persons\) is dynamic but the profile gives sizes only"):
        _named_profile(builder, network, fusion_model, {"batch": (1, 1, 8)})
