"""Built-in projection ``sparse``: very sparse random projection (Li, Hastie, Church 2006).

P ∈ R^{D×d} with i.i.d. entries +√(1/(sD)) w.p. s/2, −√(1/(sD)) w.p. s/2, 0 w.p. 1 − s;
E P_ij² = 1/D, so E‖P e_j‖² = 1. Default density s = 1/√D (Li et al.'s "very sparse"
choice; Achlioptas 2003 is s = 1/3), about d·√D nonzeros.

Sampling is exact and never materialises D×d: the nonzero positions of the row-major
flattening are a Bernoulli(s) process drawn by geometric gaps
(:func:`projbench.sparse_ops.bernoulli_positions`), then one Rademacher sign per nonzero, all
from a CPU ``torch.Generator().manual_seed(seed)``. P and Pᵀ are both kept in CSR form
(:class:`projbench.sparse_ops.SparsePair`), so forward, adjoint and both backward passes are
single sparse×dense products.
"""

from __future__ import annotations

import math

import torch

from projbench.hookspecs import hookimpl
from projbench.projection import Projection
from projbench.registry import Registry
from projbench.sparse_ops import SparsePair, bernoulli_positions, check_probability


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
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        self.density = check_probability(1.0 / math.sqrt(D) if density is None else density, "density")
        g = torch.Generator().manual_seed(seed)
        pos = bernoulli_positions(D * d, self.density, g)
        rows, cols = pos // d, pos % d
        signs = torch.randint(0, 2, (pos.numel(),), generator=g).to(torch.float64) * 2 - 1
        values = (signs * math.sqrt(1.0 / (self.density * D))).to(dtype)
        self.pair = SparsePair(rows, cols, values, (D, d)).to(self._init_device)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D), one CSR product."""
        return self.pair.apply_a(theta)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d), one CSR product with the stored transpose."""
        return self.pair.apply_at(y)

    @torch.no_grad()
    def to_dense(self) -> torch.Tensor:
        return self.pair.to_dense()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, density={self.density:.3g}, nnz={self.pair.nnz}"


@hookimpl
def projbench_register_projections(registry: Registry[type[Projection]]) -> None:
    registry.add(SparseProjection)
