"""Sparse building blocks shared by the sparse projections (``sparse``, ``fastjl``).

* :func:`bernoulli_positions` samples the nonzero positions of an m×n matrix whose entries are
  i.i.d. Bernoulli(p), *exactly* and in O(nnz) time and memory: the gaps between consecutive
  nonzeros of the row-major flattening are i.i.d. Geometric(p), so positions are cumulative
  sums of geometric draws (inverse-CDF from uniforms of a seeded CPU generator). The m×n
  matrix is never materialised.
* :class:`SparsePair` stores a sparse matrix A (m×n) *and* its transpose, both as CSR index
  and value buffers (plain dense tensors, so ``.to()``, ``state_dict`` and ``memory_bytes``
  work), and applies A or Aᵀ to the last dim of a batch with one sparse×dense product.
* :class:`SparseMatmul` is the autograd Function behind it: the forward uses A, the backward
  uses the stored Aᵀ (autograd through ``torch.sparse.mm`` is 10–100× slower than forward).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from projbench.errors import InvalidArgumentError


def check_probability(value: object, label: str) -> float:
    """``value`` as a float in (0, 1] (a sparsity/density option), else InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < float(value) <= 1.0:
        raise InvalidArgumentError(f"{label} must be a number in (0, 1], got {value!r}")
    return float(value)


def bernoulli_positions(total: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """Sorted int64 positions in [0, total) of i.i.d. Bernoulli(p) successes (exact law).

    Gaps G ≥ 1 between successes are Geometric(p): G = 1 + ⌊log U / log(1 − p)⌋, U ~ U(0, 1]
    drawn from ``generator`` (CPU) in float64. Draws are made in blocks until the positions
    pass ``total``; the result is deterministic given the generator state.
    """
    if not 0.0 < p <= 1.0:
        raise InvalidArgumentError(f"Bernoulli probability must lie in (0, 1], got {p}")
    if total <= 0:
        return torch.zeros(0, dtype=torch.int64)
    if p == 1.0:
        return torch.arange(total, dtype=torch.int64)
    log1mp = math.log1p(-p)
    mean = total * p
    pieces: list[torch.Tensor] = []
    last = -1
    while True:
        block = int(mean + 6.0 * math.sqrt(mean) + 64)
        u = 1.0 - torch.rand(block, generator=generator, dtype=torch.float64)  # (0, 1]
        gaps = 1 + torch.floor(torch.log(u) / log1mp).clamp_(max=float(total)).to(torch.int64)
        pos = last + torch.cumsum(gaps, 0)
        done = bool(pos[-1] >= total)
        if done:
            pos = pos[pos < total]
        pieces.append(pos)
        if done:
            break
        last = int(pos[-1])
        mean = max(1.0, (total - last) * p)
    return torch.cat(pieces)


def _index_dtype(*sizes: int) -> torch.dtype:
    return torch.int32 if max(sizes) < 2**31 - 1 else torch.int64


def csr_arrays(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(crow_indices, col_indices, values) of the CSR form of COO triplets (no duplicates)."""
    order = torch.argsort(rows * (int(cols.max()) + 1 if cols.numel() else 1) + cols, stable=True)
    rows, cols, values = rows[order], cols[order], values[order]
    counts = torch.bincount(rows, minlength=n_rows)
    crow = torch.zeros(n_rows + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(counts, 0)
    idt = _index_dtype(n_rows, int(cols.max()) + 1 if cols.numel() else 1, int(values.numel()))
    return crow.to(idt), cols.to(idt), values


class SparseMatmul(torch.autograd.Function):
    """y = x·Aᵀ for x (B, n), A (m, n) sparse CSR; the backward is g·A computed as (Aᵀ gᵀ)ᵀ with
    the stored transpose ``at`` (m×n → n×m CSR). Gradients flow to x only (A is a constant)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: torch.Tensor, at: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.at = at
        ctx.a = a
        return torch.sparse.mm(a, x.T).T

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        if not ctx.needs_input_grad[0]:
            return None, None, None
        return SparseMatmul.apply(grad, ctx.at, ctx.a), None, None


class SparsePair(nn.Module):
    """A sparse m×n matrix A and its transpose, stored as CSR buffers.

    Buffers (``a_crow``, ``a_col``, ``a_val``, ``at_crow``, ``at_col``, ``at_val``) are dense
    tensors; the CSR tensors are assembled without copying at each call.
    ``apply_a(x)``: (..., n) -> (..., m), x ↦ A x;  ``apply_at(y)``: (..., m) -> (..., n).
    Both are differentiable in their input, with the backward using the other stored matrix.
    """

    a_val: torch.Tensor  # (nnz,) values of A in CSR order

    def __init__(
        self, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
    ) -> None:
        super().__init__()
        m, n = shape
        self.shape = (m, n)
        for prefix, (r, c, nr) in (("a", (rows, cols, m)), ("at", (cols, rows, n))):
            crow, col, val = csr_arrays(r, c, values, nr)
            self.register_buffer(f"{prefix}_crow", crow)
            self.register_buffer(f"{prefix}_col", col)
            self.register_buffer(f"{prefix}_val", val)

    @property
    def nnz(self) -> int:
        return int(self.a_val.numel())

    def _csr(self, prefix: str, size: tuple[int, int]) -> torch.Tensor:
        crow = getattr(self, f"{prefix}_crow")
        col = getattr(self, f"{prefix}_col")
        val = getattr(self, f"{prefix}_val")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
            return torch.sparse_csr_tensor(crow, col, val, size, check_invariants=False)

    def _matmul(self, x: torch.Tensor, first: str, second: str, size: tuple[int, int]) -> torch.Tensor:
        a = self._csr(first, size)
        at = self._csr(second, (size[1], size[0]))
        lead = x.shape[:-1]
        flat = x.reshape(-1, size[1])
        if flat.dtype != a.dtype:
            raise InvalidArgumentError(
                f"input dtype {flat.dtype} does not match the projection's dtype {a.dtype}; "
                f"cast the input or move the projection with .to({flat.dtype})"
            )
        out = SparseMatmul.apply(flat, a, at)
        return out.reshape(*lead, size[0])

    def apply_a(self, x: torch.Tensor) -> torch.Tensor:
        """A x along the last dim: (..., n) -> (..., m)."""
        return self._matmul(x, "a", "at", self.shape)

    def apply_at(self, y: torch.Tensor) -> torch.Tensor:
        """Aᵀ y along the last dim: (..., m) -> (..., n)."""
        return self._matmul(y, "at", "a", (self.shape[1], self.shape[0]))

    def to_dense(self) -> torch.Tensor:
        """A as a dense (m, n) tensor (tests, small sizes)."""
        return self._csr("a", self.shape).to_dense()
