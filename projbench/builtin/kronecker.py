"""Built-in projections ``kronecker`` and ``kronecker-sum``: the Kronecker-structured projections
of Lotfi et al. 2022 (PAC-Bayes compression bounds), whose factors have about √D rows.

Both are P = Π·M ∈ R^{D×d}: a structured M followed by Π, a uniform random permutation of the
D output coordinates ((Πz)_i = z_{π(i)}). Everything is sampled from a CPU
``torch.Generator().manual_seed(seed)`` in float32 (then cast, so every dtype and device sees
the same matrix), in the order stated below. The backward of the forward is the adjoint and
vice versa (:func:`projbench.projection.linear_map`). A state over ``max_bytes`` is refused with
:class:`~projbench.errors.ResourceLimitError` before anything is allocated.

``kronecker`` — the Kronecker product, with a dense remainder block:

    M = (R₁ ⊗ R₂) ⊕ E,   R₁, R₂ ∈ R^{a×b},   E ∈ R^{r_D × r_d},
    b = ⌊√d⌋, r_d = d − b²,   m = ⌈r_d·√(D/d)⌉ (0 if r_d = 0),   a = ⌊√(D − m)⌋, r_D = D − a²

(⊕ the direct sum, a block-diagonal matrix). The first b² coordinates of θ, read as a b×b
matrix Θ (row-major), go through the Kronecker block, (R₁ ⊗ R₂) vec(Θ) = vec(R₁ Θ R₂ᵀ) — two
small GEMMs, O(a²b + ab²) = O(D√d) work — and the last r_d through E. Entries are i.i.d.:
R₁, R₂ ~ N(0, 1/a), E ~ N(0, 1/r_D); drawn in the order R₁, R₂, E, π.

Normalisation. A column of the Kronecker block is r ⊗ r' for columns r of R₁ and r' of R₂, so
‖(R₁ ⊗ R₂) e_j‖² = ‖r‖²·‖r'‖², and by independence E = (a·1/a)·(a·1/a) = 1. A column of E has
E‖E e_j‖² = r_D·(1/r_D) = 1, and Π preserves norms: E‖P e_j‖² = 1 for every column.
Rows. Every off-diagonal entry of E[M Mᵀ] is zero (R₁'s rows, R₂'s rows and E's entries are
independent and centred), so E[P Pᵀ] = E[Π diag(E[MMᵀ]) Πᵀ] = (tr E[MMᵀ]/D)·I = (d/D)·I: the
permutation gives every parameter the same share, and the sketch S = √(D/d)·Pᵀ is unbiased,
E‖Sx‖² = ‖x‖², for every x (the Kronecker rows carry b²/a² and E's rows r_d/r_D in expectation,
which differ, so without Π it would not be).

The remainder rows. Lotfi et al.'s rounding takes a = ⌊√D⌋, leaving the r_d remainder columns
only D − a² rows: none at all when D is a perfect square (2^16, 2^18, … — those columns are
then zero, E‖P e_j‖² = 0) and fewer rows than columns at many other sizes (P rank-deficient).
Here the Kronecker block gives up rows until the remainder has at least m = ⌈r_d·√(D/d)⌉, the
aspect ratio of the factors (a/b ≈ √(D/d)), so E is as well conditioned as R₁ and R₂ and
stays O(√D·√d): r_d ≤ 2√d and r_D ≤ m + 2a + 1. When d is a perfect square (r_d = 0) the
r_D = D − a² ≤ 2√D remainder rows are zero rows (those parameters are not moved; which ones is
random, through Π). When D is too small to hold both blocks (m ≥ D, only for D ≤ 5), a = b = 0
and M = E is a dense Gaussian matrix.

Cost: state 2ab + r_D·r_d floats, O(√D·√d) — and π, D int32, which dominates (4 bytes per
parameter, the same memory as a float32 copy of θ); work per direction two GEMMs of
O(a²b) flops, a pass of E over r_D·r_d entries and a gather (forward) or scatter (adjoint) of D
entries through π, which at large D, where the D-entry vectors leave the cache, costs most of
the time. Rank: rank(R₁)·rank(R₂) + rank(E) = b² + r_d = d for every D ≥ d, which gives
r_D ≥ m ≥ r_d and a ≥ b (D − d ≥ ⌈r_d(√(D/d) − 1)⌉ = m − r_d because d(√(D/d) + 1) > r_d).
Sketch tails: for x of rank one as an a×a matrix (x = e_i, a constant vector) the Kronecker part
of ‖Sx‖² is a product of two χ²_b/b, so its relative variance is about 4/b = 4/√d instead of the
Gaussian 2/d — a much heavier tail than a dense sketch (Jin, Kolda, Ward 2021 analyse this).

``kronecker-sum`` — the Kronecker sum (Lotfi et al.'s "RoundedKron"):

    M = [ c·(A ⊗ β + α ⊗ B) ; E ],   A, B ∈ R^{k×d},   E ∈ R^{r_D×d},   k = ⌊√D⌋, r_D = D − k²

with A, B i.i.d. N(0, 1), c = 1/√(2D), E i.i.d. N(0, 1/D) stacked below, and α, β ∈ R^k.
Reading the first k² outputs as a k×k grid, (Mθ)_{(i,j)} = c·(u_i β_j + α_i v_j) with u = Aθ,
v = Bθ: two k×d matrix-vector products and one pass over the grid, O(√D·d + D) work and
O(√D·d) state (2kd + r_D·d floats; plus π, D int32). Drawn in the order A, B, E, π, then α, β.

``variant`` (option): ``"signed"`` (default) — α, β i.i.d. Rademacher signs; ``"ones"`` — α = β =
1, Lotfi et al.'s exact A ⊗ 1 + 1 ⊗ B (their code also leaves the remainder unnormalised, so
that their columns have E‖P e_j‖² = 1 + r_D/D; here both variants are scaled to exactly 1).
A, B, E and π are the same for both variants of one seed.

Normalisation (both variants). Column l is c·(a_l ⊗ β + α ⊗ b_l) over E's column e_l, so
‖P e_l‖² = c²·(k‖a_l‖² + k‖b_l‖² + 2(αᵀa_l)(βᵀb_l)) + ‖e_l‖², with expectation
c²·2k² + r_D/D = k²/D + r_D/D = 1 (the cross term is centred: a_l, b_l are independent of
α, β and each other). Every entry of P has variance 1/D, like ``dense``.
Rows. Two grid rows (i, j) and (i', j') have E[row·row'] = c²d·(δ_ii' β_j β_j' + δ_jj' α_i α_i').
With signs (``"signed"``) this vanishes for (i, j) ≠ (i', j') in expectation over α, β, so
E[PPᵀ] = (d/D)·I and the sketch is unbiased for every x. With ones (``"ones"``) the rows of one
grid row or column are correlated (ρ = 1/2), which the permutation spreads into
E[PPᵀ] = (d/D)·((1 − ρ')·I + ρ'·11ᵀ), ρ' ≈ 1/(k + 1): the sketch of a vector with a large mean
is biased (about k× on a constant vector) — the range of P leans towards the uniform shift 1,
which lies in the span of every A ⊗ 1 + 1 ⊗ B. Signs change none of the column geometry: P's
Gram matrix PᵀP = c²(A ⊗ β + α ⊗ B)ᵀ(A ⊗ β + α ⊗ B) + EᵀE has the same law in both variants
(flipping the signs of A's rows and B's rows maps one onto the other).

Rank. The grid c·(uβᵀ + αvᵀ) has rank at most 2, so the Kronecker-sum block spans at most 2k − 1
dimensions of R^D (2k − 1 + r_D in all): for d beyond about 2√D the columns are linearly
dependent and the subspace has fewer than d dimensions. Sketch: Pᵀ first reduces x to 2k sums
over grid rows and columns, so ‖Sx‖² fluctuates more than a dense sketch's (relative variance
about 2/d + 1/k) even on Gaussian inputs.
"""

