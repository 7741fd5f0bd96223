"""Built-in projection ``fastjl``: the Ailon–Chazelle fast JL transform, used transposed.

The FJLT is Φ = P_s H D_s ∈ R^{d×L} (L = 2^⌈log₂ D⌉): D_s a diagonal of Rademacher signs, H
the *normalised* L×L Walsh–Hadamard matrix (orthogonal), P_s a sparse d×L matrix with i.i.d.
entries b·r, b ~ Bernoulli(q), r ~ N(0, 1/q). The subspace map is its transpose, truncated:

    P θ = c · (D_s H P_sᵀ θ)[:D],   c = 1/√D,    Pᵀ y = c · P_s H D_s [y; 0].

Normalisation. Column j is c·(D_s H p_j)[:D] with p_j the j-th row of P_s. Its entries are
independent with E p_jk² = q·(1/q) = 1, and every entry of H is ±1/√L, so each coordinate of
H p_j has second moment Σ_k (1/L)·1 = 1: the D kept rows carry D in expectation and c = 1/√D
gives E‖P e_j‖² = 1. (Untruncated, E‖D_s H p_j‖² = ‖p_j‖² → L.) The sketch is then
S = √(D/d)·Pᵀ = Φ[:, :D]/√d, the usual JL normalisation of Ailon–Chazelle's Φ.

Sparsity q (option ``q``). Ailon–Chazelle take q = min(Θ(log² n / L), 1) for n points; n is
unknown here, so the default uses L in its place with constant 1:

    q = min(1, (ln L)² / L)      (≈ (ln L)² nonzeros per row: 48 at L = 2^10, 192 at 2^20)

Rationale: after H D_s a unit vector u is spread, ‖u‖∞² ≤ 2 ln(4L/δ)/L w.p. 1 − δ; a row of
P_s then estimates ‖u‖² with, beyond the Gaussian χ²₁ variance 2, a relative sampling
variance Σu_k⁴/(q‖u‖⁴) ≤ ‖u‖∞²/q ≤ 2 ln(4L/δ)/(qL) = 2 ln(4L/δ)/(ln L)², a fraction of the
Gaussian ideal that shrinks as L grows. The cost d·(ln L)² stays far below the O(L log L)
FWHT. Fandina, Høgsgaard & Larsen (ICML 2023) prove that the number of nonzeros can be
reduced by a further factor α = Ω(min(ε⁻¹ ln(1/ε), ln n)); pass a smaller ``q`` to use it.
The column scaling does not depend on q, so columns stay unit-norm and the map stays as
well-conditioned as a Gaussian one as d grows (no element-wise q^(−1/3) variance).

P_s and P_sᵀ are stored in CSR (:class:`projbench.sparse_ops.SparsePair`); positions are an
exact Bernoulli(q) process, signs and N(0, 1/q) values from a CPU
``torch.Generator().manual_seed(seed)``. State O(d·q·L + L), time O(L log L + d·q·L).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from projbench.fwht import fwht, next_power_of_two
from projbench.hookspecs import hookimpl
from projbench.projection import Projection
from projbench.registry import Registry
from projbench.sparse_ops import SparsePair, bernoulli_positions, check_probability


def default_q(L: int) -> float:
    """Default FJLT sparsity q = min(1, (ln L)² / L) (Ailon–Chazelle with n → L, constant 1)."""
    return 1.0 if L <= 2 else min(1.0, math.log(L) ** 2 / L)


class FastJLProjection(Projection):
    """P θ = (D_s H P_sᵀ θ)[:D]/√D, the transposed Ailon–Chazelle FJLT (sparsity option q)."""

    name = "fastjl"
    signs: torch.Tensor  # (L,) Rademacher D_s
    summary = "Ailon-Chazelle FJLT P_s·H·D_s used transposed; sparse P_s, q = min(1, ln²L/L)"

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        q: float | None = None,
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        L = next_power_of_two(D)
        self.L = L
        self.q = check_probability(default_q(L) if q is None else q, "q (FJLT sparsity)")
        g = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (L,), generator=g).to(torch.float64) * 2 - 1
        pos = bernoulli_positions(d * L, self.q, g)
        rows, cols = pos // L, pos % L
        values = torch.randn(pos.numel(), generator=g, dtype=torch.float64) / math.sqrt(self.q)
        dev = self._init_device
        self.register_buffer("signs", signs.to(dtype=dtype, device=dev))
        # P_s is d×L; its transpose (L×d) is what the forward applies.
        self.ps = SparsePair(rows, cols, values.to(dtype), (d, L)).to(dev)
        self.scale = 1.0 / math.sqrt(D)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D): sparse P_sᵀ, one normalised FWHT, signs, crop."""
        u = fwht(self.ps.apply_at(theta), normalized=True) * self.signs
        return u[..., : self.D] * self.scale

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d), the exact transpose c·P_s H D_s [y; 0]."""
        u = fwht(F.pad(y, (0, self.L - self.D)) * self.signs, normalized=True)
        return self.ps.apply_a(u) * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, L={self.L}, q={self.q:.3g}, nnz={self.ps.nnz}"


@hookimpl
def projbench_register_projections(registry: Registry[type[Projection]]) -> None:
    registry.add(FastJLProjection)
