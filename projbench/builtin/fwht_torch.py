"""The default FWHT backend ``"torch"``: pure PyTorch, radix-2^k dense Hadamard blocks.

This module holds the kernel and everything it tunes and caches: :func:`hadamard_matrix`
(Sylvester blocks, cached per size, dtype and device), the tuning tables (keyed by device
type: a CPU and a GPU want different plans), per-thread scratch workspaces, the cache of
scaled blocks, :func:`fwht_torch` (x·H_n along the last dim, plain or cache-blocked),
:func:`fwht_leading` (the transform along the leading axis, for the stacked Fastfood) and
:data:`TORCH_BACKEND`, the backend object the built-in plugin ``torch-fwht`` registers.
Validation of user input, backend choice and autograd are the dispatcher's
(:func:`projbench.hadamard.fwht`); tensors that require grad and reach :func:`fwht_torch`
directly go through the dispatcher's autograd function.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import torch

from projbench.errors import InvalidArgumentError
from projbench.hadamard import FWHTBackend, is_power_of_two, next_power_of_two, with_autograd

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
#: ... and also up to 2^DENSE_SMALL_MAX_BITS while rows·n² stays within DENSE_MAX_WORK
#: multiply-adds: a radix plan's
#: fixed cost (~30 µs of calls per transform on the CPU) then exceeds the dense GEMM's extra
#: flops. Measured on the 2-core EPYC, 1 thread: n = 2^7 at batch 1 / 64 45 → 13 / 92 → 39 µs,
#: 2^8 at batch 1 / 16 45 → 19 / 62 → 46 µs, 2^9 at batch 1 53 → 40 µs.
#: On a GPU (``DENSE_MAX_WORK`` 0) there is no such range: the dense limit is DENSE_MAX_BITS.
DENSE_SMALL_MAX_BITS: dict[str, int] = {"cpu": 9, "cuda": 7}
DENSE_MAX_WORK: dict[str, int] = {"cpu": 1 << 20, "cuda": 0}
#: Rows of a batch are transformed in groups of about this many elements so that the group
#: and its scratch buffer stay in cache across passes (None: no grouping, e.g. on a GPU). On the
#: CPU 2^19 (2 MiB in float32, twice that with the scratch: L3-resident) beats L2-sized groups:
#: each pass is then one ``bmm`` over several rows, which torch spreads over its threads, instead
#: of one single-threaded ``mm`` per row. Measured on the 2-core EPYC (L2 512 KiB per core, L3
#: 32 MiB) against 2^16 for n = 2^16…2^22 at batch 1, 8, 64: 1 thread 0.83–0.88× the time (2^16
#: at batch 1 unchanged), 2 threads 0.49–0.63×; 2^20 was as fast, 2^17 and 2^18 slower.
CHUNK_ELEMENTS: dict[str, int | None] = {"cpu": 1 << 19, "cuda": None}
#: Rows longer than 2^bits are cache-blocked: x·H_n = H_{n/C}·(X·H_C) with X the row viewed
#: as (n/C, C), C = 2^bits: the H_C part runs on cache-resident C-chunks, and the H_{n/C}
#: part is one (or a few) large GEMMs over the leading axis (None: no blocking).
BLOCK_BITS: dict[str, int | None] = {"cpu": 16, "cuda": None}
#: Radix of the passes over the leading (out-of-cache) axis of the blocked path: these sweep the
#: whole array through memory, so a GEMM with a large block turns memory-bound into
#: compute-bound (2a flops per element and pass); small blocks keep each pass at memory speed.
OUTER_RADIX_BITS: dict[str, int] = {"cpu": 3, "cuda": 7}

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


#: Scratch buffers up to this many bytes are kept between calls (per thread, device, dtype and
#: role) instead of being allocated afresh: a fresh multi-MiB buffer costs page faults on first
#: touch, which on a virtual machine is a large share of a transform's time.
WORKSPACE_MAX_BYTES = 64 * 1024**2
_workspaces = threading.local()


def _workspace(numel: int, dtype: torch.dtype, device: torch.device, role: int) -> torch.Tensor:
    """A scratch tensor of ``numel`` elements, reused across calls when small enough.

    Only intermediate results live in it (never a returned tensor), and it is per thread, so
    concurrent calls from different threads do not share one. On CUDA the caching allocator
    already reuses memory, so a fresh tensor is returned there."""
    nbytes = numel * torch.empty(0, dtype=dtype).element_size()
    if device.type != "cpu" or nbytes > WORKSPACE_MAX_BYTES:
        return torch.empty(numel, dtype=dtype, device=device)
    cache: dict[tuple[torch.dtype, int], torch.Tensor] | None = getattr(_workspaces, "cache", None)
    if cache is None:
        cache = _workspaces.cache = {}
    buf = cache.get((dtype, role))
    if buf is None or buf.numel() < numel:
        buf = cache[(dtype, role)] = torch.empty(numel, dtype=dtype)
    return buf[:numel]


_SCALED_CACHE: dict[tuple[int, torch.dtype, torch.device, float], torch.Tensor] = {}
#: Bytes of scaled blocks kept. A projection's scale is a constant, so a few entries serve every
#: call; scales differ per seed, so the bound is in bytes (dense blocks reach 2^9×2^9).
_SCALED_CACHE_MAX_BYTES = 16 * 1024**2


def _scaled_block(a: int, dtype: torch.dtype, device: torch.device, scale: float) -> torch.Tensor:
    """H_a (cached), times ``scale`` when it is not 1: how a scale rides along a GEMM pass for free.
    Scaled blocks are cached too (up to ``_SCALED_CACHE_MAX_BYTES``, then the cache starts
    afresh): a fresh a×a multiply per call was a tenth of a small transform's time."""
    if scale == 1.0:
        return hadamard_matrix(a, dtype, device)
    key = (a, dtype, device, scale)
    h = _SCALED_CACHE.get(key)
    if h is None:
        h = hadamard_matrix(a, dtype, device) * scale
        held = sum(t.numel() * t.element_size() for t in _SCALED_CACHE.values())
        if held + h.numel() * h.element_size() > _SCALED_CACHE_MAX_BYTES:
            _SCALED_CACHE.clear()
        _SCALED_CACHE[key] = h
    return h


