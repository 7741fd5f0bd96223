"""What the built-in architectures share: He-normal initialisation, the input-shape check, layer
sizes scaled by a factor, and :class:`LocallyConnected2d` (the untied layer of ``untied-lenet``,
which the initialisation must know).

He-normal: weights i.i.d. N(0, 2 / fan_in) (Keras ``he_normal``), biases zero; drawn from the
global torch generator, which :func:`projbench.architectures.make_model` seeds.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from projbench.errors import InvalidArgumentError

Shape = tuple[int, int, int]

__all__ = [
    "LocallyConnected2d",
    "Shape",
    "check_shape",
    "he_init",
    "he_normal_",
    "positive_int",
    "positive_scale",
    "scaled",
]


def he_normal_(weight: torch.Tensor, fan_in: int) -> None:
    """He-normal initialisation: entries i.i.d. N(0, 2 / fan_in) (Keras ``he_normal``)."""
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / fan_in))


def he_init(module: nn.Module) -> None:
    """He-normal weights and zero biases for every Linear, Conv2d and LocallyConnected2d."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            he_normal_(m.weight, m.in_features)
        elif isinstance(m, nn.Conv2d):
            he_normal_(m.weight, m.weight[0].numel())
        elif isinstance(m, LocallyConnected2d):
            he_normal_(m.weight, m.weight.shape[-1])
        else:
            continue
        bias = getattr(m, "bias", None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)


def check_shape(input_shape: Any, num_classes: Any) -> tuple[Shape, int]:
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


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"scale must be a positive finite number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"scale must be a positive finite number, got {value!r}")
    return float(value)


def scaled(count: int, scale: float) -> int:
    """A layer size ``count`` times ``scale``, rounded half up, at least 1 (``scale=1``: ``count``)."""
    return max(1, math.floor(count * scale + 0.5))


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
