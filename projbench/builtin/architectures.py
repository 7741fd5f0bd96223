"""Built-in plugin: the architectures of Li et al. 2018 ("intrinsic dimension"), plus ResNets.

Every model takes float input of shape (N, C, H, W) and returns logits of shape (N, num_classes).
Parameter counts D (trainable parameters, :func:`projbench.architectures.count_parameters`):

==============  =================  ==================  ==============
name            MNIST (1×28×28)    CIFAR-10 (3×32×32)  digits (1×8×8)
==============  =================  ==================  ==============
mlp             50,890             197,322             4,810
fc              199,210            656,810             55,210
lenet           44,426             62,006              21,386
untied-lenet    286,334            658,238             67,454
fc-lenet        3,640,574          16,397,726          68,606
fctied-lenet    92,138             172,598             24,890
resnet20        —                  269,722             —
resnet18        —                  11,173,962          —
==============  =================  ==================  ==============

**Size options** (``make_model(arch, dataset, **options)``; the defaults give the counts above):
``mlp`` ``width`` (64); ``fc`` ``width`` (200) and ``depth`` (2), D = (n+1)·w + (depth−1)·(w+1)·w
+ (w+1)·c for n inputs and c classes; the LeNet family and the ResNets ``scale`` (1.0), a factor
on every channel count and dense width (LeNet: 6, 16, 120, 84; ResNets: the stage widths), each
rounded half up and at least 1. :func:`projbench.architectures.size_for_parameters` inverts D.

The MNIST and CIFAR-10 counts of fc, lenet, untied-lenet and fc-lenet equal those Li et al.
report. The LeNet family follows their Keras code: ReLU after every hidden layer, 2×2 max-pool
after each of the two "convolution" stages, He-normal weights (N(0, 2/fan_in)) and zero biases.

Geometry of the LeNet family for an input of side s (each spatial axis separately): with padding
p = 0 when min(H, W) >= 16 (the paper's LeNet), and p = 2 ("same" 5×5 convolutions) for smaller
inputs such as the 8×8 digits, the stage sizes are s1 = s + 2p − 4 (conv1), s1 // 2 (pool),
s2 = s1 // 2 + 2p − 4 (conv2), s2 // 2 (pool); e.g. 28 → 24 → 12 → 8 → 4 and 32 → 28 → 14 → 10 → 5.
The four variants differ only in how the two "convolution" stages connect an input map to an
output map of those sizes:

- ``lenet``: 5×5 convolutions (local connectivity, weights tied across positions).
- ``untied-lenet``: :class:`LocallyConnected2d` (local 5×5 connectivity, untied: every output
  position has its own 5×5×C_in×C_out kernel and its own bias per channel and position, the
  Keras ``LocallyConnected2D`` convention that reproduces 286,334 and 658,238).
- ``fc-lenet``: dense layers from the flattened input to C_out·s_out² units (neither local nor
  tied), reshaped to (C_out, s_out, s_out) so that the max-pool is the same as LeNet's.
- ``fctied-lenet``: convolutions whose kernel is as large as the input, tied: kernel side
  k = s_in + s_out − 1 with padding s_out − 1 gives an output of side s_out where every output
  unit sees the *whole* input map (fully connected) while the weights are shared across positions
  (tied); e.g. MNIST: 1→6 with 51×51 kernels (28 → 24), 6→16 with 19×19 kernels (12 → 8).
  Li et al. do not state D for this variant; ours is 92,138 (MNIST) and 172,598 (CIFAR-10).

The ResNets are for 3×32×32 input only (``supports``): ``resnet20`` is He et al.'s CIFAR ResNet
(16-32-64 channels, 3×3 basic blocks, BatchNorm) with the parameter-free zero-padding shortcut
("option A") where the shape changes, as in the paper: 269,722 parameters (≈ 0.27 M); and
``resnet18`` the common CIFAR ResNet-18 (3×3 stem, no max-pool, 64-128-256-512, 1×1+BN
projection shortcuts): 11,173,962 parameters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from projbench.architectures import Architecture
from projbench.errors import InvalidArgumentError

Shape = tuple[int, int, int]

__all__ = [
    "ARCHITECTURES",
    "FCLeNet",
    "FCTiedLeNet",
    "LeNet",
    "LeNetGeometry",
    "LocallyConnected2d",
    "ResNet18",
    "ResNet20",
    "UntiedLeNet",
    "lenet_geometry",
    "make_fc",
    "make_mlp",
]


# --------------------------------------------------------------------------------------------
# helpers


def _he_normal_(weight: torch.Tensor, fan_in: int) -> None:
    """He-normal initialisation: entries i.i.d. N(0, 2 / fan_in) (Keras ``he_normal``)."""
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / fan_in))


def _he_init(module: nn.Module) -> None:
    """He-normal weights and zero biases for every Linear, Conv2d and LocallyConnected2d."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            _he_normal_(m.weight, m.in_features)
        elif isinstance(m, nn.Conv2d):
            _he_normal_(m.weight, m.weight[0].numel())
        elif isinstance(m, LocallyConnected2d):
            _he_normal_(m.weight, m.weight.shape[-1])
        else:
            continue
        bias = getattr(m, "bias", None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)


