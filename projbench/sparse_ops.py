"""Sparse building blocks shared by the sparse projections (``sparse``, ``fastjl``).

* :func:`bernoulli_positions` samples the nonzero positions of an m×n matrix whose entries are
  i.i.d. Bernoulli(p), *exactly* and in O(nnz) time and memory: the gaps between consecutive
  nonzeros of the row-major flattening are i.i.d. Geometric(p), so positions are cumulative
  sums of geometric draws (inverse-CDF from uniforms of a seeded CPU generator). The m×n
  matrix is never materialised.
* :class:`CooMatrix` stores a sparse matrix A (m×n) once, as COO triplets in plain buffers
  (int32 indices: ``.to()``, ``state_dict`` and ``memory_bytes`` work), and applies A or Aᵀ by
  a gather and a scatter-add — O(nnz) work, no CSR scan of empty rows, and no
  second (transposed) copy; the projections route autograd through
  :func:`projbench.projection.linear_map`, so the backward of one direction is the other.
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


class CooMatrix(nn.Module):
    """A sparse m×n matrix A as COO buffers — ``rows``, ``cols`` (int32) and ``vals`` — applied
    by gathers and scatter-adds instead of sparse-library products.

    ``matvec(x)``: (B, n) -> (B, m), A x: the products vals·x[cols] are summed into rows.
    ``rmatvec(y)``: (B, m) -> (B, n), Aᵀ y: the products vals·y[rows] are summed into cols.
    Each costs O(nnz) plus a zero-fill of the output, never a scan of empty CSR rows. Keep the
    triplets sorted by the index of the *long* side, so that both directions sweep it in
    increasing order while the short side stays in cache. On the CPU the 1-D kernels are used
    row by row (``index_select``, ``scatter_add_``; ``index_add_`` is 1.2–2× slower): the
    ``index_select``/``index_add_`` kernels along dim 1 of a 2-D tensor take a strided path
    that is ~10× slower, even for a single row. 12 bytes per nonzero in float32.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor
    csr_crow: torch.Tensor
    csr_cols: torch.Tensor
    csr_vals: torch.Tensor

    def __init__(
        self, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int],
        *, csr_matvec: bool = False,
    ) -> None:
        super().__init__()
        m, n = shape
        if max(m, n) >= 2**31:
            raise InvalidArgumentError(f"CooMatrix indices must fit int32; got shape {shape}")
        self.shape = (m, n)
        self.csr_matvec = csr_matvec
        self.register_buffer("rows", rows.to(torch.int32))
        self.register_buffer("cols", cols.to(torch.int32))
        self.register_buffer("vals", values)
        if csr_matvec:
            self._build_csr()
            self.register_load_state_dict_post_hook(lambda module, keys: module._build_csr())

    def _build_csr(self) -> None:
        """A row-major CSR copy of A (``csr_*`` buffers, non-persistent: derived from the COO
        triplets, so never saved and rebuilt after ``load_state_dict``), for ``matvec`` on the
        CPU: MKL's CSR kernel sums each short row in registers, 2–3× faster than the
        gather + scatter-add for a wide A (few rows, long rows). 8 more bytes per
        nonzero in float32. Worth it only when m ≪ n (with many short rows the per-row cost wins)."""
        m, n = self.shape
        order = torch.argsort(self.rows.long() * n + self.cols.long())
        crow = torch.zeros(m + 1, dtype=torch.int64, device=self.rows.device)
        crow[1:] = torch.cumsum(torch.bincount(self.rows.long(), minlength=m), 0)
        self.register_buffer("csr_crow", crow.to(torch.int32), persistent=False)
        self.register_buffer("csr_cols", self.cols[order], persistent=False)
        self.register_buffer("csr_vals", self.vals[order], persistent=False)

    @property
    def nnz(self) -> int:
        return int(self.vals.numel())

    def _apply_op(self, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, size: int) -> torch.Tensor:
        out = torch.zeros(x.shape[0], size, dtype=x.dtype, device=x.device)
        if x.device.type != "cpu":
            out.index_add_(1, dst, torch.index_select(x, 1, src) * self.vals)
            return out
        for i in range(x.shape[0]):  # scatter_add_: ~1.2-1.3x faster than index_add_ on the CPU
            out[i].scatter_add_(0, dst, torch.index_select(x[i], 0, src) * self.vals)
        return out

    def _csr_tensor(self) -> torch.Tensor:
        """The ``csr_*`` buffers viewed as a torch sparse CSR tensor (no copy), made once per
        storage: torch's one-time "beta" warning is silenced here, not shown to users."""
        key = (self.csr_vals.data_ptr(), self.csr_cols.data_ptr(), self.csr_crow.data_ptr())
        cached = getattr(self, "_csr_cache", None)
        if cached is None or cached[0] != key:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                a = torch.sparse_csr_tensor(self.csr_crow, self.csr_cols, self.csr_vals, self.shape,
                                            check_invariants=False)
            cached = self._csr_cache = (key, a)
        return cached[1]

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """A x for x of shape (B, n): (B, m)."""
        if (self.csr_matvec and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
                and self.csr_vals.dtype == x.dtype and self.csr_vals.device == x.device):
            a = self._csr_tensor()
            if x.shape[0] == 1:
                return torch.mv(a, x[0]).unsqueeze(0)
            return torch.mm(a, x.T.contiguous()).T.contiguous()
        return self._apply_op(x, self.cols, self.rows, self.shape[0])

    def rmatvec(self, y: torch.Tensor) -> torch.Tensor:
        """Aᵀ y for y of shape (B, m): (B, n)."""
        return self._apply_op(y, self.rows, self.cols, self.shape[1])

    def to_dense(self) -> torch.Tensor:
        """A as a dense (m, n) tensor (tests, small sizes)."""
        out = torch.zeros(self.shape, dtype=self.vals.dtype, device=self.vals.device)
        out.index_put_((self.rows.long(), self.cols.long()), self.vals, accumulate=True)
        return out