from __future__ import annotations

import math

import torch

from projbench.builtin.fastfood import gather_rows
from projbench.errors import InvalidArgumentError
from projbench.projection import Projection, check_state_budget, linear_map

#: default state budget (bytes), as for ``dense``
DEFAULT_MAX_BYTES = 2 * 1024**3
SUM_VARIANTS = ("signed", "ones")
#: positions converted to int64 at a time by the CPU scatter of the adjoint (cache-sized)
_SCATTER_CHUNK = 1 << 16


def kronecker_shape(d: int, D: int) -> tuple[int, int, int, int]:
    """(a, b, r_D, r_d) of ``kronecker``: factors a×b, remainder block r_D×r_d (module docstring)."""
    b = math.isqrt(d)
    r_d = d - b * b
    m = math.ceil(r_d * math.sqrt(D / d)) if r_d else 0
    if m >= D:  # too few rows for both blocks (D ≤ 5): one dense block
        return 0, 0, D, d
    a = math.isqrt(D - m)
    return a, b, D - a * a, r_d


def _gaussian(g: torch.Generator, rows: int, cols: int, std: float) -> torch.Tensor:
    """rows×cols i.i.d. N(0, std²), drawn in float32 and scaled in float64."""
    return torch.randn(rows, cols, generator=g, dtype=torch.float32).to(torch.float64) * std


