"""The Kronecker projections ``kronecker`` and ``kronecker-sum``: their matrices are the documented
constructions (rebuilt here from the stored factors, signs and permutation with ``torch.kron``),
the adjoint is the exact transpose, columns have unit expected norm, a seed fixes the matrix,
the sizes of the factors and of the remainder block follow the documented rules, and the suites
and the command line see both projections."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

import projbench
from projbench import testing
from projbench.builtin.kronecker import kronecker_shape
from projbench.cli import cli
from projbench.errors import InvalidArgumentError, ResourceLimitError
from projbench.metrics.memory import MemorySuite
from projbench.metrics.speed import SpeedSuite
from projbench.suites import Case, RunSettings

NAMES = ["kronecker", "kronecker-sum"]
# (d, D): square and non-square d and D, D a perfect square with d not, d > D, tiny D
SIZES = [(1, 1), (2, 1), (3, 3), (9, 5), (7, 50), (10, 64), (16, 64), (25, 81), (30, 400), (17, 290)]


def _kronecker_reference(p: projbench.Projection) -> torch.Tensor:
    """Π·((R₁ ⊗ R₂) ⊕ E) from the instance's stored R₁, R₂, E and π."""
    M = torch.block_diag(torch.kron(p.factor1, p.factor2), p.rest)
    return M[p.perm.long()]  # (Πz)_i = z_{π(i)}


def _kronecker_sum_reference(p: projbench.Projection) -> torch.Tensor:
    """Π·[cA ⊗ β + α ⊗ cB; E] from the instance's stored cA, cB, α, β, E and π."""
    grid = torch.kron(p.factor1, p.signs2[:, None]) + torch.kron(p.signs1[:, None], p.factor2)
    return torch.cat([grid, p.rest])[p.perm.long()]


@pytest.mark.parametrize(("d", "D"), SIZES)
def test_kronecker_matrix_is_the_permuted_kronecker_product_with_its_remainder(d: int, D: int) -> None:
    p = projbench.make_projection("kronecker", d=d, D=D, seed=5, dtype=torch.float64)
    a, b, r_D, r_d = kronecker_shape(d, D)
    assert p.factor1.shape == p.factor2.shape == (a, b) and p.rest.shape == (r_D, r_d)
    assert sorted(p.perm.tolist()) == list(range(D))
    ref = _kronecker_reference(p)
    torch.testing.assert_close(p.to_dense(), ref, rtol=1e-12, atol=1e-12)
    y = torch.randn(3, D, dtype=torch.float64)
    torch.testing.assert_close(p.adjoint(y), y @ ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["signed", "ones"])
@pytest.mark.parametrize(("d", "D"), SIZES)
def test_kronecker_sum_matrix_is_the_permuted_kronecker_sum_with_its_remainder(
    d: int, D: int, variant: str
) -> None:
    p = projbench.make_projection("kronecker-sum", d=d, D=D, seed=5, dtype=torch.float64, variant=variant)
    k = math.isqrt(D)
    assert p.factor1.shape == p.factor2.shape == (k, d) and p.rest.shape == (D - k * k, d)
    assert set(p.signs1.tolist()) | set(p.signs2.tolist()) <= {-1.0, 1.0}
    if variant == "ones":
        assert bool((p.signs1 == 1).all() and (p.signs2 == 1).all())
    ref = _kronecker_sum_reference(p)
    torch.testing.assert_close(p.to_dense(), ref, rtol=1e-12, atol=1e-12)
    y = torch.randn(3, D, dtype=torch.float64)
    torch.testing.assert_close(p.adjoint(y), y @ ref, rtol=1e-12, atol=1e-12)