def _check_shape(input_shape: Any, num_classes: Any) -> tuple[Shape, int]:
    try:
        shape = tuple(int(v) for v in input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidArgumentError(
            f"input_shape must be (C, H, W) with positive entries, got {input_shape!r}"
        )
    if int(num_classes) < 1:
        raise InvalidArgumentError(f"num_classes must be >= 1, got {num_classes!r}")
    return (shape[0], shape[1], shape[2]), int(num_classes)


# --------------------------------------------------------------------------------------------
# fully connected


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


def _positive_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"scale must be a positive finite number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"scale must be a positive finite number, got {value!r}")
    return float(value)


def scaled(count: int, scale: float) -> int:
    """A layer size ``count`` times ``scale``, rounded half up, at least 1 (``scale=1``: ``count``)."""
    return max(1, math.floor(count * scale + 0.5))


def make_fc(
    input_shape: Shape,
    num_classes: int,
    hidden: tuple[int, ...] | None = None,
    *,
    width: int = 200,
    depth: int = 2,
) -> nn.Module:
    """Flatten → [Linear → ReLU] per hidden width → Linear to ``num_classes`` logits.

    The hidden widths are ``hidden`` if given, else ``depth`` layers of ``width`` units.
    D = Σ (fan_in + 1)·fan_out over the layers, e.g. 784-200-200-10: 199,210; for input size n,
    c classes, depth 2 and width w: D = (n + 1)·w + (w + 1)·w + (w + 1)·c.
    """
    shape, classes = _check_shape(input_shape, num_classes)
    if hidden is None:
        hidden = (_positive_int("width", width),) * _positive_int("depth", depth)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, classes))
    model = nn.Sequential(*layers)
    _he_init(model)
    return model


def make_mlp(input_shape: Shape, num_classes: int, *, width: int = 64) -> nn.Module:
    """A small one-hidden-layer MLP: input → ``width`` (64) → ``num_classes`` (ReLU); any input shape."""
    return make_fc(input_shape, num_classes, hidden=(_positive_int("width", width),))


# --------------------------------------------------------------------------------------------
# locally connected layer


