"""Contract checks over every registered projection (third-party plugins included), plus
hypothesis tests of the algebra and specific tests of the built-ins."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import projbench
from projbench import testing
from projbench.errors import InvalidArgumentError, ResourceLimitError

PROJECTIONS = projbench.list_plugins("projections")
BUILTINS = ["dense", "sparse", "fastfood", "fastjl"]
# (d, D) valid for every projection (d ≤ D: some plugins, e.g. an SRHT, need it)
SIZES = [(1, 1), (7, 50), (16, 64), (5, 300)]


@pytest.mark.parametrize("name", PROJECTIONS)
@pytest.mark.parametrize(("d", "D"), SIZES)
def test_contract(name: str, d: int, D: int) -> None:
    done = testing.run_all_checks(name, d=d, D=D)
    assert "check_column_norms" in done and "check_dense_consistency" in done


@pytest.mark.parametrize("name", BUILTINS)
def test_contract_more_columns_than_rows(name: str) -> None:
    testing.run_all_checks(name, d=9, D=5)


@pytest.mark.parametrize(
    ("name", "options"),
    [("dense", {"normalize_columns": True}), ("sparse", {"density": 0.3}), ("fastjl", {"q": 0.05}),
     ("fastjl", {"q": 1.0})],
)
def test_contract_with_options(name: str, options: dict[str, object]) -> None:
    testing.run_all_checks(name, d=6, D=40, **options)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", PROJECTIONS)
def test_contract_cuda(name: str) -> None:
    testing.run_all_checks(name, d=7, D=50, device="cuda")


# -- hypothesis: algebra for any sizes, batch shapes, dtypes (never a JL statistic) -----------
sizes = st.tuples(st.integers(1, 24), st.integers(1, 80)).filter(lambda t: t[0] <= t[1])
DTYPES = [torch.float32, torch.float64]
batches = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@pytest.mark.parametrize("name", PROJECTIONS)
@given(size=sizes, batch=batches, seed=st.integers(0, 2**16), dtype=st.sampled_from(DTYPES))
def test_algebra(
    name: str, size: tuple[int, int], batch: tuple[int, ...], seed: int, dtype: torch.dtype
) -> None:
    """Linearity and ⟨Pθ, y⟩ = ⟨θ, Pᵀy⟩ hold for every seed, so hypothesis may pick it here."""
    d, D = size
    p = projbench.make_projection(name, d=d, D=D, seed=seed, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    t1, t2 = (torch.randn(*batch, d, generator=g, dtype=torch.float64).to(dtype) for _ in range(2))
    y = torch.randn(*batch, D, generator=g, dtype=torch.float64).to(dtype)
    out = p(t1)
    assert out.shape == (*batch, D) and out.dtype == dtype
    back = p.adjoint(y)
    assert back.shape == (*batch, d) and back.dtype == dtype
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    scale = 1.0 + float(out.abs().max()) + float(back.abs().max())
    lin = p(2.5 * t1 - t2) - (2.5 * out - p(t2))
    assert float(lin.abs().max()) <= tol * scale * 4
    lhs = (out.double() * y.double()).sum(-1)
    rhs = (t1.double() * back.double()).sum(-1)
    assert float((lhs - rhs).abs().max()) <= tol * scale * math.sqrt(D) * 4


# -- built-in specifics ---------------------------------------------------------------------
def test_dense_budget_error_names_bytes_and_alternatives() -> None:
    with pytest.raises(ResourceLimitError, match=r"4,000,000 bytes.*fastfood, fastjl or sparse"):
        projbench.make_projection("dense", d=100, D=10_000, max_bytes=1_000_000)
    with pytest.raises(InvalidArgumentError):
        projbench.make_projection("dense", d=2, D=3, max_bytes=0)


def test_dense_entries_and_exact_columns() -> None:
    m = projbench.make_projection("dense", d=200, D=500, seed=0, dtype=torch.float64).to_dense()
    # entries N(0, 1/D): sample variance within 5 standard errors (sd of s² is √(2/n)/D)
    var = float(m.var())
    assert abs(var * 500 - 1) < 5 * math.sqrt(2 / m.numel())
    cols = projbench.make_projection("dense", d=20, D=30, normalize_columns=True).to_dense().norm(dim=0)
    torch.testing.assert_close(cols, torch.ones(20))


def test_sparse_structure_matches_li_hastie_church() -> None:
    d, D = 200, 2500
    p = projbench.make_projection("sparse", d=d, D=D, seed=0, dtype=torch.float64)
    m = p.to_dense()
    s = 1 / math.sqrt(D)
    nz = m[m != 0]
    torch.testing.assert_close(nz.abs(), torch.full_like(nz, math.sqrt(1 / (s * D))))
    n, k = D * d, nz.numel()
    assert abs(k - n * s) < 5 * math.sqrt(n * s * (1 - s))  # Binomial(n, s) count
    assert abs(float((nz > 0).double().mean()) - 0.5) < 5 * 0.5 / math.sqrt(k)
    assert p.memory_bytes() < m.numel() * 8 / 10  # stored sparse (P and Pᵀ)
    with pytest.raises(InvalidArgumentError, match="density"):
        projbench.make_projection("sparse", d=2, D=3, density=1.5)


def test_sparse_backward_uses_stored_transpose() -> None:
    p = projbench.make_projection("sparse", d=30, D=400, seed=2, dtype=torch.float64)
    theta = torch.randn(3, 30, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(p, (theta,))
    y = torch.randn(2, 400, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(p.adjoint, (y,))


@pytest.mark.parametrize("D", [64, 100])
def test_fastfood_column_norm_exact_when_untruncated(D: int) -> None:
    """‖V e_j‖² = L·ΣG² exactly, so with D = L every column has norm exactly 1."""
    p = projbench.make_projection("fastfood", d=10, D=D, seed=3, dtype=torch.float64)
    norms = p.to_dense().pow(2).sum(0)
    if D == p.L:
        torch.testing.assert_close(norms, torch.ones(10, dtype=torch.float64))
    else:
        assert float(norms.max()) <= p.L / D + 1e-9  # a truncated unit column of V·(L/D)^½


def _fastfood_textbook(d: int, D: int, seed: int) -> torch.Tensor:
    """c·(H G Π H B)[:D, :d] built densely from the seed's draws (B: L signs, Π, G, in order)
    with scipy's Hadamard matrix: an implementation-independent reference."""
    import scipy.linalg

    L = 1 << max(0, math.ceil(math.log2(max(D, d))))
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, 2, (L,), generator=g).double() * 2 - 1
    perm = torch.randperm(L, generator=g)
    G = torch.randn(L, generator=g, dtype=torch.float32).double()
    H = torch.from_numpy(scipy.linalg.hadamard(L).astype("float64"))
    Pi = torch.eye(L, dtype=torch.float64)[perm]  # (Πv)_i = v_{π(i)}
    V = H @ torch.diag(G) @ Pi @ H @ torch.diag(b)
    return V[:D, :d] / math.sqrt(D * float((G**2).sum()))


