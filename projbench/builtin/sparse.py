"""Built-in projection ``sparse``: very sparse random projection (Li, Hastie, Church 2006).

P ∈ R^{D×d} with i.i.d. entries +√(1/(sD)) w.p. s/2, −√(1/(sD)) w.p. s/2, 0 w.p. 1 − s;
E P_ij² = 1/D, so E‖P e_j‖² = 1. Default density s = 1/√D (Li et al.'s "very sparse"
choice; Achlioptas 2003 is s = 1/3), about d·√D nonzeros.

Sampling is exact and never materialises D×d: the nonzero positions of the row-major
flattening are a Bernoulli(s) process drawn by geometric gaps
(:func:`projbench.sparse_ops.bernoulli_positions`), then one Rademacher sign per nonzero, all
from a CPU ``torch.Generator().manual_seed(seed)``. P is kept once, as row-major COO triplets
(:class:`projbench.sparse_ops.CooMatrix`, int32 indices, 12 bytes per nonzero in float32):
the forward gathers θ at the column of every nonzero and scatter-adds into the D outputs in
increasing order; the adjoint gathers y in increasing order and scatter-adds into d bins —
O(nnz + D) each, with the long side swept sequentially and the d-sized side in cache. The
backward of each direction is the other one (:func:`projbench.projection.linear_map`). A
state over ``max_bytes`` (expected nonzeros × 12 bytes) is refused before sampling.
"""

from __future__ import annotations

import math

import torch

from projbench.projection import Projection, check_state_budget, linear_map
from projbench.sparse_ops import CooMatrix, bernoulli_positions, check_probability

#: default state budget (bytes), as for ``dense``
DEFAULT_MAX_BYTES = 2 * 1024**3


class SparseProjection(Projection):
    """Very sparse ±√(1/(sD)) projection with density s (default 1/√D), stored as CSR P and Pᵀ."""

    name = "sparse"
    summary = "very sparse ±1/√(sD) entries, density s = 1/√D (Li-Hastie-Church 2006), CSR P and Pᵀ"

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        density: float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        self.density = check_probability(1.0 / math.sqrt(D) if density is None else density, "density")
        elem = torch.empty(0, dtype=dtype).element_size()
        check_state_budget(f"a sparse projection with D={D:,}, d={d:,} (density {self.density:.3g})",
                           int(D * d * self.density * (8 + elem)), max_bytes)
        g = torch.Generator().manual_seed(seed)
        pos = bernoulli_positions(D * d, self.density, g)
        rows, cols = pos // d, pos % d
        signs = torch.randint(0, 2, (pos.numel(),), generator=g).to(torch.float64) * 2 - 1
        values = (signs * math.sqrt(1.0 / (self.density * D))).to(dtype)
        self.pair = CooMatrix(rows, cols, values, (D, d)).to(self._init_device)

    def _forward(self, theta: torch.Tensor) -> torch.Tensor:
        return self.pair.matvec(theta.reshape(-1, self.d)).reshape(*theta.shape[:-1], self.D)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.pair.rmatvec(y.reshape(-1, self.D)).reshape(*y.shape[:-1], self.d)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D): gather θ per nonzero, scatter-add into D rows."""
        return linear_map(theta, self._forward, self._adjoint)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d), the exact transpose of the forward."""
        return linear_map(y, self._adjoint, self._forward)

    @torch.no_grad()
    def to_dense(self) -> torch.Tensor:
        return self.pair.to_dense()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, density={self.density:.3g}, nnz={self.pair.nnz}"
