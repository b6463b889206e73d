"""Inference: the model registry (registry.py), the engine interface (engine.py) with its ONNX Runtime
(onnxruntime_backend.py) and native TensorRT (tensorrt_backend.py) backends, loading (loader.py), and
the accelerator probes (accelerators.py).
"""
