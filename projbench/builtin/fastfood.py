"""Built-in projection ``fastfood``: one global Fastfood block (Le, Sarlós, Smola 2013) as used
by Li et al. 2018 for subspace training.

With L = 2^⌈log₂ max(D, d)⌉ and H the L×L (unnormalised, ±1) Walsh–Hadamard matrix,

    V = H G Π H B ∈ R^{L×L},   P θ = c · (V [θ; 0])[:D],   c = 1 / √(D · Σ_i G_ii²)

B = diag of Rademacher signs, Π a uniform random permutation ((Πv)_i = v_{π(i)}), G = diag of
i.i.d. N(0, 1) entries; θ ∈ R^d is zero-padded to L and the output truncated to D.

Normalisation. Column j of V is H G Π H B e_j = b_j·H G w with w = Π(H e_j) a ±1 vector, so
‖V e_j‖² = ‖H G w‖² = L·ΣG² exactly. Conditional on |G|, the signs of G make the entries of
H G w uncorrelated with E (H G w)_i² = ΣG², so the first D rows carry D·ΣG² in expectation.
Hence c = 1/√(D·ΣG²) = [√(L·ΣG²)·√(D/L)]⁻¹ (Li et al.'s factor) gives E‖P e_j‖² = 1, and
‖P e_j‖² = L/D·(fraction kept), exactly 1 when D = L.

One full-length FWHT per direction. [θ; 0] is zero outside its first m = 2^⌈log₂ d⌉ entries
and, in Sylvester order, H_L = H_{L/m} ⊗ H_m, so H_L B [θ; 0] = 1_{L/m} ⊗ H_m(Bθ): the first
transform is an FWHT of size m, periodic with period m. Hence (Π H_L B[θ; 0])_k = h_{π(k) mod m}
with h = H_m(Bθ): the permutation only matters through the residues a_k = π(k) mod m, and the
gather reads an m-entry table that stays in cache (the old full-length gather over L entries
was a third of the time at L = 2^22). The matrix is *exactly* the one of the textbook formula
above (same seed, same Π), so the distortion statistics are unchanged:

    forward   P θ  = c·√m · H_L( G ⊙ h[a] )[:D],          h = H_m(B θ)/√m
    adjoint   Pᵀy  = c·√m · B·H_m( s )[:d] / √m,          s_r = Σ_{k: a_k = r} G_k·(H_L [y; 0])_k

The adjoint's block sum s is a scatter-add of L values into m bins (``scatter_add_`` on the CPU,
a gather in residue order plus a segment sum on CUDA, where atomics into m bins contend). The
scale c·√m rides in the full-length FWHT's first pass (no separate sweep), so each direction
makes one FWHT of length L, one gather/scatter and one multiply by G over L entries.

State: G (L floats), a (L int32) and B (d floats) — 8 bytes per padded coordinate in float32
(plus, on CUDA only, the int32 residue order built on first use: 12 bytes). Everything is
sampled from a CPU ``torch.Generator().manual_seed(seed)`` in the order B (L draws), Π, G, so a
seed gives the same matrix as earlier versions. A state over ``max_bytes`` is refused with
:class:`~projbench.errors.ResourceLimitError` before anything is allocated. The backward of the
forward is the adjoint and vice versa (:func:`projbench.projection.linear_map`).

Variant ``"stacked"`` (option ``variant``; default ``"global"``, the construction above). Le et
al.'s own way to reach D > d rows: K = ⌈D/m⌉ Fastfood blocks of size m = 2^⌈log₂ d⌉, here
sharing B and Π (one FWHT of size m serves every block) with a Gaussian diagonal W_J each, and
their rows *interleaved*: row i of block J goes to position i·K + J.

    V_J = H_m W_J Π H_m B ∈ R^{m×m},   (P θ)_{i·K+J} = c · (V_J [θ; 0])_i,   i·K + J < D

    forward   P θ  = c·√m · H_m(W ⊙ Πh)        as an (m, K) array, flattened, [:D];  h = H_m(B θ)/√m
    adjoint   Pᵀy  = c·√m · B·H_m(Πᵀ Σ_J W_J ⊙ (H_m Y)_{:,J})[:d] / √m,   Y = [y; 0] as (m, K)

Why it is the same projection in law where it matters. In the global form [θ; 0] fills only the
first m of L entries, so (shown above) Π acts through residues a_k ∈ [0, m), each taken L/m
times; the untruncated Gram matrix PᵀP = c²·L·Σ_k G_k² h_{a_k} h'_{a_k} depends only on how
many G_k² each residue collects, not on where they sit — any arrangement gives the same law.
Tiling the residues (a_k = π(k mod m)) and writing H_L = H_{L/m} ⊗ H_m turns V into exactly
this stack (rows in block order), with W = H_{L/m}·G/√(L/m) again i.i.d. N(0, 1); interleaving
permutes rows, which leaves PᵀP unchanged. So the subspace's own geometry (how θ_d's norms and
angles survive in θ) has the same law up to where the truncation to D rows falls.

Why interleaved. The sketch S = √(D/d)·Pᵀ (and each training step's Pᵀ·gradient) sees an input
through the blocks its coordinates fall in. In block order, an input inside one block (a small
layer's gradient, an image patch) would meet only that block's m Gaussians: on a smooth
64-coordinate bump the ratio ‖Sx‖²/‖x‖² then spread 0.85 (ideal 0.18, global 0.24) and the
``fastfood-variants`` study (6 seeds) measured d_int90 7–14 % higher. Interleaved, consecutive
coordinates fall in consecutive blocks, so a run of r ≤ K coordinates meets r independent blocks:
on the bump the spread is 0.18, at the ideal and below the global form's 0.24
(``tests/test_jl_statistics.py``), and with 12 seeds d_int90 matches the global form's (FC 927
vs 944, LeNet 546 vs 552; ``results/study-fastfood-variants``).
The layout costs nothing: the transform runs along the leading axis of the (m, K) array
(:func:`projbench.builtin.fwht_torch.fwht_leading`), and W is stored as (m, K).

Normalisation: a block maps e_j to H_m W_J Π h_j with h_j = H_m B e_j ∈ {±1}^m, of squared norm
m·ΣW_J² exactly; block J keeps its rows i < p_J = min(m, ⌈(D − J)/K⌉), p_J·ΣW_J² in expectation
over W's signs. c = (Σ_J p_J·ΣW_J²)^(−1/2) gives E‖P e_j‖² = 1, exactly 1 for every column when
m divides D. Sampled from the seeded CPU generator in the order B (d draws), Π (randperm m),
W (K·m draws, block by block).

Cost of the stacked form: K transforms of size m over K·m ≈ D entries (log₂ m instead of log₂ L
passes, and no padding of D to a power of two), a multiply by W, an m-entry gather; state K·m + d
floats and m int32 (≈ 4 bytes per output coordinate in float32).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from projbench.builtin.fwht_torch import fwht_leading
from projbench.errors import InvalidArgumentError
from projbench.hadamard import fwht, next_power_of_two
from projbench.projection import Projection, check_state_budget, linear_map

#: default state budget (bytes) of one projection, as for ``dense``
DEFAULT_MAX_BYTES = 2 * 1024**3
VARIANTS = ("global", "stacked")


def pad_last(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` zero-padded along its last dim to length n — ``x`` itself when it already has
    length n (``F.pad`` copies even when there is nothing to pad). Callers only read the result."""
    return x if x.shape[-1] == n else F.pad(x, (0, n - x.shape[-1]))


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """out[..., k] = table[..., index[k]] for a (B, m) table and an int32/int64 (n,) index.

    On the CPU, ``index_select`` along dim 1 of a 2-D tensor takes a slow strided path (10–30×
    the 1-D cost at n = 2^20, even for one row), so rows are gathered one by one with the 1-D
    kernel."""
    rows = table.shape[0]
    if table.device.type != "cpu":
        return torch.index_select(table, -1, index)
    out = torch.empty(rows, index.numel(), dtype=table.dtype, device=table.device)
    for i in range(rows):
        torch.index_select(table[i], 0, index, out=out[i])
    return out


