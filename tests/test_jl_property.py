"""Property: every registered projection's sketch is a JL sketch on inputs and sizes that
hypothesis picks.

Hypothesis chooses the sizes (d, D) and the input x — a dense vector (data seed, scale, mean
offset) or a sparse one (positions and values) — but never the seeds of the probabilistic
check: the ratios r_s = ‖S_s x‖²/‖x‖² are taken over the fixed seeds 0…199, and
:func:`projbench.testing.check_jl_ratios` accepts them when their mean is within 5 standard
errors of 1 and the number of seeds outside 1 ± ε is within the 99.99 % binomial quantile at
1.25× the Gaussian ideal rate (so a correct sketch fails one example with probability
≲ 10⁻⁴, whatever hypothesis picks).

Unbiasedness (E r = 1) must hold for every input. The tail check is skipped only for the
documented structural weaknesses (tests/test_jl_statistics.py): the very sparse projection on
sparse inputs, fastfood on inputs with a mean offset (a concentrated Hadamard spectrum), and the
Kronecker projections (``kronecker``, ``kronecker-sum``), whose tails are heavier than a dense
sketch's on every kind of input.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import projbench
from projbench.testing import check_jl_ratios, sketch_ratios_over_seeds

PROPERTY_SEEDS = range(200)
ALPHA = 1e-4


def _registered() -> list[str]:
    try:
        return [n for n in projbench.list_plugins("projections") if not n.startswith("pbtest")]
    except Exception:  # noqa: BLE001 - a broken plugin is reported by the manager tests
        return []


def tail_applies(name: str, kind: str, offset: float) -> bool:
    """False for the documented structural weaknesses (see the module docstring)."""
    if name == "sparse" and kind == "sparse":
        return False
    if name in ("kronecker", "kronecker-sum"):
        return False
    return not (name == "fastfood" and offset != 0.0)


@st.composite
def inputs(draw: st.DrawFn) -> tuple[int, int, str, float, torch.Tensor]:
    """(d, D, kind, offset, x) with x ∈ R^D non-zero, float64."""
    d = draw(st.integers(16, 96))
    D = draw(st.integers(d + 1, 2048))
    kind = draw(st.sampled_from(["dense", "sparse"]))
    offset = 0.0
    if kind == "dense":
        data_seed = draw(st.integers(0, 2**31 - 1))
        scale = draw(st.floats(1e-3, 1e3))
        offset = draw(st.sampled_from([0.0, 0.0, 0.5, 3.0]))
        g = torch.Generator().manual_seed(data_seed)
        x = scale * (torch.randn(D, generator=g, dtype=torch.float64) + offset)
    else:
        k = draw(st.integers(1, 8))
        positions = draw(st.lists(st.integers(0, D - 1), min_size=k, max_size=k, unique=True))
        magnitudes = draw(st.lists(st.floats(1e-2, 1e2), min_size=k, max_size=k))
        signs = draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=k, max_size=k))
        x = torch.zeros(D, dtype=torch.float64)
        x[positions] = torch.tensor([m * s for m, s in zip(magnitudes, signs)], dtype=torch.float64)
    return d, D, kind, offset, x


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", _registered())
@settings(max_examples=6, deadline=None)
@given(case=inputs())
def test_sketch_is_unbiased_with_a_chi2_tail(
    name: str, case: tuple[int, int, str, float, torch.Tensor]
) -> None:
    d, D, kind, offset, x = case
    r = sketch_ratios_over_seeds(name, d, D, x[None], PROPERTY_SEEDS)[:, 0]
    check_jl_ratios(r, d, alpha=ALPHA, tail=tail_applies(name, kind, offset),
                    label=f"{name}(d={d}, D={D}) on a {kind} input (offset {offset})")