@pytest.mark.parametrize(("d", "D"), [(5, 12), (1, 1), (9, 5), (3, 64), (33, 200), (100, 1000)])
def test_fastfood_reference_formula(d: int, D: int) -> None:
    """The one-FWHT-per-direction implementation is exactly V = H G Π H B of the textbook."""
    p = projbench.make_projection("fastfood", d=d, D=D, seed=7, dtype=torch.float64)
    ref = _fastfood_textbook(d, D, 7)
    torch.testing.assert_close(p.to_dense(), ref, rtol=1e-12, atol=1e-12)
    y = torch.randn(3, D, dtype=torch.float64)
    torch.testing.assert_close(p.adjoint(y), y @ ref, rtol=1e-12, atol=1e-12)


def _fastfood_stacked_textbook(d: int, D: int, seed: int) -> torch.Tensor:
    """c·[H_m W_J Π H_m B]_J with row i of block J at position i·K + J, rows [:D], built densely
    from the seed's draws (B: d signs, Π: randperm m, W: K·m Gaussians block by block) with
    scipy's Hadamard matrix."""
    import scipy.linalg

    m = 1 << max(0, math.ceil(math.log2(d)))
    K = -(-D // m)
    g = torch.Generator().manual_seed(seed)
    b = torch.randint(0, 2, (d,), generator=g).double() * 2 - 1
    perm = torch.randperm(m, generator=g)
    W = torch.randn(K, m, generator=g, dtype=torch.float32).double()
    H = torch.from_numpy(scipy.linalg.hadamard(m).astype("float64"))
    Pi = torch.eye(m, dtype=torch.float64)[perm]
    B = torch.zeros(m, d, dtype=torch.float64)
    B[:d, :d] = torch.diag(b)  # [θ; 0] then the signs
    V = torch.stack([H @ torch.diag(W[J]) @ Pi @ H @ B for J in range(K)])  # (K, m, d)
    rows = V.permute(1, 0, 2).reshape(K * m, d)  # position i·K + J holds row i of block J
    kept = sum(min(m, -(-(D - J) // K)) * float((W[J] ** 2).sum()) for J in range(K))
    return rows[:D] / math.sqrt(kept)


@pytest.mark.parametrize(("d", "D"), [(5, 12), (1, 1), (9, 5), (3, 64), (33, 200), (100, 1000), (8, 64)])
def test_fastfood_stacked_reference_formula(d: int, D: int) -> None:
    """variant="stacked" is exactly Le et al.'s stack of K = ⌈D/m⌉ blocks H_m W_J Π H_m B with
    interleaved rows, normalised so that E‖P e_j‖² = 1 (every column exactly 1 when m | D)."""
    p = projbench.make_projection("fastfood", d=d, D=D, seed=7, dtype=torch.float64, variant="stacked")
    ref = _fastfood_stacked_textbook(d, D, 7)
    torch.testing.assert_close(p.to_dense(), ref, rtol=1e-12, atol=1e-12)
    y = torch.randn(3, D, dtype=torch.float64)
    torch.testing.assert_close(p.adjoint(y), y @ ref, rtol=1e-12, atol=1e-12)
    if D % p.m == 0:
        torch.testing.assert_close(ref.pow(2).sum(0), torch.ones(d, dtype=torch.float64))
    assert len(testing.run_all_checks("fastfood", d=d, D=D, variant="stacked")) >= 10
    testing.check_column_norms("fastfood", d=d, D=D, variant="stacked")


def test_fastfood_stacked_is_the_global_form_with_tiled_residues() -> None:
    """The docstring's identity: global Fastfood whose residues tile (a_k = π(k mod m)) equals
    the stacked form with W = H_{L/m}·G (D = L) up to the interleaving of rows, so the
    variants share the law of PᵀP."""
    import scipy.linalg

    d, D = 6, 256
    glob = projbench.make_projection("fastfood", d=d, D=D, seed=1, dtype=torch.float64)
    stack = projbench.make_projection("fastfood", d=d, D=D, seed=2, dtype=torch.float64, variant="stacked")
    m, L = glob.m, glob.L
    K = L // m
    assert (m, stack.K, stack.m) == (stack.m, K, m)
    glob.residue.copy_(stack.perm.repeat(K))  # a_k = π(k mod m)
    glob.signs.copy_(stack.signs)
    H = torch.from_numpy(scipy.linalg.hadamard(K).astype("float64"))
    stack.gauss.copy_((H @ glob.gauss.view(K, m)).T)  # W_J as columns of (m, K)
    stack._rescale()
    block_order = stack.to_dense().view(m, K, d).permute(1, 0, 2).reshape(L, d)  # undo interleaving
    torch.testing.assert_close(block_order, glob.to_dense(), rtol=1e-12, atol=1e-12)


def test_fastfood_stacked_state_and_options() -> None:
    p = projbench.make_projection("fastfood", d=1000, D=199_210, variant="stacked")
    assert (p.m, p.K, p.L) == (1024, 195, 195 * 1024)
    assert p.memory_bytes() <= 4.1 * p.D  # W (K·m floats), Π (m int32), B (d floats)
    theta = torch.randn(2, 3, 1000)
    torch.testing.assert_close(p(theta)[1, 2], p(theta[1, 2]))  # batches agree with one row
    with pytest.raises(InvalidArgumentError, match="variant must be one of global, stacked"):
        projbench.make_projection("fastfood", d=2, D=8, variant="nope")
    with pytest.raises(ResourceLimitError, match="stacked fastfood"):
        projbench.make_projection("fastfood", d=10, D=2**40, variant="stacked")


def test_fastfood_state_is_at_most_12_bytes_per_padded_coordinate() -> None:
    p = projbench.make_projection("fastfood", d=1000, D=199_210)
    assert p.residue.dtype == torch.int32
    assert p.memory_bytes() <= 12 * p.L
    q = projbench.make_projection("fastfood", d=2048, D=2048)  # d = L: the worst case
    assert q.memory_bytes() <= 12 * q.L


def test_fastfood_backward_is_the_adjoint_and_batches_agree() -> None:
    p = projbench.make_projection("fastfood", d=40, D=3000, seed=1, dtype=torch.float64)
    theta = torch.randn(4, 40, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3000, dtype=torch.float64)
    (grad,) = torch.autograd.grad((p(theta) * y).sum(), theta)
    torch.testing.assert_close(grad, p.adjoint(y))
    rows = torch.stack([p(t) for t in theta.detach()])  # the 1-row path == the batched path
    torch.testing.assert_close(rows, p(theta.detach()))
    small = projbench.make_projection("fastfood", d=5, D=40, seed=1, dtype=torch.float64)
    assert torch.autograd.gradgradcheck(small, (torch.randn(2, 5, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize(("d", "D"), [(40, 3000), (1, 7), (64, 64), (1000, 199_210)])
def test_fastfood_block_sum_strategies_agree(d: int, D: int) -> None:
    """The CUDA block sum (gather in residue order, segment sums) run on the CPU against the
    CPU's scatter-add and a dense one-hot reference: the same sums, whatever the device."""
    p = projbench.make_projection("fastfood", d=d, D=D, seed=3, dtype=torch.float64)
    z = torch.randn(3, p.L, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(p.residue.long(), p.m).to(torch.float64)  # (L, m)
    expected = z @ onehot
    torch.testing.assert_close(p._block_sum(z), expected)
    torch.testing.assert_close(p._block_sum_sorted(z), expected)
    assert p._order is not None and p._order.dtype == torch.int32
    assert torch.equal(torch.sort(p._order.long()).values, torch.arange(p.L))  # a permutation


@pytest.mark.parametrize("name", ["fastfood", "fastjl"])
@pytest.mark.parametrize("D", [1024, 1000])  # D = L: no padding copy; D < L: padded
def test_adjoint_leaves_its_input_alone_and_is_the_transpose(name: str, D: int) -> None:
    p = projbench.make_projection(name, d=10, D=D, seed=2, dtype=torch.float64)
    y = torch.randn(3, D, dtype=torch.float64)
    before = y.clone()
    out = p.adjoint(y)
    assert torch.equal(y, before)
    torch.testing.assert_close(out, y @ p.to_dense())


def test_fastfood_huge_D_is_refused_before_allocating() -> None:
    with pytest.raises(ResourceLimitError, match=r"fastfood.*max_bytes"):
        projbench.make_projection("fastfood", d=10, D=2**40)
    with pytest.raises(ResourceLimitError):
        projbench.make_projection("fastfood", d=10, D=2**20, max_bytes=1000)


def test_fastjl_reference_formula_and_default_q() -> None:
    import scipy.linalg

    from projbench.builtin.fastjl import default_q

    p = projbench.make_projection("fastjl", d=6, D=20, seed=4, dtype=torch.float64)
    L = p.L
    assert L == 32 and p.q == pytest.approx(min(1.0, math.log(32) ** 2 / 32))
    assert default_q(2**20) == pytest.approx(math.log(2**20) ** 2 / 2**20)
    H = torch.from_numpy(scipy.linalg.hadamard(L).astype("float64")) / math.sqrt(L)
    Ps = p.sparse_dense()  # d × L
    ref = (torch.diag(p.signs) @ H @ Ps.T)[:20] / math.sqrt(20)
    torch.testing.assert_close(p.to_dense(), ref)
    with pytest.raises(InvalidArgumentError, match="q"):
        projbench.make_projection("fastjl", d=2, D=3, q=0.0)


def test_fastjl_stays_well_conditioned_as_d_grows() -> None:
    """Columns stay near-orthonormal: singular values of P for d = D/8 within [0.5, 1.5]."""
    p = projbench.make_projection("fastjl", d=128, D=1024, seed=0, dtype=torch.float64)
    sv = torch.linalg.svdvals(p.to_dense())
    assert 0.5 < float(sv.min()) and float(sv.max()) < 1.5


@pytest.mark.parametrize("name", ["fastfood", "fastjl"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_agrees_with_float64(name: str, dtype: torch.dtype) -> None:
    """The scales folded into the FWHT keep half-precision results in range (relative error of
    the largest entry within a few bf16 ulps)."""
    p64 = projbench.make_projection(name, d=100, D=5000, seed=1, dtype=torch.float64)
    p = projbench.make_projection(name, d=100, D=5000, seed=1, dtype=dtype)
    theta = torch.randn(2, 100, dtype=torch.float64)
    y = torch.randn(2, 5000, dtype=torch.float64)
    for got, ref in ((p(theta.to(dtype)), p64(theta)), (p.adjoint(y.to(dtype)), p64.adjoint(y))):
        assert got.dtype == dtype
        assert float((got.double() - ref).abs().max()) < 0.05 * float(ref.abs().max())


def test_fastjl_state_and_backward() -> None:
    p = projbench.make_projection("fastjl", d=50, D=3000, seed=2, dtype=torch.float64)
    assert p.ps.rows.dtype == torch.int32 and p.ps.cols.dtype == torch.int32
    # signs; COO triplets; the adjoint's row-major CSR copy (column, value; row pointers)
    assert p.memory_bytes() == 8 * p.L + (4 + 4 + 8) * p.nnz + (4 + 8) * p.nnz + 4 * (50 + 1)
    assert "ps.csr_vals" not in p.state_dict()  # derived: rebuilt on load, never saved
    theta = torch.randn(3, 50, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 3000, dtype=torch.float64)
    (grad,) = torch.autograd.grad((p(theta) * y).sum(), theta)
    torch.testing.assert_close(grad, p.adjoint(y))
    rows = torch.stack([p.adjoint(r) for r in y])  # the 1-row path == the batched path
    torch.testing.assert_close(rows, p.adjoint(y))


def test_fastjl_report_variant_is_the_reports_construction() -> None:
    """variant="report": Bernoulli q = 2 ln²(L)/d, nonzeros N(0, q^(-1/3)), c = 1/√D, unnormalised."""
    import scipy.linalg

    from projbench.builtin.fastjl import report_q

    d, D = 100, 120  # L = 128: q = 2·ln²(128)/100 ≈ 0.47 < 1
    p = projbench.make_projection("fastjl", d=d, D=D, seed=3, dtype=torch.float64, variant="report")
    L = p.L
    assert p.q == pytest.approx(2 * math.log(L) ** 2 / d) and p.q == report_q(L, d) and p.q < 1
    assert p.unit_columns is False
    Ps = p.sparse_dense()
    nz = Ps[Ps != 0]
    n = d * L
    assert abs(nz.numel() - n * p.q) < 5 * math.sqrt(n * p.q * (1 - p.q))
    # variance q^(-1/3): the sample variance within 5 standard errors (Gaussian: sd of s² = σ²√(2/k))
    var = p.q ** (-1 / 3)
    assert abs(float(nz.var()) - var) < 5 * var * math.sqrt(2 / nz.numel())
    H = torch.from_numpy(scipy.linalg.hadamard(L).astype("float64")) / math.sqrt(L)
    ref = (torch.diag(p.signs) @ H @ Ps.T)[:D] / math.sqrt(D)
    torch.testing.assert_close(p.to_dense(), ref)
    # deliberately not unit-norm: mean ‖P e_j‖² ≈ q^(2/3), and the contract check says so
    with pytest.raises(testing.ContractError, match="expected 1"):
        testing.check_column_norms("fastjl", d=d, D=D, variant="report", seeds=(0, 1))
    mean = float(testing.build("fastjl", d, D, variant="report").to_dense().pow(2).sum(0).mean())
    assert mean == pytest.approx(p.q ** (2 / 3), rel=0.1)
    # the default stays normalised; an unknown variant is one clear error
    assert projbench.make_projection("fastjl", d=d, D=D).unit_columns is True
    with pytest.raises(InvalidArgumentError, match="variant"):
        projbench.make_projection("fastjl", d=2, D=8, variant="nope")


def test_fastjl_report_variant_passes_the_algebraic_contract() -> None:
    """Every contract check except the exempted E‖P e_j‖² = 1 (unit_columns is False)."""
    p = testing.build("fastjl", 7, 50, seed=0, variant="report")
    p._testing_options = {"variant": "report"}  # type: ignore[attr-defined,assignment]
    for check in testing.INSTANCE_CHECKS:
        check(p)
    testing.check_determinism("fastjl", 7, 50, variant="report")
    testing.check_dtypes("fastjl", 7, 50, variant="report")


def test_column_condition_number_matches_numpy() -> None:
    import numpy as np

    from projbench.projection import column_condition_number

    p = projbench.make_projection("dense", d=30, D=200, seed=1, dtype=torch.float64)
    k, seed = 12, 5
    cols = torch.randperm(30, generator=torch.Generator().manual_seed(seed))[:k].sort().values
    ref = np.linalg.cond(p.to_dense().numpy()[:, cols.numpy()])
    assert column_condition_number(p, k, seed) == pytest.approx(ref, rel=1e-9)
    # a rank-deficient P (duplicated columns) is infinitely ill-conditioned
    class Dup(projbench.Projection):
        name = "dup-test"

        def __init__(self, d: int, D: int, **kw: object) -> None:
            super().__init__(d, D, **kw)  # type: ignore[arg-type]
            self.register_buffer("m", torch.ones(D, d, dtype=torch.float64))

        def forward(self, theta: torch.Tensor) -> torch.Tensor:
            return theta @ self.m.T

        def adjoint(self, y: torch.Tensor) -> torch.Tensor:
            return y @ self.m

    assert column_condition_number(Dup(4, 10), 3) == math.inf
    with pytest.raises(InvalidArgumentError, match="k must be"):
        column_condition_number(p, 31)
    # a Gaussian-like map on k ≪ D columns is well conditioned: (1+√(k/D))/(1−√(k/D)) ≈ 1.3 here
    good = projbench.make_projection("fastjl", d=256, D=4096, seed=0, dtype=torch.float64)
    assert 1.0 < column_condition_number(good, 64) < 2.5


@pytest.mark.parametrize("name", BUILTINS)
def test_unknown_option_is_rejected(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="does not take option"):
        projbench.make_projection(name, d=2, D=4, bogus=1)


@pytest.mark.parametrize("name", BUILTINS)
def test_summary_is_one_line(name: str) -> None:
    from projbench.manager import get_registry

    cls = get_registry("projections").get(name)
    assert cls.summary and "\n" not in cls.summary


def test_fastjl_adjoint_csr_copy_agrees_and_follows_the_state() -> None:
    """The CPU adjoint runs on a row-major CSR copy of P_s: it must equal the COO path, follow
    dtype moves, and be rebuilt when load_state_dict brings another P_s."""
    p = projbench.make_projection("fastjl", d=40, D=3000, seed=5, dtype=torch.float64)
    u = torch.randn(3, p.L, dtype=torch.float64)
    coo = p.ps._apply_op(u, p.ps.cols, p.ps.rows, p.d)  # the gather + scatter path
    torch.testing.assert_close(p.ps.matvec(u), coo)
    torch.testing.assert_close(p.ps.matvec(u[:1]), coo[:1])
    y = torch.randn(2, 3000, dtype=torch.float64)
    torch.testing.assert_close(p.adjoint(y), y @ p.to_dense())
    # a state dict with other values (shapes depend on nnz: same seed, values doubled); a CSR
    # copy not rebuilt on load would keep the old values and give half the expected adjoint
    state = {k: v.clone() for k, v in p.state_dict().items()}
    state["ps.vals"].mul_(2)
    twin = projbench.make_projection("fastjl", d=40, D=3000, seed=5, dtype=torch.float64)
    twin.load_state_dict(state)
    torch.testing.assert_close(twin.adjoint(y), 2 * p.adjoint(y))
    torch.testing.assert_close(p.float().adjoint(y.float()), (y @ p.double().to_dense()).float(),
                               rtol=1e-4, atol=1e-4)
    half = projbench.make_projection("fastjl", d=40, D=3000, seed=5, dtype=torch.float16)
    ref = projbench.make_projection("fastjl", d=40, D=3000, seed=5, dtype=torch.float32)
    torch.testing.assert_close(half.adjoint(y.half()).float(), ref.adjoint(y.float()), rtol=2e-2, atol=0.5)