class FastfoodProjection(Projection):
    """P θ = c·(H G Π H B [θ; 0])[:D] with one global L = 2^⌈log₂ max(D,d)⌉ block; one FWHT of
    length L per direction (the first H is applied at size m = 2^⌈log₂ d⌉)."""

    name = "fastfood"
    signs: torch.Tensor  # (d,) Rademacher B (only the first d entries of B ever act)
    gauss: torch.Tensor  # (L,) Gaussian diagonal G
    residue: torch.Tensor  # (L,) int32, π(k) mod m (global variant)
    perm: torch.Tensor  # (m,) int32, π (stacked variant; there ``gauss`` is (m, K))
    scale: float  # c·√m (a Python float: no device sync per call; recomputed on load_state_dict)
    summary = ("Fastfood H·G·Π·H·B (Le et al. 2013; Li et al. 2018), one global block, O(L) memory "
               "(variant=stacked: ⌈D/m⌉ blocks of size m sharing B and Π, FWHTs of size m)")

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        max_bytes: int = DEFAULT_MAX_BYTES,
        variant: str = "global",
    ) -> None:
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        if variant not in VARIANTS:
            raise InvalidArgumentError(
                f"fastfood variant must be one of {', '.join(VARIANTS)}; got {variant!r}"
            )
        self.variant = variant
        self._order: torch.Tensor | None = None  # CUDA only: positions sorted by residue
        self.register_load_state_dict_post_hook(lambda module, keys: module._rescale())
        elem = torch.empty(0, dtype=dtype).element_size()
        if variant == "stacked":
            self._init_stacked(seed, elem, max_bytes)
            return
        L = next_power_of_two(max(D, d))
        m = next_power_of_two(d)
        check_state_budget(f"a fastfood projection with D={D:,}, d={d:,} (L={L:,})",
                           L * (elem + 4) + d * elem, max_bytes)
        self.L, self.m = L, m
        g = torch.Generator().manual_seed(seed)
        b = torch.randint(0, 2, (L,), generator=g)[:d].to(torch.float64) * 2 - 1
        perm = torch.randperm(L, generator=g)
        gauss = torch.randn(L, generator=g, dtype=torch.float32).to(torch.float64)
        residue = (perm % m).to(torch.int32)
        del perm
        dev = self._init_device
        self.register_buffer("signs", b.to(dtype=dtype, device=dev))
        self.register_buffer("gauss", gauss.to(dtype=dtype, device=dev))
        self.register_buffer("residue", residue.to(dev))
        self.scale = self._scale_from(gauss)

    def _init_stacked(self, seed: int, elem: int, max_bytes: int) -> None:
        d, D = self.d, self.D
        m = next_power_of_two(d)
        K = -(-D // m)
        check_state_budget(f"a stacked fastfood projection with D={D:,}, d={d:,} (m={m:,})",
                           (K * m + d) * elem + 4 * m, max_bytes)
        self.m, self.K = m, K
        self.L = K * m  # rows before truncation (no power-of-two padding of D)
        g = torch.Generator().manual_seed(seed)
        b = torch.randint(0, 2, (d,), generator=g).to(torch.float64) * 2 - 1
        perm = torch.randperm(m, generator=g)
        gauss = torch.randn(K, m, generator=g, dtype=torch.float32).to(torch.float64).T.contiguous()
        dev = self._init_device
        dtype = self.dtype
        self.register_buffer("signs", b.to(dtype=dtype, device=dev))
        self.register_buffer("gauss", gauss.to(dtype=dtype, device=dev))  # (m, K): W_J as columns
        self.register_buffer("perm", perm.to(torch.int32).to(dev))  # (Πv)_r = v_{π(r)}
        self.scale = self._scale_from(gauss)

    def _scale_from(self, gauss: torch.Tensor) -> float:
        """c·√m in float64: √(m / (D·ΣG²)) (global), √(m / Σ_J p_J·ΣW_J²) (stacked, p_J the rows
        of block J that land below D)."""
        sq = gauss.double().pow(2)
        if self.variant == "stacked":  # gauss is (m, K); block J keeps its rows i < p_J
            J = torch.arange(self.K, dtype=torch.float64)
            p = torch.clamp(torch.ceil((self.D - J) / self.K), 0, self.m)
            kept = float((p * sq.cpu().sum(0)).sum())
            return math.sqrt(self.m / kept)
        return math.sqrt(self.m / (self.D * float(sq.sum())))

    def _rescale(self) -> None:
        self.scale = self._scale_from(self.gauss)

    def _fwht_scaled(self, x: torch.Tensor, *, along_blocks: bool = False) -> torch.Tensor:
        """c·√m·H applied to ``x``: along the last dim (the global form's length-L transform) or,
        with ``along_blocks``, along the block axis of the stacked form's (B, m, K) array
        (:func:`~projbench.builtin.fwht_torch.fwht_leading`). The scale rides in the first pass;
        in float16 the transform is normalised and the rest of the scale applied after, for range."""
        transform, n = (fwht_leading, self.m) if along_blocks else (fwht, x.shape[-1])
        if x.dtype == torch.float16:
            return transform(x, scale=1 / math.sqrt(n)) * (self.scale * math.sqrt(n))
        return transform(x, scale=self.scale)

    def _stacked_forward(self, theta: torch.Tensor) -> torch.Tensor:
        lead = theta.shape[:-1]
        t = theta.reshape(-1, self.d) * self.signs
        h = fwht(pad_last(t, self.m), normalized=True)  # (B, m)
        x = self.gauss * h[:, self.perm].unsqueeze(-1)  # (B, m, K): column J is W_J ⊙ Πh
        # position i·K + J holds row i of block J
        y = self._fwht_scaled(x, along_blocks=True).view(x.shape[0], self.L)
        return y[:, : self.D].reshape(*lead, self.D)

    def _stacked_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lead = y.shape[:-1]
        flat = pad_last(y.reshape(-1, self.D), self.L).view(-1, self.m, self.K)
        u = self._fwht_scaled(flat, along_blocks=True).mul_(self.gauss).sum(-1)  # Σ_J W_J ⊙ H_m y_J
        r = torch.empty_like(u)
        r[:, self.perm] = u  # Πᵀ
        x = fwht(r, normalized=True)[:, : self.d] * self.signs
        return x.reshape(*lead, self.d)

    def _forward(self, theta: torch.Tensor) -> torch.Tensor:
        if self.variant == "stacked":
            return self._stacked_forward(theta)
        lead = theta.shape[:-1]
        t = theta.reshape(-1, self.d) * self.signs
        h = fwht(pad_last(t, self.m), normalized=True)  # (B, m): one period of H_L B[θ;0]
        x = gather_rows(h, self.residue).mul_(self.gauss)  # (Π H_L B[θ;0]) ⊙ G, via the residues
        y = self._fwht_scaled(x)
        return y[:, : self.D].reshape(*lead, self.D)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.variant == "stacked":
            return self._stacked_adjoint(y)
        lead = y.shape[:-1]
        z = self._fwht_scaled(pad_last(y.reshape(-1, self.D), self.L)).mul_(self.gauss)
        s = self._block_sum(z)  # (B, m): Σ over the L/m blocks of Πᵀ(G ⊙ H_L[y;0])
        x = fwht(s, normalized=True)[:, : self.d] * self.signs
        return x.reshape(*lead, self.d)

    def _block_sum(self, z: torch.Tensor) -> torch.Tensor:
        """s[:, r] = Σ_{k: residue_k = r} z[:, k], for z of shape (B, L): a scatter-add on the CPU,
        a gather in residue order and segment sums on CUDA (:meth:`_block_sum_sorted`)."""
        if z.device.type == "cuda":
            return self._block_sum_sorted(z)
        s = torch.zeros(z.shape[0], self.m, dtype=z.dtype, device=z.device)
        for i in range(z.shape[0]):  # 1-D scatter_add_: a sequential read of z into m cache-resident bins
            s[i].scatter_add_(0, self.residue, z[i])  # (1.3-2x faster than index_add_ on the CPU)
        return s

    def _block_sum_sorted(self, z: torch.Tensor) -> torch.Tensor:
        """The block sum without atomics (the CUDA path; any device): z gathered in residue order —
        positions sorted by residue, ``_order``, int32, built on first use — is an (m, L/m) array
        whose rows are summed. On a GPU a scatter-add into only m bins serialises on atomics; the
        gather and the row sums are contention-free. On the CPU the scatter is faster."""
        if self._order is None or self._order.device != z.device:
            self._order = torch.argsort(self.residue.long(), stable=True).to(torch.int32)
        gathered = torch.index_select(z, -1, self._order)
        return gathered.view(z.shape[0], self.m, self.L // self.m).sum(-1)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """θ ↦ Pθ: (..., d) -> (..., D), one FWHT of length L (and one of length m)."""
        return linear_map(theta, self._forward, self._adjoint)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y ↦ Pᵀy: (..., D) -> (..., d), the exact transpose B H Πᵀ G H of the forward."""
        return linear_map(y, self._adjoint, self._forward)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self._order = None  # rebuilt on the new device when needed
        return super()._apply(fn, recurse)

    def extra_repr(self) -> str:
        if self.variant == "stacked":
            return f"{super().extra_repr()}, variant=stacked, K={self.K}, m={self.m}"
        return f"{super().extra_repr()}, L={self.L}, m={self.m}"
