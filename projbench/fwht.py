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
from typing import Any

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
# Default backend: pure PyTorch, radix-2^k dense Hadamard blocks.
# --------------------------------------------------------------------------------------------
_HADAMARD_CACHE: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def hadamard_matrix(
    n: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The n×n Sylvester Hadamard matrix (entries ±1), cached per (n, dtype, device).

    H_1 = [1], H_2m = [[H_m, H_m], [H_m, −H_m]]; equivalently H[i, j] = (−1)^popcount(i & j).
    The cache holds only the small block matrices the FWHT uses (and whatever callers ask
    for); treat the result as read-only.
    """
    if not is_power_of_two(n):
        raise InvalidArgumentError(f"Hadamard size must be a power of two, got {n}")
    key = (n, dtype, torch.device(device))
    h = _HADAMARD_CACHE.get(key)
    if h is None:
        h = torch.ones(1, 1, dtype=torch.float64)
        while h.shape[0] < n:
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        h = h.to(dtype=dtype, device=device)
        if n <= 1 << 12:  # do not pin large matrices in memory
            _HADAMARD_CACHE[key] = h
    return h


#: Largest block 2^bits of one radix pass, per device type. On a CPU small blocks win: each
#: pass is a GEMM (a×a)·(a×n/a) whose cost is memory traffic plus 2a flops per element, so
#: a = 16 balances passes against flops; on a GPU flops are nearly free and every pass is a
#: kernel launch plus a sweep through memory, so bigger blocks (fewer passes) win.
RADIX_BITS: dict[str, int] = {"cpu": 4, "cuda": 7}
#: Up to 2^bits, the transform is one dense GEMM x·H_n (fewest kernel launches).
DENSE_MAX_BITS: dict[str, int] = {"cpu": 6, "cuda": 7}
#: Rows of a batch are transformed in groups of about this many elements so that the group
#: and its scratch buffer stay in cache across passes (None: no grouping, e.g. on a GPU).
CHUNK_ELEMENTS: dict[str, int | None] = {"cpu": 1 << 16, "cuda": None}
#: Rows longer than 2^bits are cache-blocked: x·H_n = H_{n/C}·(X·H_C) with X the row viewed
#: as (n/C, C), C = 2^bits: the H_C part runs on cache-resident C-chunks, and the H_{n/C}
#: part is one (or a few) large GEMMs over the leading axis (None: no blocking).
BLOCK_BITS: dict[str, int | None] = {"cpu": 16, "cuda": None}

_DEFAULT_DEVICE_TYPE = "cpu"


def _setting(table: dict[str, Any], device: torch.device) -> Any:
    return table.get(device.type, table[_DEFAULT_DEVICE_TYPE])


def _factor_bits(k: int, radix_bits: int | None = None) -> list[int]:
    """Split k bits into near-equal chunks of at most ``radix_bits`` bits (largest first).

    Near-equal chunks avoid a tiny trailing block (e.g. 2^18 as 16·16·16·16·4 would make a
    pass that does the work of a full one for two bits of the transform).
    """
    r = radix_bits if radix_bits is not None else RADIX_BITS[_DEFAULT_DEVICE_TYPE]
    if k <= 0:
        return []
    chunks = math.ceil(k / r)
    base, extra = divmod(k, chunks)
    return [base + 1] * extra + [base] * (chunks - extra)


def _radix_passes(
    src: torch.Tensor, res: torch.Tensor, scratch: torch.Tensor | None, bits: list[int]
) -> None:
    """Write src·H_n into ``res`` (both (B, n) contiguous) by one GEMM per factor of ``bits``.

    Sylvester order means H_n = H_{a_1} ⊗ … ⊗ H_{a_p} with index i = (i_1, …, i_p), i_p the
    fastest. Each pass views its input as (B, m, a) with a = 2^{bits} of the *last* axis and
    writes H_a·(B, m, a)ᵀ = (B, a, m) contiguously: it transforms the last axis and rotates
    it to the front. After p passes (factors taken last to first) every axis has been
    transformed once and the axis order is restored. Every GEMM is (a×a)·(a×n/a): no shape
    with a tiny inner dimension, hence no performance cliff at particular n. The passes
    ping-pong between ``res`` and ``scratch`` so that the last one lands in ``res``.
    """
    b_rows, n = src.shape
    bufs = [res, scratch] if len(bits) % 2 == 1 else [scratch, res]
    cur = src
    for i, b in enumerate(reversed(bits)):
        a = 1 << b
        dst = bufs[i % 2]
        assert dst is not None
        h = hadamard_matrix(a, src.dtype, src.device)
        if b_rows == 1:
            torch.mm(h, cur.view(n // a, a).T, out=dst.view(a, n // a))
        else:
            torch.bmm(
                h.expand(b_rows, a, a), cur.view(b_rows, n // a, a).transpose(1, 2),
                out=dst.view(b_rows, a, n // a),
            )
        cur = dst


def fwht_torch(x: torch.Tensor) -> torch.Tensor:
    """Unnormalised x·H_n along the last dim, pure PyTorch (radix-2^k dense blocks).

    n ≤ 2^DENSE_MAX_BITS: one GEMM with the cached H_n. Larger n: H_n = H_{a_1} ⊗ … ⊗ H_{a_p}
    with every a_i ≤ 2^RADIX_BITS (near-equal), one GEMM per factor (:func:`_radix_passes`);
    on the CPU the batch rows go through in cache-sized groups, and rows longer than
    2^BLOCK_BITS are cache-blocked (transform C-chunks in cache, then H_{n/C} on the leading
    axis by large GEMMs), which keeps the time per element flat once n outgrows the caches.
    Cost: 2·Σa_i flops and p sweeps through memory per element, O(n log n) overall. The input
    is not modified; the result is a new contiguous tensor. Differentiable when called
    directly on a tensor that requires grad (routed through the autograd Function of
    :func:`fwht`).
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _FWHTFunction.apply(x, fwht_torch, 1.0)
    n = x.shape[-1]
    if not is_power_of_two(n):
        raise InvalidArgumentError(
            f"fwht needs a power-of-two length, got {n}; zero-pad to {next_power_of_two(n)} first"
        )
    if x.numel() == 0 or n == 1:
        return x.clone()
    k = n.bit_length() - 1
    device = x.device
    src = x.contiguous().view(-1, n)
    if k <= _setting(DENSE_MAX_BITS, device):
        return (src @ hadamard_matrix(n, x.dtype, device)).view(x.shape)
    radix = _setting(RADIX_BITS, device)
    block = _setting(BLOCK_BITS, device)
    if block is not None and k > block:
        # Cache blocking: transform each C-chunk (rows of (B·n/C, C)), then apply H_{n/C} to the
        # leading axis of every row viewed as (n/C, C), one GEMM per factor with a long right side.
        res = _rows_transform(src.reshape(-1, 1 << block), _factor_bits(block, radix), device)
        left, right = src.shape[0], n
        other = torch.empty_like(res)
        cur = res
        for b in _factor_bits(k - block, radix):
            a = 1 << b
            right //= a
            dst = other if cur is res else res
            h = hadamard_matrix(a, x.dtype, device)
            torch.bmm(h.expand(left, a, a), cur.view(left, a, right), out=dst.view(left, a, right))
            left *= a
            cur = dst
        return cur.view(x.shape)
    return _rows_transform(src, _factor_bits(k, radix), device).view(x.shape)


def _rows_transform(src: torch.Tensor, bits: list[int], device: torch.device) -> torch.Tensor:
    """x·H_n for every row of the contiguous (rows, n) ``src``, in cache-sized row groups."""
    rows, n = src.shape
    chunk_elems = _setting(CHUNK_ELEMENTS, device)
    group = rows if chunk_elems is None else max(1, min(rows, chunk_elems // n))
    res = torch.empty_like(src)
    scratch = torch.empty((group, n), dtype=src.dtype, device=device) if len(bits) > 1 else None
    for start in range(0, rows, group):
        stop = min(rows, start + group)
        scr = None if scratch is None else scratch[: stop - start]
        _radix_passes(src[start:stop], res[start:stop], scr, bits)
    return res


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
    def forward(  # type: ignore[override]
        ctx, x: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor], scale: float
    ) -> torch.Tensor:
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
