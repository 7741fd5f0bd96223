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

Variant ``"report"`` (option ``variant``; default ``"ailon-chazelle"``, the construction above).
The originating report's FastJL, kept *only* to reproduce its instability: element-wise
Bernoulli sparsity q = min(1, 2·ln²(N)/d) with N = L, the padded length (the length of the
vector the FJLT is applied to — the report's N is the number of parameters, and L is the
nearest size on which H acts; for D a power of two the two coincide), and nonzero entries
r ~ N(0, q^(−1/3)) — variance q^(−1/3) instead of 1/q. It is deliberately **not normalised**:
with the same c = 1/√D, E‖P e_j‖² = q·q^(−1/3) = q^(2/3) < 1 once q < 1, and it shrinks as d
grows (q ∝ 1/d), while the entries' spread grows; nnz ≈ 2·ln²(L)·L, far denser than the
default. Its instances report ``unit_columns = False``, which exempts them from the
E‖P e_j‖² = 1 contract check (every algebraic check — dense agreement, exact adjoint — still
applies).

Storage and cost. P_s is kept as COO triplets (row, column: int32; value;
:class:`projbench.sparse_ops.CooMatrix`), 12 bytes per nonzero in float32, sorted by column,
so that both directions sweep the length-L side in increasing order. The forward's P_sᵀθ is a
scatter of the d·q·L products θ_row·value into a zeroed length-L vector (``scatter_add_``); the
adjoint's P_s u a gather of u at the nonzero columns, multiplied by the values and summed into
d bins — O(nnz + L) work that never scans an L-row CSR. On the CPU (float32/64) the adjoint
uses a second, row-major CSR copy of P_s instead (8 more bytes per nonzero, not saved in the
state dict): MKL's d short row sums are 2.3–3.2× faster than the gather and scatter. The
scale c/√L rides in the FWHT's first pass; the signs are applied to the D kept entries only
(forward) or while zero-padding (adjoint). The backward of each direction is the other one
(:func:`projbench.projection.linear_map`). Positions are an exact Bernoulli(q) process, values
from a CPU ``torch.Generator().manual_seed(seed)``.
State O(d·q·L + L), time O(L log L + d·q·L).
"""

from __future__ import annotations

import math

import torch

from projbench.errors import InvalidArgumentError
from projbench.hadamard import fwht, next_power_of_two
from projbench.projection import Projection, check_state_budget, linear_map
from projbench.sparse_ops import CooMatrix, bernoulli_positions, check_probability

#: default state budget (bytes), as for ``dense``
DEFAULT_MAX_BYTES = 2 * 1024**3
VARIANTS = ("ailon-chazelle", "report")


def default_q(L: int) -> float:
    """Default FJLT sparsity q = min(1, (ln L)² / L) (Ailon–Chazelle with n → L, constant 1)."""
    return 1.0 if L <= 2 else min(1.0, math.log(L) ** 2 / L)


def report_q(L: int, d: int) -> float:
    """The originating report's element-wise sparsity q = min(1, 2·ln²(N)/d), N = L."""
    return 1.0 if L <= 2 else min(1.0, 2.0 * math.log(L) ** 2 / d)


class FastJLProjection(Projection):
    """P θ = (D_s H P_sᵀ θ)[:D]/√D, the transposed Ailon–Chazelle FJLT (options: sparsity q;
    ``variant="report"``: the originating report's unnormalised construction, for studies)."""

    name = "fastjl"
    signs: torch.Tensor  # (L,) Rademacher D_s
    summary = (
        "Ailon-Chazelle FJLT P_s·H·D_s used transposed; sparse P_s, q = min(1, ln²L/L) "
        "(variant=report: an unnormalised q^(-1/3) construction found in earlier reimplementations)"
    )

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        q: float | None = None,
        variant: str = "ailon-chazelle",
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        if variant not in VARIANTS:
            raise InvalidArgumentError(
                f"fastjl variant must be one of {', '.join(VARIANTS)}; got {variant!r}"
            )
        self.variant = variant
        L = next_power_of_two(D)
        self.L = L
        auto_q = default_q(L) if variant == "ailon-chazelle" else report_q(L, d)
        self.q = check_probability(auto_q if q is None else q, "q (FJLT sparsity)")
        elem = torch.empty(0, dtype=dtype).element_size()
        nnz_bound = d * L * self.q + 6 * math.sqrt(d * L * self.q) + 64
        check_state_budget(f"a fastjl projection with D={D:,}, d={d:,} (L={L:,}, q={self.q:.3g})",
                           int(L * elem + nnz_bound * (8 + elem)), max_bytes)
        g = torch.Generator().manual_seed(seed)
        signs = torch.randint(0, 2, (L,), generator=g).to(torch.float64) * 2 - 1
        pos = bernoulli_positions(d * L, self.q, g)
        rows, cols = pos // L, pos % L
        std = 1.0 / math.sqrt(self.q) if variant == "ailon-chazelle" else self.q ** (-1.0 / 6.0)
        values = torch.randn(pos.numel(), generator=g, dtype=torch.float64) * std
        # Column-major order: the forward's scatter into L entries and the adjoint's gather from
        # them then sweep memory in increasing order (the d-sized side stays in cache).
        order = torch.argsort(cols, stable=True)
        rows, cols, values = rows[order], cols[order], values[order]
        dev = self._init_device
        self.register_buffer("signs", signs.to(dtype=dtype, device=dev))
        # P_s, d×L; plus a row-major CSR copy for the adjoint's P_s u (d short sums over L)
        self.ps = CooMatrix(rows, cols, values.to(dtype), (d, L), csr_matvec=True).to(dev)
        self.scale = 1.0 / math.sqrt(D)

    @property
    def unit_columns(self) -> bool:  # type: ignore[override]
        """False for ``variant="report"`` (deliberately unnormalised: E‖P e_j‖² = q^(2/3))."""
        return self.variant == "ailon-chazelle" or self.q == 1.0

    @property
    def nnz(self) -> int:
        return self.ps.nnz

    def sparse_dense(self) -> torch.Tensor:
        """P_s as a dense (d, L) tensor (tests, small sizes)."""
        return self.ps.to_dense()

    def _forward(self, theta: torch.Tensor) -> torch.Tensor:
        lead = theta.shape[:-1]
        u = fwht(self.ps.rmatvec(theta.reshape(-1, self.d)), scale=self.scale / math.sqrt(self.L))
        return (u[:, : self.D] * self.signs[: self.D]).reshape(*lead, self.D)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lead = y.shape[:-1]
        flat = y.reshape(-1, self.D)
        z = torch.empty(flat.shape[0], self.L, dtype=y.dtype, device=y.device)
        torch.mul(flat, self.signs[: self.D], out=z[:, : self.D])
        z[:, self.D :] = 0
        u = fwht(z, scale=self.scale / math.sqrt(self.L))
        return self.ps.matvec(u).reshape(*lead, self.d)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D): scatter P_sᵀθ, one FWHT, signs on the D kept entries."""
        return linear_map(theta, self._forward, self._adjoint)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d), the exact transpose c·P_s H D_s [y; 0]."""
        return linear_map(y, self._adjoint, self._forward)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, L={self.L}, q={self.q:.3g}, nnz={self.nnz}, variant={self.variant}"
