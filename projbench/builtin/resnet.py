"""CIFAR ResNets: ``resnet20`` and ``resnet18``.

The ResNets are for 3×32×32 input only (``supports``): ``resnet20`` is He et al.'s CIFAR ResNet
(16-32-64 channels, 3×3 basic blocks, BatchNorm) with the parameter-free zero-padding shortcut
("option A") where the shape changes, as in the paper: 269,722 parameters (≈ 0.27 M); and
``resnet18`` the common CIFAR ResNet-18 (3×3 stem, no max-pool, 64-128-256-512, 1×1+BN
projection shortcuts): 11,173,962 parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from projbench.builtin.model_parts import Shape, check_shape, positive_scale, scaled
from projbench.errors import InvalidArgumentError

__all__ = ["ResNet18", "ResNet20", "resnet_supports"]


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
        shape, classes = check_shape(input_shape, num_classes)
        _require_cifar("resnet20", shape)
        s = positive_scale(scale)
        super().__init__(tuple(scaled(c, s) for c in (16, 32, 64)), 3, classes, shortcut="A")


class ResNet18(_CifarResNet):
    """CIFAR ResNet-18: 3×3 stem, 64-128-256-512 channels, 2 blocks per stage, 1×1 projection
    shortcuts ("option B"); D = 11,173,962. ``scale`` multiplies the channel counts (rounded
    half up, at least 1)."""

    def __init__(self, input_shape: Shape, num_classes: int, *, scale: float = 1.0) -> None:
        shape, classes = check_shape(input_shape, num_classes)
        _require_cifar("resnet18", shape)
        s = positive_scale(scale)
        super().__init__(tuple(scaled(c, s) for c in (64, 128, 256, 512)), 2, classes, shortcut="B")