class LocallyConnected2d(nn.Module):
    """A convolution with untied weights: each output position has its own kernel and bias.

    For input x of shape (N, C_in, H, W), kernel k, stride 1 and zero padding p, the output has
    shape (N, C_out, H_out, W_out) with H_out = H + 2p − k + 1 (likewise W_out), and

        y[n, o, i, j] = Σ_{c,u,v} weight[(i, j), o, (c, u, v)] · x_pad[n, c, i+u, j+v] + bias[o, i, j].

    ``weight`` has shape (H_out·W_out, C_out, C_in·k·k) and ``bias`` (C_out, H_out, W_out):
    D = H_out·W_out·C_out·(C_in·k² + 1). Implemented as ``F.unfold`` (im2col) followed by one
    batched matmul over positions (``einsum``), with no Python loop over positions.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: tuple[int, int],
        kernel_size: int,
        padding: int = 0,
    ) -> None:
        super().__init__()
        h, w = input_size
        out_h, out_w = h + 2 * padding - kernel_size + 1, w + 2 * padding - kernel_size + 1
        if out_h < 1 or out_w < 1:
            raise InvalidArgumentError(
                f"LocallyConnected2d: kernel {kernel_size} with padding {padding} does not fit "
                f"input {h}×{w}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size = (h, w)
        self.output_size = (out_h, out_w)
        self.kernel_size, self.padding = kernel_size, padding
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(out_h * out_w, out_channels, fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels, out_h, out_w))
        bound = 1.0 / math.sqrt(fan_in)  # same default as nn.Conv2d; LeNet models re-init He
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-3:]) != (self.in_channels, *self.input_size):
            raise InvalidArgumentError(
                f"LocallyConnected2d expects input (N, {self.in_channels}, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(x.shape)}"
            )
        cols = F.unfold(x, self.kernel_size, padding=self.padding)  # (N, C_in·k², L)
        out = torch.einsum("nkl,lok->nol", cols, self.weight)  # (N, C_out, L)
        return out.reshape(x.shape[0], self.out_channels, *self.output_size) + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
            f"kernel_size={self.kernel_size}, padding={self.padding}"
        )


# --------------------------------------------------------------------------------------------
# the LeNet family


class LeNetGeometry:
    """Spatial sizes of LeNet's stages for an input (C, H, W); see the module docstring.

    ``padding`` of both 5×5 convolutions; ``conv1``/``pool1``/``conv2``/``pool2`` are (h, w).
    ``scale`` multiplies the channel counts (6, 16) and dense widths (120, 84), each rounded
    half up and at least 1 (:func:`scaled`); ``scale=1`` is Li et al.'s LeNet.
    """

    kernel = 5

    def __init__(self, input_shape: Shape, scale: float = 1.0) -> None:
        self.scale = _positive_scale(scale)
        self.channels = (scaled(6, self.scale), scaled(16, self.scale))
        self.hidden = (scaled(120, self.scale), scaled(84, self.scale))
        c, h, w = input_shape
        self.in_channels = c
        self.input = (h, w)
        self.padding = 0 if min(h, w) >= 16 else 2
        grow = 2 * self.padding - (self.kernel - 1)
        self.conv1 = (h + grow, w + grow)
        self.pool1 = (self.conv1[0] // 2, self.conv1[1] // 2)
        self.conv2 = (self.pool1[0] + grow, self.pool1[1] + grow)
        self.pool2 = (self.conv2[0] // 2, self.conv2[1] // 2)

    @property
    def flat(self) -> int:
        """Number of features entering the first dense layer (channels[1] · pool2 area)."""
        return self.channels[1] * self.pool2[0] * self.pool2[1]


def lenet_supports(input_shape: Shape) -> bool:
    """LeNet-family models need H, W >= 4 (inputs under 16 pixels use "same" 5×5 convolutions)."""
    return len(input_shape) == 3 and min(input_shape[1:]) >= 4 and input_shape[0] >= 1


def lenet_geometry(input_shape: Shape, scale: float = 1.0) -> LeNetGeometry:
    """:class:`LeNetGeometry` of ``input_shape`` (and channel ``scale``); raises for inputs
    smaller than 4×4."""
    if not lenet_supports(input_shape):
        raise InvalidArgumentError(
            f"the LeNet family needs an input of at least 4×4 pixels, got (C, H, W) = {input_shape}"
        )
    return LeNetGeometry(input_shape, scale)


class _LeNetBase(nn.Module):
    """features (two connect→ReLU→max-pool stages) → flatten → 120 → 84 → classes (ReLU)."""

    def __init__(self, stage1: nn.Module, stage2: nn.Module, geo: LeNetGeometry, num_classes: int) -> None:
        super().__init__()
        self.geometry = geo
        self.features = nn.Sequential(
            stage1, nn.ReLU(), nn.MaxPool2d(2), stage2, nn.ReLU(), nn.MaxPool2d(2)
        )
        h1, h2 = geo.hidden
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(geo.flat, h1),
            nn.ReLU(),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.Linear(h2, num_classes),
        )
        _he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(_LeNetBase):
    """LeNet-5 as in Li et al.: conv 5×5 (C→6) → pool → conv 5×5 (6→16) → pool → 120 → 84 → n.

    D (MNIST) = 156 + 2,416 + 30,840 + 10,164 + 850 = 44,426; CIFAR-10: 62,006.
    """

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = _check_shape(input_shape, num_classes)
        geo = lenet_geometry(shape, scale)
        c1, c2 = geo.channels
        k, p = geo.kernel, geo.padding
        super().__init__(nn.Conv2d(shape[0], c1, k, padding=p), nn.Conv2d(c1, c2, k, padding=p), geo, classes)


class UntiedLeNet(_LeNetBase):
    """LeNet with both convolutions replaced by :class:`LocallyConnected2d` (untied 5×5).

    D (MNIST) = 576·6·(25+1) + 64·16·(150+1) + 41,854 = 286,334; CIFAR-10: 658,238.
    """

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = _check_shape(input_shape, num_classes)
        geo = lenet_geometry(shape, scale)
        c1, c2 = geo.channels
        k, p = geo.kernel, geo.padding
        super().__init__(
            LocallyConnected2d(shape[0], c1, geo.input, k, padding=p),
            LocallyConnected2d(c1, c2, geo.pool1, k, padding=p),
            geo,
            classes,
        )


class FCLeNet(_LeNetBase):
    """LeNet's layer sizes, all fully connected.

    Stage 1 is Linear(C·H·W → 6·conv1 area) reshaped to (6, *conv1), stage 2
    Linear(6·pool1 area → 16·conv2 area) reshaped to (16, *conv2); each is followed by ReLU and
    the same 2×2 max-pool as LeNet. D (MNIST) = (784+1)·3,456 + (864+1)·1,024 + 41,854
    = 3,640,574; CIFAR-10: (3,072+1)·4,704 + (1,176+1)·1,600 + 59,134 = 16,397,726.
    """

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = _check_shape(input_shape, num_classes)
        geo = lenet_geometry(shape, scale)
        c1, c2 = geo.channels
        stage1 = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(shape), c1 * math.prod(geo.conv1)),
            nn.Unflatten(1, (c1, *geo.conv1)),
        )
        stage2 = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c1 * math.prod(geo.pool1), c2 * math.prod(geo.conv2)),
            nn.Unflatten(1, (c2, *geo.conv2)),
        )
        super().__init__(stage1, stage2, geo, classes)


class FCTiedLeNet(_LeNetBase):
    """LeNet whose convolutions are as large as their input (fully connected, weights tied).

    Each stage maps an input map of side s_in to LeNet's output side s_out with a convolution of
    kernel side k = s_in + s_out − 1 and zero padding s_out − 1 (per axis): output position i
    sees input rows i − (s_out − 1) … i + s_in − 1, i.e. every input row, so each output unit is
    connected to the whole input (as in FC-LeNet) but with one kernel shared by all positions (as
    in LeNet). MNIST: 1→6 with 51×51 (28 → 24), 6→16 with 19×19 (12 → 8);
    D = 15,612 + 34,672 + 41,854 = 92,138. CIFAR-10: 3→6 with 59×59 (32 → 28), 6→16 with 23×23
    (14 → 10); D = 62,664 + 50,800 + 59,134 = 172,598. (Li et al. give no D for this model.)
    """

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = _check_shape(input_shape, num_classes)
        geo = lenet_geometry(shape, scale)
        c1, c2 = geo.channels

        def full_conv(cin: int, cout: int, s_in: tuple[int, int], s_out: tuple[int, int]) -> nn.Conv2d:
            kernel = (s_in[0] + s_out[0] - 1, s_in[1] + s_out[1] - 1)
            return nn.Conv2d(cin, cout, kernel, padding=(s_out[0] - 1, s_out[1] - 1))

        super().__init__(
            full_conv(shape[0], c1, geo.input, geo.conv1),
            full_conv(c1, c2, geo.pool1, geo.conv2),
            geo,
            classes,
        )


# --------------------------------------------------------------------------------------------
# ResNets (3×32×32 only)


class _PadShortcut(nn.Module):
    """Parameter-free shortcut: x[:, :, ::stride, ::stride] with ``extra`` zero channels."""

    def __init__(self, extra: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = extra, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        lo = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, lo, self.extra - lo))


class _BasicBlock(nn.Module):
    """3×3 conv-BN-ReLU-3×3 conv-BN plus shortcut, then ReLU (He et al. 2016).

    The shortcut is the identity when shapes agree. Otherwise, ``shortcut="A"`` (He et al.'s
    CIFAR choice) subsamples x[:, :, ::s, ::s] and zero-pads the new channels (no parameters);
    ``shortcut="B"`` is a 1×1 convolution with the block's stride followed by BatchNorm.
    """

    def __init__(self, cin: int, cout: int, stride: int, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if (stride != 1 or cin != cout) and shortcut == "A":
            self.shortcut = _PadShortcut(cout - cin, stride)
        elif stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _CifarResNet(nn.Module):
    """3×3 stem conv-BN-ReLU → stages of basic blocks → global average pool → Linear."""

    def __init__(
        self, widths: tuple[int, ...], blocks: int, num_classes: int, shortcut: str, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        stages: list[nn.Module] = []
        cin = widths[0]
        for i, width in enumerate(widths):
            for b in range(blocks):
                stride = 2 if (i > 0 and b == 0) else 1
                stages.append(_BasicBlock(cin, width, stride, shortcut))
                cin = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(out, 1))


def resnet_supports(input_shape: Shape) -> bool:
    """The CIFAR ResNets are defined for 3-channel 32×32 input only."""
    return tuple(input_shape) == (3, 32, 32)


def _require_cifar(name: str, input_shape: Shape) -> None:
    if not resnet_supports(input_shape):
        raise InvalidArgumentError(
            f"architecture {name!r} is a CIFAR ResNet for 3×32×32 input (e.g. dataset cifar10), "
            f"got (C, H, W) = {tuple(input_shape)}; use fc, mlp or lenet for other inputs"
        )


class ResNet20(_CifarResNet):
    """He et al.'s CIFAR ResNet-20: 16-32-64 channels, 3 basic blocks per stage, zero-padding
    ("option A") shortcuts; D = 269,722 (≈ 0.27 M). ``scale`` multiplies the channel counts
    (rounded half up, at least 1)."""

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = _check_shape(input_shape, num_classes)
        _require_cifar("resnet20", shape)
        s = _positive_scale(scale)
        super().__init__(tuple(scaled(c, s) for c in (16, 32, 64)), 3, classes, shortcut="A")


class ResNet18(_CifarResNet):
    """CIFAR ResNet-18: 3×3 stem, 64-128-256-512 channels, 2 blocks per stage, 1×1 projection
    shortcuts ("option B"); D = 11,173,962. ``scale`` multiplies the channel counts (rounded
    half up, at least 1)."""

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = _check_shape(input_shape, num_classes)
        _require_cifar("resnet18", shape)
        s = _positive_scale(scale)
        super().__init__(tuple(scaled(c, s) for c in (64, 128, 256, 512)), 2, classes, shortcut="B")


# --------------------------------------------------------------------------------------------
# registration


def _any_shape(input_shape: Shape) -> bool:
    return len(input_shape) == 3 and min(input_shape) >= 1


_WIDTH = {"width": 200, "depth": 2}
_SCALE = {"scale": 1.0}

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("mlp", make_mlp, "one hidden layer of 64 ReLU units (input-64-classes)", _any_shape,
                 {"width": 64}, "width"),
    Architecture("fc", make_fc, "Li et al. FC: input-200-200-classes, ReLU", _any_shape, _WIDTH, "width"),
    Architecture("lenet", LeNet, "Li et al. LeNet: conv6-conv16 (5×5, max-pool)-120-84", lenet_supports,
                 _SCALE, "scale"),
    Architecture(
        "untied-lenet", UntiedLeNet, "LeNet with locally connected (untied) layers", lenet_supports,
        _SCALE, "scale",
    ),
    Architecture("fc-lenet", FCLeNet, "LeNet's layer sizes, all fully connected", lenet_supports,
                 _SCALE, "scale"),
    Architecture(
        "fctied-lenet", FCTiedLeNet, "LeNet with convolutions as large as the input (tied)", lenet_supports,
        _SCALE, "scale",
    ),
    Architecture("resnet20", ResNet20, "He et al. CIFAR ResNet-20 (BatchNorm), 3×32×32", resnet_supports,
                 _SCALE, "scale"),
    Architecture("resnet18", ResNet18, "CIFAR ResNet-18 (3×3 stem, BatchNorm), 3×32×32", resnet_supports,
                 _SCALE, "scale"),
)
