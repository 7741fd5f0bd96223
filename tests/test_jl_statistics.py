"""JL statistics of each built-in projection's sketch S = √(D/d)·Pᵀ over a fixed set of seeds.

For a fixed vector x the ratio r = ‖Sx‖²/‖x‖² should have mean 1, and for the Gaussian ideal
r ~ χ²_d/d. Over N fixed seeds we check (1) the mean of r is within a few standard errors of 1
and (2) the number of seeds with |r − 1| > ε does not exceed the 99.9 % binomial quantile of
N seeds at 1.5× the ideal probability P(|χ²_d/d − 1| > ε) (scipy.stats.chi2). Seeds are a fixed
range (never chosen by hypothesis), so the test is deterministic.

Known structural weaknesses are recorded, not hidden: the very sparse projection distorts
sparse inputs (e_1 meets ~d·s ≈ 1 nonzero), and a single Fastfood block distorts inputs whose
Hadamard spectrum is concentrated; for those pairs only the mean is checked.
FastJL's H·D_s preconditioning spreads e_1, so FastJL must pass the tail test on it.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binom, chi2

import projbench

D, d = 3000, 64
SEEDS = range(120)
EPS = 0.35
SLACK = 1.5


def _vectors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2024)
    eye = torch.eye(D, dtype=torch.float64)
    return {
        "gaussian": torch.randn(D, generator=g, dtype=torch.float64),
        "e1": eye[0],
        "two-spikes": eye[5] - 2 * eye[1700],
    }


VECTORS = _vectors()
# (projection, vector) pairs whose tails are structurally heavier than χ²_d/d (mean still 1)
KNOWN_HEAVY = {("sparse", "e1"), ("sparse", "two-spikes")}


@pytest.fixture(scope="module")
def ratios() -> dict[str, torch.Tensor]:
    x = torch.stack(list(VECTORS.values()))
    out = {}
    for name in ("dense", "sparse", "fastfood", "fastjl"):
        r = [
            projbench.make_projection(name, d=d, D=D, seed=s, dtype=torch.float64).sketch(x).pow(2).sum(-1)
            / x.pow(2).sum(-1)
            for s in SEEDS
        ]
        out[name] = torch.stack(r)  # (seeds, vectors)
    return out


def ideal_tail(eps: float = EPS) -> float:
    return float(chi2.cdf(d * (1 - eps), d) + chi2.sf(d * (1 + eps), d))


def test_ideal_tail_is_in_a_useful_range() -> None:
    p = ideal_tail()
    assert 0.01 < p < 0.2  # the tail test can detect a heavier tail with 120 seeds


@pytest.mark.parametrize("name", ["dense", "sparse", "fastfood", "fastjl"])
@pytest.mark.parametrize("vec", list(VECTORS))
def test_mean_ratio_is_one(ratios: dict[str, torch.Tensor], name: str, vec: str) -> None:
    r = ratios[name][:, list(VECTORS).index(vec)]
    n = r.numel()
    se = max(float(r.std()), math.sqrt(2 / d)) / math.sqrt(n)
    assert abs(float(r.mean()) - 1) < 4 * se, f"{name} on {vec}: mean {float(r.mean()):.3f} ± {se:.3f}"


@pytest.mark.parametrize("name", ["dense", "sparse", "fastfood", "fastjl"])
@pytest.mark.parametrize("vec", list(VECTORS))
def test_tail_within_binomial_bound(ratios: dict[str, torch.Tensor], name: str, vec: str) -> None:
    if (name, vec) in KNOWN_HEAVY:
        pytest.skip(f"{name} is known to distort {vec}-like inputs (see module docstring)")
    r = ratios[name][:, list(VECTORS).index(vec)]
    n = r.numel()
    bad = int(((r - 1).abs() > EPS).sum())
    bound = int(binom.ppf(0.999, n, min(1.0, SLACK * ideal_tail())))
    assert bad <= bound, f"{name} on {vec}: {bad}/{n} seeds outside 1±{EPS}, bound {bound}"


def test_sparse_input_fastjl_beats_very_sparse(ratios: dict[str, torch.Tensor]) -> None:
    """On e_1, FastJL's spread keeps the spread of r near the Gaussian ideal √(2/d); the very
    sparse projection's r is far wider (≈ 1/√(s·d) with s = 1/√D)."""
    i = list(VECTORS).index("e1")
    sd_fastjl = float(ratios["fastjl"][:, i].std())
    sd_sparse = float(ratios["sparse"][:, i].std())
    assert sd_fastjl < 1.5 * math.sqrt(2 / d)
    assert sd_sparse > 2 * sd_fastjl