def scatter_rows(y: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """w with w[..., perm[k]] = y[..., k] for a (B, n) ``y`` and an int32 permutation of n: Πᵀy
    when (Πz)_i = z_{perm[i]}. On the CPU, row by row through ``scatter_`` with int64 positions
    converted a cache-sized chunk at a time (its int32 path is about 2× slower)."""
    w = torch.empty_like(y)
    if y.device.type != "cpu":
        w[:, perm] = y
        return w
    n = perm.numel()
    for start in range(0, n, _SCATTER_CHUNK):
        idx = perm[start : start + _SCATTER_CHUNK].long()
        for i in range(y.shape[0]):
            w[i].scatter_(0, idx, y[i, start : start + _SCATTER_CHUNK])
    return w


def _register_perm(p: Projection, g: torch.Generator) -> None:
    """Draw π (randperm D) and register it as the int32 buffer ``perm``."""
    perm = torch.randperm(p.D, generator=g).to(torch.int32)
    p.register_buffer("perm", perm.to(p._init_device))


class KroneckerProjection(Projection):
    """P = Π·((R₁ ⊗ R₂) ⊕ E): Kronecker product of two ⌊√(D−m)⌋×⌊√d⌋ Gaussian factors, a dense
    remainder block and a random permutation of the outputs (Lotfi et al. 2022)."""

    name = "kronecker"
    summary = ("Kronecker product Π·(R₁⊗R₂ ⊕ E), factors ≈ √D×√d, dense remainder E, permuted "
               "outputs (Lotfi et al. 2022); O(√D·√d) floats + D int32")
    factor1: torch.Tensor  # (a, b) R₁, N(0, 1/a)
    factor2: torch.Tensor  # (a, b) R₂, N(0, 1/a)
    rest: torch.Tensor  # (r_D, r_d) E, N(0, 1/r_D)
    perm: torch.Tensor  # (D,) int32 π

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        a, b, r_D, r_d = kronecker_shape(d, D)
        self.a, self.b, self.rows_rest, self.cols_rest = a, b, r_D, r_d
        elem = torch.empty(0, dtype=dtype).element_size()
        check_state_budget(f"a kronecker projection with D={D:,}, d={d:,} (factors {a}×{b})",
                           (2 * a * b + r_D * r_d) * elem + 4 * D, max_bytes)
        g = torch.Generator().manual_seed(seed)
        std = 1 / math.sqrt(a) if a else 0.0
        r1, r2 = _gaussian(g, a, b, std), _gaussian(g, a, b, std)
        rest = _gaussian(g, r_D, r_d, 1 / math.sqrt(r_D) if r_D else 0.0)
        dev = self._init_device
        self.register_buffer("factor1", r1.to(dtype=dtype, device=dev))
        self.register_buffer("factor2", r2.to(dtype=dtype, device=dev))
        self.register_buffer("rest", rest.to(dtype=dtype, device=dev))
        _register_perm(self, g)

    def _forward(self, theta: torch.Tensor) -> torch.Tensor:
        lead = theta.shape[:-1]
        t = theta.reshape(-1, self.d)
        n, a, b = t.shape[0], self.a, self.b
        z = torch.empty(n, self.D, dtype=t.dtype, device=t.device)  # M θ, written in place
        if a:
            left = torch.matmul(self.factor1, t[:, : b * b].reshape(n, b, b))  # R₁Θ, Θ row-major
            for i in range(n):  # one GEMM per row, straight into its contiguous slice of z
                torch.mm(left[i], self.factor2.T, out=z[i, : a * a].view(a, a))
        if self.rows_rest:
            torch.matmul(t[:, b * b :], self.rest.T, out=z[:, a * a :])
        return gather_rows(z, self.perm).reshape(*lead, self.D)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lead = y.shape[:-1]
        w = scatter_rows(y.reshape(-1, self.D), self.perm)
        a, b = self.a, self.b
        parts = []
        if a:
            grid = w[:, : a * a].reshape(-1, a, a)
            parts.append(torch.matmul(self.factor1.T, torch.matmul(grid, self.factor2)).reshape(-1, b * b))
        if self.cols_rest:
            parts.append(w[:, a * a :] @ self.rest)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return x.reshape(*lead, self.d)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D): R₁ Θ R₂ᵀ and E θ_rest, gathered through π."""
        return linear_map(theta, self._forward, self._adjoint)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d), the exact transpose (R₁ᵀ ⊗ R₂ᵀ ⊕ Eᵀ)·Πᵀ."""
        return linear_map(y, self._adjoint, self._forward)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, factors={self.a}x{self.b}, "
                f"rest={self.rows_rest}x{self.cols_rest}")