def test_draws_follow_the_documented_order() -> None:
    """kronecker: R₁, R₂, E, π from one CPU generator, Gaussians drawn in float32; kronecker-sum:
    A, B, E, π, then the signs — so both variants of a seed share A, B, E and π."""
    d, D, seed = 7, 50, 11
    p = projbench.make_projection("kronecker", d=d, D=D, seed=seed, dtype=torch.float64)
    a, b, r_D, r_d = kronecker_shape(d, D)
    g = torch.Generator().manual_seed(seed)
    r1, r2 = (torch.randn(a, b, generator=g).double() / math.sqrt(a) for _ in range(2))
    rest = torch.randn(r_D, r_d, generator=g).double() / math.sqrt(r_D)
    perm = torch.randperm(D, generator=g)
    for got, want in ((p.factor1, r1), (p.factor2, r2), (p.rest, rest), (p.perm.long(), perm)):
        torch.testing.assert_close(got, want, rtol=1e-15, atol=0)

    signed, ones = (projbench.make_projection("kronecker-sum", d=d, D=D, seed=seed, dtype=torch.float64,
                                              variant=v) for v in ("signed", "ones"))
    g = torch.Generator().manual_seed(seed)
    k = math.isqrt(D)
    A, B = (torch.randn(k, d, generator=g).double() / math.sqrt(2 * D) for _ in range(2))
    for p in (signed, ones):
        torch.testing.assert_close(p.factor1, A, rtol=1e-15, atol=0)
        torch.testing.assert_close(p.factor2, B, rtol=1e-15, atol=0)
    assert torch.equal(signed.perm, ones.perm) and torch.equal(signed.rest, ones.rest)


