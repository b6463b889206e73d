"""Stand-ins for model profiles: the published architecture and file format, with random weights made here.

The real weights cannot be downloaded on the machines that build and test moodwire, so the tests and
the latency benchmark use files made here in each profile's exact format. For HSEmotion's
``enet_b0_8_va_mtl.onnx`` that is an EfficientNet-B0 (timm's layout: the same stages, kernels,
strides, expansion and squeeze-excitation) with a 10-output head (8 logits, valence, arousal),
exported the way the authors' ``convert_pt_to_onnx.py`` exports it: input ``input`` (N, 3, 224,
224), output ``output``, a dynamic batch axis, opset 11. A stand-in proves the plumbing and the
preprocessing and measures the cost; it says nothing about accuracy.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from moodwire.exporters.onnx_export import export_parity_checked, max_abs_diff_vs_torch

# EfficientNet-B0 stages: (expansion, output channels, repeats, first stride, kernel)
B0_STAGES = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
             (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))
SE_RATIO = 0.25  # of the block's input channels
HEAD_CHANNELS = 1280
OPSET = 11  # as the authors export
PARITY_TOLERANCE = 1e-4  # absolute, ONNX Runtime vs PyTorch on the 10 outputs


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.SiLU()) if act else nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(nn.functional.silu(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise k x k, squeeze-excite, 1x1 project; skip when shapes allow."""

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int, kernel: int) -> None:
        super().__init__()
        mid = c_in * expansion
        self.expand = _conv_bn(c_in, mid, 1) if expansion != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.se = SqueezeExcite(mid, max(1, int(c_in * SE_RATIO)))
        self.project = _conv_bn(mid, c_out, 1, act=False)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.skip else y


class EfficientNetB0(nn.Module):
    """(N, 3, H, W) normalised RGB -> (N, outputs). ``width`` scales every stage (1.0 = B0 itself)."""

    def __init__(self, outputs: int = 10, width: float = 1.0) -> None:
        super().__init__()
        scale = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731 - timm rounds channels to 8
        blocks: list[nn.Module] = [_conv_bn(3, scale(32), 3, 2)]
        c_in = scale(32)
        for expansion, c_out, repeats, stride, kernel in B0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, scale(c_out), expansion, stride if i == 0 else 1, kernel))
                c_in = scale(c_out)
        blocks.append(_conv_bn(c_in, scale(HEAD_CHANNELS), 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(scale(HEAD_CHANNELS), outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def randomise(model: nn.Module, generator: torch.Generator) -> None:
    """timm's EfficientNet initialisation (conv weights normal with std sqrt(2 / fan-out)), so activations
    keep their scale through the depth, and non-trivial BatchNorm statistics, so the export's folded
    constants are exercised. Even so, the outputs of random weights move little with the input (about
    1e-4 between two real faces): tests/test_profiles.py checks the preprocessing on the input tensor."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_out) ** 0.5)
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
        elif isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * m.in_features ** -0.5)


def make_hsemotion_standin(path: Path, width: float = 0.25, seed: int = 0) -> Path:
    """Write an ONNX in the format of HSEmotion's ``enet_b0_8_va_mtl.onnx``, with random weights; ParityError
    if ONNX Runtime and PyTorch disagree on it by more than PARITY_TOLERANCE."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = EfficientNetB0(outputs=10, width=width).eval()
    with torch.no_grad():
        randomise(model, generator)
    x = torch.randn(2, 3, 224, 224, generator=generator)
    export_parity_checked(model, (x[:1],), path, ["input"], ["output"], {"input": {0: "batch_size"},
                          "output": {0: "batch_size"}}, OPSET,
                          lambda candidate: max_abs_diff_vs_torch(candidate, model, {"input": x.numpy()}),
                          PARITY_TOLERANCE)
    return path
