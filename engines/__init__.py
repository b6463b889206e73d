"""Inference backends (ONNX Runtime, TensorRT, PyTorch) and the model registry.

Only the accelerator probes exist so far; the backends come with the face,
speech and fusion issues.
"""