@pytest.mark.parametrize("name", NAMES)
def test_adjoint_is_the_exact_transpose_at_a_realistic_size(name: str) -> None:
    p = projbench.make_projection(name, d=1000, D=1 << 16, seed=2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(2, 1000, generator=g, dtype=torch.float64)
    y = torch.randn(2, 1 << 16, generator=g, dtype=torch.float64)
    lhs = (p(theta) * y).sum(-1)
    rhs = (theta * p.adjoint(y)).sum(-1)
    torch.testing.assert_close(lhs, rhs, rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_the_other_direction(name: str) -> None:
    p = projbench.make_projection(name, d=12, D=70, seed=4, dtype=torch.float64)
    theta = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(p, (theta,))
    y = torch.randn(2, 70, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(p.adjoint, (y,))


@pytest.mark.parametrize(("name", "options"), [("kronecker", {}), ("kronecker-sum", {}),
                                               ("kronecker-sum", {"variant": "ones"})])
@pytest.mark.parametrize(("d", "D"), [(10, 64), (30, 170)])
def test_every_column_has_unit_expected_norm(name: str, options: dict[str, str], d: int, D: int) -> None:
    """Per column j, the mean of ‖P e_j‖² over 300 seeds is within 5 standard errors of 1 — the
    Kronecker columns and the remainder's columns alike (a mis-scaled block would show)."""
    norms = torch.stack([
        projbench.make_projection(name, d=d, D=D, seed=s, dtype=torch.float64, **options)
        .to_dense().pow(2).sum(0) for s in range(300)])  # (seeds, d)
    mean, se = norms.mean(0), norms.std(0) / math.sqrt(norms.shape[0])
    assert bool(((mean - 1).abs() <= 5 * se).all()), (mean, se)
    testing.check_column_norms(name, d=d, D=D, **options)


def test_kronecker_sum_entries_have_variance_one_over_D() -> None:
    """Every entry of the Kronecker-sum projection has variance 1/D, like ``dense``."""
    D, d = 50, 6
    P = torch.stack([projbench.make_projection("kronecker-sum", d=d, D=D, seed=s, dtype=torch.float64)
                     .to_dense() for s in range(400)])
    var = P.pow(2).mean()
    assert abs(float(var) * D - 1) < 5 * float(P.pow(2).std() * D) / math.sqrt(P.numel() / d)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_matrix_other_seed_other_matrix(name: str) -> None:
    a = projbench.make_projection(name, d=20, D=300, seed=123).to_dense()
    b = projbench.make_projection(name, d=20, D=300, seed=123).to_dense()
    c = projbench.make_projection(name, d=20, D=300, seed=124).to_dense()
    assert torch.equal(a, b) and not torch.equal(a, c)
    p64 = projbench.make_projection(name, d=20, D=300, seed=123, dtype=torch.float64).to_dense()
    torch.testing.assert_close(p64.float(), a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("d", "D"), [(1000, 1 << 16), (50, 400), (1000, 1 << 17), (10_000, 1 << 20)])
def test_kronecker_remainder_is_tall_enough_for_full_rank(d: int, D: int) -> None:
    """The remainder block gets at least r_d·√(D/d) rows, so even for a perfect-square D (where
    a = ⌊√D⌋ would leave it none) every column is non-zero and, D ≥ d, P has rank d."""
    a, b, r_D, r_d = kronecker_shape(d, D)
    assert a * a + r_D == D and b * b + r_d == d and a >= b
    assert r_D >= math.ceil(r_d * math.sqrt(D / d)) and r_d <= 2 * math.isqrt(d)
    assert 2 * a * b + r_D * r_d <= 8 * math.sqrt(D * d)  # O(√D·√d) floats
    if D * d <= 1 << 23:
        P = projbench.make_projection("kronecker", d=d, D=D, seed=0, dtype=torch.float64).to_dense()
        assert bool((P.pow(2).sum(0) > 0).all())
        assert int(torch.linalg.matrix_rank(P)) == d


def test_kronecker_on_a_tiny_D_falls_back_to_one_dense_block() -> None:
    assert kronecker_shape(2, 1) == (0, 0, 1, 2)
    assert kronecker_shape(9, 5) == (2, 3, 1, 0)  # d a perfect square: a zero row, no zero column
    p = projbench.make_projection("kronecker", d=3, D=2, seed=0, dtype=torch.float64)
    assert bool((p.to_dense().pow(2).sum(0) > 0).all())


def test_kronecker_sum_spans_at_most_2k_minus_1_plus_the_remainder() -> None:
    """The grid c·(uβᵀ + αvᵀ) has rank ≤ 2: for d > 2k − 1 + r_D the columns are dependent."""
    D, d = 102, 40  # k = 10, r_D = 2
    P = projbench.make_projection("kronecker-sum", d=d, D=D, seed=0, dtype=torch.float64).to_dense()
    assert int(torch.linalg.matrix_rank(P)) == 2 * 10 - 1 + 2


def test_signs_make_the_kronecker_sum_sketch_unbiased_ones_do_not() -> None:
    """On a constant vector the sketch of Lotfi et al.'s A ⊗ 1 + 1 ⊗ B (variant "ones") has mean
    ratio ≈ k (the range of P contains 1), while with random signs it is unbiased; the column
    geometry PᵀP is the same in law, so E‖Pθ‖² = ‖θ‖² holds for both."""
    D, d, k = 400, 16, 20
    x = torch.ones(1, D, dtype=torch.float64)
    seeds = range(300)
    signed = testing.sketch_ratios_over_seeds("kronecker-sum", d, D, x, seeds)[:, 0]
    ones = testing.sketch_ratios_over_seeds("kronecker-sum", d, D, x, seeds, variant="ones")[:, 0]
    testing.check_jl_ratios(signed, d, tail=False)
    assert 0.6 * k < float(ones.mean()) < 1.4 * k
    with pytest.raises(testing.ContractError, match="expected 1"):
        testing.check_jl_ratios(ones, d, tail=False)


@pytest.mark.parametrize("name", NAMES)
def test_state_is_the_factors_and_the_permutation(name: str) -> None:
    d, D = 1000, 1 << 20
    p = projbench.make_projection(name, d=d, D=D, seed=0)
    if name == "kronecker":
        a, b, r_D, r_d = kronecker_shape(d, D)
        floats = 2 * a * b + r_D * r_d
    else:
        k = math.isqrt(D)
        floats = 2 * k * d + (D - k * k) * d + 2 * k
    assert p.memory_bytes() == 4 * floats + 4 * D  # float32 factors, int32 π
    if name == "kronecker":  # O(√D·√d) floats: π is most of it, half of fastfood's 8 bytes per parameter
        assert 4 * D < p.memory_bytes() < 1.2 * 4 * D


def test_budget_and_variant_errors() -> None:
    with pytest.raises(ResourceLimitError, match="kronecker projection"):
        projbench.make_projection("kronecker", d=100, D=1 << 20, max_bytes=1 << 20)
    with pytest.raises(ResourceLimitError, match="kronecker-sum projection"):
        projbench.make_projection("kronecker-sum", d=1000, D=1 << 20, max_bytes=1 << 20)
    with pytest.raises(InvalidArgumentError, match="signed, ones"):
        projbench.make_projection("kronecker-sum", d=3, D=10, variant="lotfi")


@pytest.mark.parametrize(("name", "options"), [("kronecker", {}), ("kronecker-sum", {}),
                                               ("kronecker-sum", {"variant": "ones"})])
@pytest.mark.parametrize(("d", "D"), [(9, 5), (10, 64), (40, 102)])
def test_contract_checks_pass(name: str, options: dict[str, str], d: int, D: int) -> None:
    done = testing.run_all_checks(name, d=d, D=D, **options)
    assert "check_dense_consistency" in done and "check_column_norms" in done


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name: str) -> None:
    testing.run_all_checks(name, d=30, D=290, device="cuda")
    cpu = projbench.make_projection(name, d=1000, D=1 << 16, seed=1)
    gpu = projbench.make_projection(name, d=1000, D=1 << 16, seed=1, device="cuda")
    theta, y = torch.randn(3, 1000), torch.randn(3, 1 << 16)
    torch.testing.assert_close(gpu(theta.cuda()).cpu(), cpu(theta), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gpu.adjoint(y.cuda()).cpu(), cpu.adjoint(y), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_memory_and_speed_suites_measure_both(name: str) -> None:
    settings = RunSettings()
    case = Case("memory", name, {"D": 4096, "d": 100, "dtype": "float32", "device": "cpu"})
    out = MemorySuite().run_case(case, settings)
    assert out.status == "ok" and 0 < out.stats["state_fraction"] < 0.1
    assert out.stats["peak_step_bytes"] > 0
    speed = SpeedSuite(grid={"D": (4096,), "d": (100,), "batch": (2,)})
    (case,) = speed.cases([name], settings)
    out = speed.run_case(case, settings)
    assert out.status == "ok" and all(out.stats[f"{op}_ms"] > 0 for op in ("forward", "adjoint", "backward"))


def test_list_projections_shows_both() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["list", "projections"], catch_exceptions=False)
    assert result.exit_code == 0 and "kronecker-sum" in result.output
    rows = json.loads(runner.invoke(cli, ["list", "--json"], catch_exceptions=False).output)["projections"]
    by_name = {row["name"]: row for row in rows}
    assert {"kronecker", "kronecker-sum"} <= set(by_name)
    assert by_name["kronecker"]["plugin"] == by_name["kronecker-sum"]["plugin"] == "kronecker"


def test_interleaved_benchmark_compares_them_with_the_others(tmp_path) -> None:
    from benchmarks.bench_projections import main

    main(["--interleave", "--projections", "kronecker,kronecker-sum,sparse", "--D-exps", "8,10", "--ds", "16",
          "--rounds", "2", "--sample-ms", "1", "--out-dir", str(tmp_path), "--tag", "side"])
    payload = json.loads((tmp_path / "bench_projections_cpu_side.json").read_text())
    assert payload["reference"] == "kronecker" and len(payload["rows"]) == 2
    for row in payload["rows"]:
        assert row["ratios"]["kronecker fwd"]["ratio"] == 1.0
        assert {"kronecker-sum bwd", "sparse fwd"} <= set(row["ratios"])
        assert row["state_bytes"]["kronecker"] > 0 and row["peak_step_bytes"]["sparse"] > 0
        assert "load_per_cpu" in row and "loaded" in row
    assert "| 16 | 2^10 |" in (tmp_path / "bench_projections_cpu_side.md").read_text()
