"""The LeNet family of Li et al. 2018: ``lenet``, ``untied-lenet``, ``fc-lenet``, ``fctied-lenet``.

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
"""

from __future__ import annotations

import math

import torch
from torch import nn

from projbench.builtin.model_parts import (
    LocallyConnected2d,
    Shape,
    check_shape,
    he_init,
    positive_scale,
    scaled,
)
from projbench.errors import InvalidArgumentError

__all__ = [
    "FCLeNet",
    "FCTiedLeNet",
    "LeNet",
    "LeNetGeometry",
    "UntiedLeNet",
    "lenet_geometry",
    "lenet_supports",
]


class LeNetGeometry:
    """Spatial sizes of LeNet's stages for an input (C, H, W); see the module docstring.

    ``padding`` of both 5×5 convolutions; ``conv1``/``pool1``/``conv2``/``pool2`` are (h, w).
    ``scale`` multiplies the channel counts (6, 16) and dense widths (120, 84), each rounded
    half up and at least 1 (:func:`scaled`); ``scale=1`` is Li et al.'s LeNet.
    """

    kernel = 5

    def __init__(self, input_shape: Shape, scale: float = 1.0) -> None:
        self.scale = positive_scale(scale)
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
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(_LeNetBase):
    """LeNet-5 as in Li et al.: conv 5×5 (C→6) → pool → conv 5×5 (6→16) → pool → 120 → 84 → n.

    D (MNIST) = 156 + 2,416 + 30,840 + 10,164 + 850 = 44,426; CIFAR-10: 62,006.
    """

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = check_shape(input_shape, num_classes)
        geo = lenet_geometry(shape, scale)
        c1, c2 = geo.channels
        k, p = geo.kernel, geo.padding
        super().__init__(nn.Conv2d(shape[0], c1, k, padding=p), nn.Conv2d(c1, c2, k, padding=p), geo, classes)


class UntiedLeNet(_LeNetBase):
    """LeNet with both convolutions replaced by :class:`LocallyConnected2d` (untied 5×5).

    D (MNIST) = 576·6·(25+1) + 64·16·(150+1) + 41,854 = 286,334; CIFAR-10: 658,238.
    """

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = check_shape(input_shape, num_classes)
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
        shape, classes = check_shape(input_shape, num_classes)
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
        shape, classes = check_shape(input_shape, num_classes)
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