class KroneckerSumProjection(Projection):
    """P = Π·[c·(A ⊗ β + α ⊗ B); E]: the Kronecker sum of two ⌊√D⌋×d Gaussian factors, a dense
    remainder and a random permutation of the outputs (Lotfi et al. 2022; option ``variant``)."""

    name = "kronecker-sum"
    summary = ("Kronecker sum Π·[c(A⊗β + α⊗B); E], A, B ≈ √D×d Gaussian, random signs α, β "
               "(variant=ones: Lotfi et al.'s A⊗1 + 1⊗B); O(√D·d) floats + D int32")
    factor1: torch.Tensor  # (k, d) c·A
    factor2: torch.Tensor  # (k, d) c·B
    signs1: torch.Tensor  # (k,) α
    signs2: torch.Tensor  # (k,) β
    rest: torch.Tensor  # (r_D, d) E, N(0, 1/D)
    perm: torch.Tensor  # (D,) int32 π

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        variant: str = "signed",
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        if variant not in SUM_VARIANTS:
            raise InvalidArgumentError(
                f"kronecker-sum variant must be one of {', '.join(SUM_VARIANTS)}; got {variant!r}"
            )
        self.variant = variant
        k = math.isqrt(D)
        self.k, self.rows_rest = k, D - k * k
        elem = torch.empty(0, dtype=dtype).element_size()
        check_state_budget(f"a kronecker-sum projection with D={D:,}, d={d:,} (k={k:,})",
                           (2 * k * d + self.rows_rest * d + 2 * k) * elem + 4 * D, max_bytes)
        g = torch.Generator().manual_seed(seed)
        c = 1 / math.sqrt(2 * D)
        f1, f2 = _gaussian(g, k, d, c), _gaussian(g, k, d, c)
        rest = _gaussian(g, self.rows_rest, d, 1 / math.sqrt(D))
        dev = self._init_device
        self.register_buffer("factor1", f1.to(dtype=dtype, device=dev))
        self.register_buffer("factor2", f2.to(dtype=dtype, device=dev))
        self.register_buffer("rest", rest.to(dtype=dtype, device=dev))
        _register_perm(self, g)
        if variant == "signed":
            s = torch.randint(0, 2, (2, k), generator=g).to(torch.float64) * 2 - 1
        else:
            s = torch.ones(2, k, dtype=torch.float64)
        self.register_buffer("signs1", s[0].to(dtype=dtype, device=dev))
        self.register_buffer("signs2", s[1].to(dtype=dtype, device=dev))

    def _forward(self, theta: torch.Tensor) -> torch.Tensor:
        lead = theta.shape[:-1]
        t = theta.reshape(-1, self.d)
        n, k = t.shape[0], self.k
        u, v = t @ self.factor1.T, t @ self.factor2.T  # (n, k): c·Aθ, c·Bθ
        z = torch.empty(n, self.D, dtype=t.dtype, device=t.device)  # M θ, written in place
        grid = z[:, : k * k].view(n, k, k)  # grid_(i,j) = u_i β_j + α_i v_j
        torch.mul(u[:, :, None], self.signs2, out=grid)
        grid.addcmul_(self.signs1[:, None], v[:, None, :])
        if self.rows_rest:
            torch.matmul(t, self.rest.T, out=z[:, k * k :])
        return gather_rows(z, self.perm).reshape(*lead, self.D)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lead = y.shape[:-1]
        w = scatter_rows(y.reshape(-1, self.D), self.perm)
        k = self.k
        grid = w[:, : k * k].reshape(-1, k, k)
        rows = torch.matmul(grid, self.signs2)  # Σ_j Y_ij β_j
        cols = torch.matmul(self.signs1, grid)  # Σ_i α_i Y_ij
        x = rows @ self.factor1 + cols @ self.factor2
        if self.rows_rest:
            x = x + w[:, k * k :] @ self.rest
        return x.reshape(*lead, self.d)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D): two k×d products, the rank-2 grid, π."""
        return linear_map(theta, self._forward, self._adjoint)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d), the exact transpose: Πᵀ, grid row and column sums."""
        return linear_map(y, self._adjoint, self._forward)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, k={self.k}, rest={self.rows_rest}, variant={self.variant}"
