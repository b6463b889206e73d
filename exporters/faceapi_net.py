"""face-api.js's FaceExpressionNet in PyTorch, and its tfjs weights (uint8-quantised) loaded into it.

The architecture follows face-api.js's sources (``faceFeatureExtractor/denseBlock.ts``,
``FaceFeatureExtractor.ts``, ``faceExpressionNet/FaceExpressionNet.ts``): four dense blocks of a
stride-2 convolution and three depthwise-separable convolutions whose outputs are summed, 32, 64, 128
and 256 channels, 112 -> 7 pixels; a 7x7 average pool; a fully connected layer to 7 classes; softmax.
TensorFlow's "same" padding of a stride-2 3x3 convolution on an even size pads one pixel on the right
and bottom only, so those convolutions pad explicitly. Weights are NHWC/HWIO in the tfjs manifest and
are transposed to PyTorch's layouts here; each quantised tensor is ``q * scale + min``, as tfjs reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = (32, 64, 128, 256)
CLASSES = 7


class SeparableConv(nn.Module):
    """tf.separableConv2d + bias: a 3x3 depthwise convolution (stride 1 or 2) then a 1x1 pointwise one."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, padding=1 if stride == 1 else 0, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))
        return self.pointwise(self.depthwise(x))


class FirstConv(nn.Module):
    """tf.conv2d(x, filters, 2, 'same') + bias on the image."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class DenseBlock4(nn.Module):
    def __init__(self, cin: int, cout: int, first: bool) -> None:
        super().__init__()
        self.conv0 = FirstConv(cin, cout) if first else SeparableConv(cin, cout, 2)
        self.conv1, self.conv2, self.conv3 = (SeparableConv(cout, cout, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = torch.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(torch.relu(out1 + out2))
        out4 = self.conv3(torch.relu(out1 + (out2 + out3)))
        return torch.relu(out1 + (out2 + (out3 + out4)))


class FaceExpressionNet(nn.Module):
    """(N, 3, 112, 112) normalised faces -> (N, 7) probabilities in face-api.js's label order."""

    def __init__(self) -> None:
        super().__init__()
        sizes = (3, *CHANNELS)
        self.dense = nn.ModuleList(DenseBlock4(sizes[i], sizes[i + 1], first=i == 0) for i in range(4))
        self.fc = nn.Linear(CHANNELS[-1], CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.dense:
            x = block(x)
        x = F.avg_pool2d(x, 7, 2)
        return torch.softmax(self.fc(x.flatten(1)), dim=1)


def read_tfjs_weights(manifest_path: Path, folder: Path | None = None) -> dict[str, np.ndarray]:
    """name -> float32 array in the manifest's (TensorFlow) layout, dequantised as tfjs does."""
    manifest_path = Path(manifest_path)
    folder = folder or manifest_path.parent
    weights: dict[str, np.ndarray] = {}
    for group in json.loads(manifest_path.read_text()):
        data = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"]))
            quant = spec.get("quantization")
            if quant:
                if quant["dtype"] != "uint8":
                    raise ValueError(f"{spec['name']}: quantisation {quant['dtype']} is not handled (uint8 only)")
                raw = np.frombuffer(data, np.uint8, count, offset)
                values = (raw.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)
                offset += count
            else:
                values = np.frombuffer(data, np.float32, count, offset).copy()
                offset += 4 * count
            weights[spec["name"]] = values.reshape(spec["shape"])
        if offset != len(data):
            raise ValueError(f"{manifest_path}: the weights use {offset} of {len(data)} bytes; not this model's files")
    return weights


def load_faceapi_expression(weights_bin: Path, manifest: Path) -> FaceExpressionNet:
    """The PyTorch model with face-api.js's weights (the .bin must lie where the manifest's paths say)."""
    w = read_tfjs_weights(Path(manifest), Path(weights_bin).parent)
    model = FaceExpressionNet()
    state: dict[str, np.ndarray] = {}
    for i in range(len(CHANNELS)):
        prefix = f"dense{i}"
        if i == 0:
            state["dense.0.conv0.conv.weight"] = w[f"{prefix}/conv0/filters"].transpose(3, 2, 0, 1)
            state["dense.0.conv0.conv.bias"] = w[f"{prefix}/conv0/bias"]
        for j in range(0 if i else 1, 4):
            name = f"dense.{i}.conv{j}"
            state[f"{name}.depthwise.weight"] = w[f"{prefix}/conv{j}/depthwise_filter"].transpose(2, 3, 0, 1)
            state[f"{name}.pointwise.weight"] = w[f"{prefix}/conv{j}/pointwise_filter"].transpose(3, 2, 0, 1)
            state[f"{name}.pointwise.bias"] = w[f"{prefix}/conv{j}/bias"]
    state["fc.weight"] = w["fc/weights"].T
    state["fc.bias"] = w["fc/bias"]
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True)
    return model.eval()
