"""The pure d_int90 search (projbench.search) on accuracy functions with known answers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projbench.errors import InvalidArgumentError
from projbench.search import (
    GridSearch,
    KSectionSearch,
    SpreadStats,
    crossing_from,
    interpolate_crossing,
    make_search,
    run_search,
    search_bracket,
    validate_search,
)


def step(threshold: int, hi: float = 0.95, lo: float = 0.5):
    return lambda d: (hi if d >= threshold else lo, False)


def test_bisection_finds_known_step_in_few_runs() -> None:
    for true_d in (11, 137, 4000, 9999):
        search = KSectionSearch(0.9, 10, 10000, rtol=1e-9, k=1)
        c = run_search(search, step(true_d))
        assert c.d == true_d
        assert len(c.evaluated) <= 25  # ~log2 of the range, plus the two ends; never the whole range


@given(true_d=st.integers(11, 10000), k=st.integers(1, 6), rtol=st.sampled_from([1e-9, 0.05, 0.3]))
def test_k_section_brackets_a_monotone_step_like_bisection(true_d: int, k: int, rtol: float) -> None:
    """For a monotone accuracy, every k gives a crossing within rtol above the true one."""
    c = run_search(KSectionSearch(0.9, 10, 10000, rtol=rtol, k=k), step(true_d))
    assert c.d is not None and true_d <= c.d <= max(true_d * (1 + rtol) + 1, true_d + 1)
    below = [d for d in c.evaluated if d < c.d]
    assert below and max(below) < true_d  # the bracket really contains the step


def test_k_section_uses_fewer_rounds() -> None:
    def rounds(k: int) -> int:
        s = KSectionSearch(0.9, 10, 10000, rtol=0.01, k=k)
        n = 0
        while True:
            batch = s.propose()
            if not batch:
                return n
            n += 1
            for d in batch:
                s.observe(d, *step(777)(d))

    assert rounds(3) < rounds(1) and rounds(7) < rounds(3)


def test_grid_is_one_round_and_interpolates() -> None:
    s = GridSearch(0.9, [10, 100, 150, 200, 1000])
    assert s.propose() == [10, 100, 150, 200, 1000] and s.propose() == []
    for d in (10, 100, 150, 200, 1000):
        s.observe(d, *step(137)(d))
    assert s.done
    c = s.crossing()
    t = (0.9 - 0.5) / (0.95 - 0.5)
    assert c.d == 150
    assert c.interpolated == pytest.approx(math.exp(math.log(100) + t * (math.log(150) - math.log(100))))


def test_smooth_curve_interpolation_is_close_to_exact() -> None:
    tau = 150.0  # acc = 0.98(1 - e^{-d/tau}); target 0.9*0.98 -> d* = tau ln 10
    c = run_search(
        KSectionSearch(0.9 * 0.98, 10, 10000, rtol=0.01), lambda d: (0.98 * (1 - math.exp(-d / tau)), False)
    )
    exact = tau * math.log(10)
    assert exact <= c.d <= exact * 1.01 + 1
    assert c.interpolated == pytest.approx(exact, rel=0.01)


def test_not_reached_and_lower_bound() -> None:
    never = run_search(KSectionSearch(0.9, 10, 1000, 0.1), step(10**9))
    assert never.d is None and never.best_accuracy == 0.5 and list(never.evaluated) == [1000]
    always = run_search(KSectionSearch(0.9, 10, 1000, 0.1), step(1))
    assert always.d == 10


def test_divergence_counts_as_failing() -> None:
    def acc(d: int) -> tuple[float, bool]:
        if 100 <= d < 300:
            return 0.99, True  # high accuracy, but diverged: never passes
        return (0.95 if d >= 100 else 0.3), False

    c = run_search(GridSearch(0.9, [50, 100, 200, 300, 1000]), acc)
    assert c.d == 300 and c.diverged == [100, 200]


def test_nan_accuracy_never_passes() -> None:
    c = crossing_from({10: float("nan"), 20: 0.95}, {10: False, 20: True}, [], 0.9)
    # a non-finite accuracy counts as 0 when interpolating
    assert c.d == 20 and c.interpolated == pytest.approx(math.exp(math.log(10) + 0.9 / 0.95 * math.log(2)))


def test_interpolate_closed_form() -> None:
    assert interpolate_crossing(10, 0.0, 1000, 1.0, 0.5) == pytest.approx(100.0)
    assert interpolate_crossing(10, 0.5, 20, 0.5, 0.9) == 20.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "random"},
        {"d_min": 100, "d_max": 10},
        {"rtol": float("nan")},
        {"rtol": 0},
        {"threshold": float("nan")},
        {"threshold": 1.5},
        {"points_per_round": 0},
        {"method": "grid", "grid": []},
        {"method": "grid", "grid": [0, 5]},
    ],
)
def test_invalid_settings_are_refused(kwargs: dict) -> None:
    base = {
        "method": "bisect",
        "d_min": 10,
        "d_max": 1000,
        "rtol": 0.1,
        "threshold": 0.9,
        "grid": None,
        "points_per_round": 1,
    }
    base.update(kwargs)
    method = base.pop("method")
    with pytest.raises(InvalidArgumentError):
        validate_search(method, **base)
    with pytest.raises(InvalidArgumentError):
        make_search("nope", 0.5)


def test_spread_stats() -> None:
    s = SpreadStats.of([100, 200, None, float("nan")])
    assert (s.n, s.mean, s.minimum, s.maximum) == (2, 150.0, 100.0, 200.0)
    assert s.std == pytest.approx(math.sqrt(5000)) and s.cv == pytest.approx(math.sqrt(5000) / 150)
    one = SpreadStats.of([42])
    assert one.std is None and one.format() == "42 ± n/a (n=1)"
    assert SpreadStats.of([]).format() == "-"


def test_search_bracket_is_where_an_unfinished_search_stands() -> None:
    assert search_bracket({}) == (None, None)
    assert search_bracket({10: False, 56: False}) == (56, None)  # nothing passed yet
    assert search_bracket({10000: True}) == (None, 10000)  # nothing failed below
    # a failure above the smallest pass (noise) does not narrow the bracket
    assert search_bracket({10: False, 133: False, 316: True, 1000: False, 10000: True}) == (133, 316)


def test_an_unfinished_bisection_brackets_its_true_d() -> None:
    search = make_search("bisect", target=0.9, d_min=10, d_max=10000, rtol=0.1)
    for _ in range(3):  # three rounds of a step at d = 250, then stop before the end
        for d in search.propose():
            search.observe(d, 1.0 if d >= 250 else 0.5)
    lo, hi = search_bracket(search.passed)
    assert lo is not None and hi is not None and lo < 250 <= hi and not search.done
