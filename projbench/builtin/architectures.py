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

The LeNet family is in :mod:`projbench.builtin.lenet` (its geometry and the four ways its
"convolution" stages connect), the ResNets in :mod:`projbench.builtin.resnet`; the layers and
initialisation they share in :mod:`projbench.builtin.model_parts`. This module holds the fully
connected networks and the table that registers every built-in architecture.
"""

from __future__ import annotations

import math

from torch import nn

from projbench.architectures import Architecture
from projbench.builtin.lenet import (
    FCLeNet,
    FCTiedLeNet,
    LeNet,
    LeNetGeometry,
    UntiedLeNet,
    lenet_geometry,
    lenet_supports,
)
from projbench.builtin.model_parts import LocallyConnected2d, Shape, check_shape, he_init, positive_int
from projbench.builtin.resnet import ResNet18, ResNet20, resnet_supports

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
    shape, classes = check_shape(input_shape, num_classes)
    if hidden is None:
        hidden = (positive_int("width", width),) * positive_int("depth", depth)
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, classes))
    model = nn.Sequential(*layers)
    he_init(model)
    return model


def make_mlp(input_shape: Shape, num_classes: int, *, width: int = 64) -> nn.Module:
    """A small one-hidden-layer MLP: input → ``width`` (64) → ``num_classes`` (ReLU); any input shape."""
    return make_fc(input_shape, num_classes, hidden=(positive_int("width", width),))


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
