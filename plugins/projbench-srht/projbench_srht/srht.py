"""Subsampled randomized Hadamard transform (SRHT) as a projbench projection plugin.

Sketch (Tropp 2011; Ailon–Liberty 2009): S = √(L/d) · R H D_s ∈ R^{d×L}, with D_s a Rademacher
diagonal, H the *normalised* L×L Walsh–Hadamard matrix (L = 2^⌈log₂ D⌉, inputs zero-padded),
and R the restriction to d distinct rows drawn uniformly without replacement (d ≤ L).

Subspace map (the scaled transpose): P θ = √(L/D) · (D_s H Rᵀ θ)[:D], shape (..., d) → (..., D).
Each column of D_s H Rᵀ has squared norm exactly 1; keeping the first D of L coordinates keeps
D/L of it in expectation over the signs' positions, so the factor √(L/D) gives E‖P e_j‖² = 1.
Random state: L signs and d row indices, from a CPU ``torch.Generator`` seeded with ``seed``.
"""

from __future__ import annotations

import math

import torch

import projbench


class SRHT(projbench.Projection):
    """Subsampled randomized Hadamard transform: O(L) state, O(L log L) time."""

    name = "srht"
    summary = "subsampled randomized Hadamard transform (third-party example plugin)"

    def __init__(self, d: int, D: int, *, seed: int = 0, device=None, dtype=torch.float32) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        L = 1 << max(0, math.ceil(math.log2(D)))
        if d > L:
            raise projbench.InvalidArgumentError(
                f"srht needs d <= {L} (D={D} padded to a power of two); got d={d}"
            )
        self.L = L
        g = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (L,), generator=g).to(dtype) * 2 - 1
        rows = torch.randperm(L, generator=g)[:d]
        self.register_buffer("signs", signs.to(device))
        self.register_buffer("rows", rows.to(device))
        self.scale = math.sqrt(L / D)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """(..., d) -> (..., D): scatter θ into rows, H (normalised), signs, crop, scale."""
        full = theta.new_zeros(*theta.shape[:-1], self.L)
        full[..., self.rows] = theta
        y = projbench.fwht(full, normalized=True) * self.signs
        return y[..., : self.D] * self.scale

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., d): pad, signs, H (normalised), gather rows, scale."""
        full = torch.nn.functional.pad(y, (0, self.L - self.D)) * self.signs
        return torch.index_select(projbench.fwht(full, normalized=True), -1, self.rows) * self.scale