def _radix_passes(
    src: torch.Tensor, res: torch.Tensor, scratch: torch.Tensor | None, bits: list[int],
    scale: float = 1.0,
) -> None:
    """Write scale·src·H_n into ``res`` (both (B, n) contiguous) by one GEMM per factor of ``bits``.

    Sylvester order means H_n = H_{a_1} ⊗ … ⊗ H_{a_p} with index i = (i_1, …, i_p), i_p the
    fastest. Each pass views its input as (B, m, a) with a = 2^{bits} of the *last* axis and
    writes H_a·(B, m, a)ᵀ = (B, a, m) contiguously: it transforms the last axis and rotates
    it to the front. After p passes (factors taken last to first) every axis has been
    transformed once and the axis order is restored. Every GEMM is (a×a)·(a×n/a): no shape
    with a tiny inner dimension, hence no performance cliff at particular n. The passes
    ping-pong between ``res`` and ``scratch`` so that the last one lands in ``res``; ``scale``
    is folded into the first pass's a×a block (no extra sweep through memory).
    """
    b_rows, n = src.shape
    bufs = [res, scratch] if len(bits) % 2 == 1 else [scratch, res]
    cur = src
    for i, b in enumerate(reversed(bits)):
        a = 1 << b
        dst = bufs[i % 2]
        assert dst is not None
        h = _scaled_block(a, src.dtype, src.device, scale if i == 0 else 1.0)
        if b_rows == 1:
            torch.mm(h, cur.view(n // a, a).T, out=dst.view(a, n // a))
        else:
            torch.bmm(
                h.expand(b_rows, a, a), cur.view(b_rows, n // a, a).transpose(1, 2),
                out=dst.view(b_rows, a, n // a),
            )
        cur = dst


def fwht_torch(x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """scale · x·H_n along the last dim (unnormalised H), pure PyTorch (radix-2^k dense blocks).

    n ≤ 2^DENSE_MAX_BITS (or a small batch of n ≤ 2^DENSE_SMALL_MAX_BITS, see
    ``DENSE_MAX_WORK``): one GEMM with
    the cached H_n. Larger n: H_n = H_{a_1} ⊗ … ⊗ H_{a_p}
    with every a_i ≤ 2^RADIX_BITS (near-equal), one GEMM per factor (:func:`_radix_passes`);
    on the CPU the batch rows go through in cache-sized groups, and rows longer than
    2^BLOCK_BITS are cache-blocked (transform C-chunks in cache, then H_{n/C} on the leading
    axis by large GEMMs), which keeps the time per element flat once n outgrows the caches.
    Cost: 2·Σa_i flops and p sweeps through memory per element, O(n log n) overall; ``scale``
    is folded into the first a×a block, so a normalised or scaled transform costs nothing
    extra. The input is not modified; the result is a new contiguous tensor. Differentiable
    when called directly on a tensor that requires grad (routed through the autograd Function
    of :func:`fwht`).
    """
    if x.requires_grad and torch.is_grad_enabled():
        return with_autograd(x, _TORCH_FUSED, scale)
    n = x.shape[-1]
    if not is_power_of_two(n):
        raise InvalidArgumentError(
            f"fwht needs a power-of-two length, got {n}; zero-pad to {next_power_of_two(n)} first"
        )
    if x.numel() == 0 or n == 1:
        return x * scale if scale != 1.0 else x.clone()
    k = n.bit_length() - 1
    device = x.device
    src = x.contiguous().view(-1, n)
    small = (k <= _setting(DENSE_SMALL_MAX_BITS, device)
             and src.shape[0] * n * n <= _setting(DENSE_MAX_WORK, device))
    if k <= _setting(DENSE_MAX_BITS, device) or small:
        return (src @ _scaled_block(n, x.dtype, device, scale)).view(x.shape)
    radix = _setting(RADIX_BITS, device)
    block = _setting(BLOCK_BITS, device)
    if block is not None and k > block:
        # Cache blocking: transform each C-chunk (rows of (B·n/C, C)), then apply H_{n/C} to the
        # leading axis of every row viewed as (n/C, C), one GEMM per factor with a long right side.
        outer = _factor_bits(k - block, _setting(OUTER_RADIX_BITS, device))
        final = torch.empty_like(src)  # the result: never a reused workspace
        work = _workspace(src.numel(), src.dtype, device, 0).view(src.shape)
        # the passes ping-pong between ``final`` and ``work``; start so that the last lands in final
        cur = final if len(outer) % 2 == 0 else work
        _rows_transform(src.reshape(-1, 1 << block), _factor_bits(block, radix), device, scale,
                        out=cur.view(-1, 1 << block))
        _leading_passes(cur, final, work, src.shape[0], outer)
        return final.view(x.shape)
    return _rows_transform(src, _factor_bits(k, radix), device, scale).view(x.shape)


def _rows_transform(
    src: torch.Tensor, bits: list[int], device: torch.device, scale: float = 1.0,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """scale·x·H_n for every row of the contiguous (rows, n) ``src``, in cache-sized row groups."""
    rows, n = src.shape
    chunk_elems = _setting(CHUNK_ELEMENTS, device)
    group = rows if chunk_elems is None else max(1, min(rows, chunk_elems // n))
    res = torch.empty_like(src) if out is None else out
    scratch = _workspace(group * n, src.dtype, device, 1).view(group, n) if len(bits) > 1 else None
    if group == rows:  # one group: no slicing (each slice is a torch call; small transforms feel it)
        _radix_passes(src, res, scratch, bits, scale)
        return res
    for start in range(0, rows, group):
        stop = min(rows, start + group)
        scr = None if scratch is None else scratch[: stop - start]
        _radix_passes(src[start:stop], res[start:stop], scr, bits, scale)
    return res


def fwht_leading(x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """(B, m, K) -> (B, m, K): scale·H_m·X_b for every batch row b — the transform along the
    *leading* axis (m a power of two, any K), i.e. of every column of each (m, K) matrix.

    One GEMM per radix factor a of H_m = H_{a_1} ⊗ … ⊗ H_{a_p}: viewing the row as
    (left, a, right) with ``left`` the factors already done and ``right`` the rest times K, it
    applies H_a to the middle axis in place (``mm`` for the first factor, ``bmm`` over ``left``
    after) — the out-of-cache passes of :func:`fwht_torch`'s blocked path, here for blocks laid
    out column-wise. Used by the stacked Fastfood, whose K blocks of length m are interleaved
    (block index fastest) so that any run of consecutive coordinates meets many blocks. Pure
    PyTorch, every device; not dispatched to FWHT backends; self-adjoint (H symmetric).
    """
    B, m, _ = x.shape
    if not is_power_of_two(m):
        raise InvalidArgumentError(f"fwht_leading needs a power-of-two length, got {m}")
    src = x.contiguous()
    # radix 2^4 on the CPU: best or within 3 % of the best of 2^2…2^6 for K = 44…4096, m = 1024, 4096
    bits = _factor_bits(m.bit_length() - 1, _setting(RADIX_BITS, x.device))
    if not bits:
        return src * scale
    res = torch.empty_like(src)
    scratch = _workspace(src.numel(), src.dtype, src.device, 2).view(src.shape) if len(bits) > 1 else None
    _leading_passes(src, res, scratch, B, bits, scale)
    return res


def _leading_passes(
    src: torch.Tensor, res: torch.Tensor, scratch: torch.Tensor | None, left: int, bits: list[int],
    scale: float = 1.0,
) -> None:
    """For each of the ``left`` rows of ``src``, viewed as (a_1, …, a_p, rest), write into ``res``
    scale·(H_{a_1} ⊗ … ⊗ H_{a_p}) applied to the axes a_1…a_p (``rest`` untouched; all three
    tensors contiguous, same numel): one GEMM per factor, viewing the data as (left, a, right)
    and transforming the middle axis in place, ``left`` growing by a each pass. The passes
    ping-pong between ``res`` and ``scratch`` so that the last lands in ``res``; ``src`` may be
    ``scratch`` only when the first pass writes ``res`` (an odd number of passes), or ``res`` only
    when it writes ``scratch`` (an even number). ``scale`` rides in the first a×a block."""
    bufs = [res, scratch] if len(bits) % 2 == 1 else [scratch, res]
    cur, right = src, src.numel() // left
    for i, b in enumerate(bits):
        a = 1 << b
        right //= a
        dst = bufs[i % 2]
        assert dst is not None and dst is not cur
        h = _scaled_block(a, src.dtype, src.device, scale if i == 0 else 1.0)
        if left == 1:  # a batch-1 bmm with a very wide right side is ~10x slower than mm
            torch.mm(h, cur.view(a, right), out=dst.view(a, right))
        else:
            torch.bmm(h.expand(left, a, a), cur.view(left, a, right), out=dst.view(left, a, right))
        left *= a
        cur = dst


def _torch_fused(x: torch.Tensor, scale: float) -> torch.Tensor:
    return fwht_torch(x, scale=scale)


_TORCH_FUSED: Callable[[torch.Tensor, float], torch.Tensor] = _torch_fused


#: the default backend, registered by the built-in plugin ``torch-fwht``
TORCH_BACKEND = FWHTBackend(
    name="torch",
    transform=fwht_torch,
    fuses_scale=True,
    description="pure PyTorch, radix-2^k dense Hadamard blocks (CPU and CUDA)",
    dtypes=(torch.float16, torch.bfloat16, torch.float32, torch.float64),
)
