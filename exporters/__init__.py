"""PyTorch definitions of moodwire's models and their ONNX / TensorRT export.

Empty until the face issue adds the expression model.
"""
