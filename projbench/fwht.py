"""Fast Walsh–Hadamard transform: dispatch, autograd, and the default pure-PyTorch backend.

``fwht(x, dim=-1, normalized=False)`` computes y = x · H_n along ``dim`` where H_n is the
n×n Sylvester Hadamard matrix (H_1 = [1], H_2m = [[H_m, H_m], [H_m, −H_m]], entries ±1,
n = 2^k) — the same matrix as ``scipy.linalg.hadamard(n)``. With ``normalized=True`` the
result is scaled by 1/√n, making the transform orthogonal and an involution.

H is symmetric, so the backward pass is the same transform applied to the incoming gradient
(:class:`_FWHTFunction`). Backends are plugins (hook ``projbench_register_fwht_backends``);
the default backend ``"torch"`` is plain PyTorch and lives in this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from projbench.errors import InvalidArgumentError

DEFAULT_BACKEND = "torch"


@dataclass(frozen=True)
class FWHTBackend:
    """An FWHT implementation.

    ``transform(x)`` must compute the *unnormalised* x·H_n along the last dimension of a
    contiguous tensor of shape (..., n), n a power of two, and return a new tensor of the same
    shape and dtype. ``available()`` says whether it can run here (library installed, device
    present); ``devices`` and ``dtypes`` list what it supports.
    """

    name: str
    transform: Callable[[torch.Tensor], torch.Tensor]
    description: str = ""
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    available: Callable[[], bool] = field(default=lambda: True)


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def next_power_of_two(n: int) -> int:
    """Smallest power of two ≥ n (n ≥ 1)."""
    return 1 << max(0, math.ceil(math.log2(n))) if n > 1 else 1


# --------------------------------------------------------------------------------------------
# Default backend: pure PyTorch, radix-2^k blocks.
# --------------------------------------------------------------------------------------------
_HADAMARD_CACHE: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def hadamard_matrix(n: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """The n×n Sylvester Hadamard matrix (entries ±1), cached per (n, dtype, device)."""
    if not is_power_of_two(n):
        raise InvalidArgumentError(f"Hadamard size must be a power of two, got {n}")
    key = (n, dtype, torch.device(device))
    h = _HADAMARD_CACHE.get(key)
    if h is None:
        h = torch.ones(1, 1, dtype=torch.float64)
        while h.shape[0] < n:
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        h = h.to(dtype=dtype, device=device)
        _HADAMARD_CACHE[key] = h
    return h


def fwht_torch(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised x·H_n along the last dim, pure PyTorch (radix-2^k dense blocks).

    H_n = H_{a_1} ⊗ H_{a_2} ⊗ … with every a_i ≤ 2^RADIX_BITS; each factor is one batched
    matmul on a reshaped view of shape (..., left, a_i, right).
    """
    n = x.shape[-1]
    if n == 1:
        return x.clone()
    k = n.bit_length() - 1
    batch_shape = x.shape[:-1]
    y = x.reshape(-1, n)
    bits = _factor_bits(k)
    right = n
    left = 1
    for b in bits:
        a = 1 << b
        right //= a
        h = hadamard_matrix(a, y.dtype, y.device)
        y = y.reshape(-1, left, a, right)
        y = torch.matmul(h, y)  # (a, a) @ (..., a, right): the factor acts on the middle axis
        left *= a
    return y.reshape(*batch_shape, n)


RADIX_BITS = 5


def _factor_bits(k: int) -> list[int]:
    """Split k bits into near-equal chunks of at most RADIX_BITS bits."""
    if k == 0:
        return []
    chunks = math.ceil(k / RADIX_BITS)
    base, extra = divmod(k, chunks)
    return [base + 1] * extra + [base] * (chunks - extra)


# --------------------------------------------------------------------------------------------
# Dispatch and autograd
# --------------------------------------------------------------------------------------------
def get_backend(name: str | None = None) -> FWHTBackend:
    """The registered backend ``name`` (default ``"torch"``)."""
    from projbench.manager import get_registry

    backend: FWHTBackend = get_registry("backends").get(name or DEFAULT_BACKEND)
    return backend


class _FWHTFunction(torch.autograd.Function):
    """y = x·H·scale along the last dim; dL/dx = (dL/dy)·H·scale since H is symmetric."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor], scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.transform = transform
        ctx.scale = scale
        y = transform(x.contiguous())
        return y * scale if scale != 1.0 else y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        g = _FWHTFunction.apply(grad.contiguous(), ctx.transform, ctx.scale)
        return g, None, None


def fwht(
    x: torch.Tensor,
    dim: int = -1,
    normalized: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """x · H_n along ``dim`` (Sylvester order), n = x.shape[dim] a power of two.

    ``normalized=True`` multiplies by 1/√n (orthogonal transform). Works for any batch shape,
    float32/float64 (half types where the backend supports them), CPU and CUDA, with autograd.
    A length that is not a power of two raises :class:`InvalidArgumentError`: zero-pad to
    :func:`next_power_of_two` first.
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(f"fwht expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0:
        raise InvalidArgumentError("fwht expects at least a 1-d tensor, got a scalar")
    if not x.is_floating_point():
        raise InvalidArgumentError(f"fwht expects a floating tensor, got dtype {x.dtype}; cast with .float()")
    if not -x.dim() <= dim < x.dim():
        raise InvalidArgumentError(f"dim {dim} is out of range for a tensor of shape {tuple(x.shape)}")
    dim %= x.dim()
    n = x.shape[dim]
    if not is_power_of_two(n):
        raise InvalidArgumentError(
            f"fwht needs a power-of-two length along dim {dim}, got {n}; zero-pad to "
            f"{next_power_of_two(n)} (projbench.fwht.next_power_of_two) first"
        )
    impl = get_backend(backend)
    scale = 1.0 / math.sqrt(n) if normalized else 1.0
    moved = x.movedim(dim, -1) if dim != x.dim() - 1 else x
    y = _FWHTFunction.apply(moved, impl.transform, scale)
    return y.movedim(-1, dim) if dim != x.dim() - 1 else y
