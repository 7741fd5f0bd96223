"""Learning curves in a study: the accuracy a search uses (final or best), the not-converged
flag, d_int90 at every evaluated budget, and the interval of d_int90 from the brackets."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from projbench.executors import InlinePool
from projbench.search import Crossing, bracket_interval
from projbench.study.budget import budget_rows, converged, error_bars
from projbench.study.driver import replay_study, run_study
from projbench.study.spec_resolve import resolve
from projbench.training_runs import RunSpec

EPOCHS = (1, 2, 5, 10)


def curve(points: dict[float, float]) -> list[dict[str, Any]]:
    return [{"epoch": e, "step": int(e * 10), "test_accuracy": a, "test_loss": 1 - a}
            for e, a in sorted(points.items())]


class CurveRuns:
    """Fake runs whose learning curve is a known function of (spec, epoch)."""

    def __init__(self, acc: Any) -> None:
        self.acc = acc

    def __call__(self, spec: RunSpec, data_dir: str | None) -> dict[str, Any]:
        points = {e: self.acc(spec, e) for e in EPOCHS}
        return {
            "type": "run", "run_id": spec.run_id, "identity": spec.identity, "status": "ok",
            "stats": {"test_accuracy": points[EPOCHS[-1]], "run_wall_s": 0.01},
            "samples": {"curve": curve(points)}, "error": None, "worker": {},
        }


def spec(method: str = "grid", accuracy: str = "final", **search: Any) -> Any:
    s = {"method": method, "accuracy": accuracy, "baseline": "local", **search}
    if method == "grid":
        s.setdefault("grid", [10, 20, 50, 100, 200, 500, 1000])
    return resolve({"seeds": [0, 1], "projections": ["p"], "search": s,
                    "recipe": {"epochs": 10, "eval_epochs": list(EPOCHS)},
                    "pairs": [{"architecture": "toy", "dataset": "toyset"}]}, "toy")


def threshold_d(epoch: float) -> int:
    """The smallest d that reaches the target after ``epoch`` epochs: falls with the budget."""
    return {1: 1000, 2: 500, 5: 100, 10: 50}[int(epoch)]


def grid_acc(s: RunSpec, epoch: float) -> float:
    if s.projection is None:
        return 1.0
    return 0.95 if s.d >= threshold_d(epoch) else 0.5


def test_budget_table_is_exact_on_a_grid(tmp_path: Path) -> None:
    out = run_study(spec(), tmp_path / "g", pool=InlinePool(), run_fn=CurveRuns(grid_acc))
    rows = {r["epochs"]: r for r in budget_rows(out.engine)}
    assert sorted(rows) == list(EPOCHS)
    assert all(type(e) is int for e in rows)  # whole epochs print as 1, 2, 100, not 1.000
    for e in EPOCHS:
        assert rows[e]["d_int90_mean"] == threshold_d(e) and rows[e]["reached"] == 2
    assert out.rows[0]["d_int90_mean"] == 50  # the final budget is the table's value
    replayed, _ = replay_study(tmp_path / "g")
    assert {r["epochs"]: r["d_int90_mean"] for r in budget_rows(replayed.engine)} == {
        e: threshold_d(e) for e in EPOCHS
    }


def peak_acc(s: RunSpec, epoch: float) -> float:
    """Subspace runs peak at epoch 5 and then decay: `best` sees the peak, `final` does not."""
    if s.projection is None:
        return 1.0
    if s.d >= 500:
        return 0.95
    return {1: 0.5, 2: 0.6, 5: 0.93 if s.d >= 100 else 0.6, 10: 0.6}[int(epoch)]


@pytest.mark.parametrize(("choice", "expected"), [("final", 500), ("best", 100)])
def test_final_and_best_accuracy_give_the_expected_d_int90(
    tmp_path: Path, choice: str, expected: int
) -> None:
    out = run_study(spec(accuracy=choice), tmp_path / choice, pool=InlinePool(), run_fn=CurveRuns(peak_acc))
    assert out.rows[0]["d_int90_mean"] == expected


def test_accuracy_choice_is_validated() -> None:
    from projbench.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=r"accuracy: give one of 'final', 'best', not 'mean'"):
        spec(accuracy="mean")


def record(points: dict[float, float]) -> dict[str, Any]:
    return {"samples": {"curve": curve(points)}}


def test_not_converged_fires_on_a_rising_curve_only() -> None:
    assert converged(record({1: 0.5, 2: 0.7, 5: 0.8, 10: 0.9})) is False
    assert converged(record({1: 0.5, 2: 0.7, 5: 0.898, 10: 0.9})) is True
    assert converged(record({1: 0.9, 2: 0.9, 5: 0.9, 10: 0.9})) is True
    assert converged(record({1: 0.9, 2: 0.95, 5: 0.9, 10: 0.8})) is True  # falling: not rising
    assert converged(record({10: 0.9})) is None and converged({}) is None


def test_table_counts_runs_that_had_not_converged(tmp_path: Path) -> None:
    out = run_study(spec(), tmp_path / "n", pool=InlinePool(), run_fn=CurveRuns(grid_acc))
    row = out.rows[0]
    # subspace runs with 50 <= d < 100 rise from 0.5 (epoch 5) to 0.95 (epoch 10)
    assert row["convergence_known"] == row["runs"]
    assert row["not_converged"] == 2


def test_interval_from_brackets_replaces_a_zero_std() -> None:
    a = Crossing(348, 340.0, {200: 0.5, 300: 0.6, 348: 0.95})
    b = Crossing(348, 330.0, {200: 0.5, 330: 0.8, 348: 0.95, 400: 0.96})
    assert a.bracket == (300, 348) and b.bracket == (330, 348)
    assert bracket_interval([a, b]) == (300, 348)
    assert bracket_interval([Crossing(None, None, {10: 0.1})]) == (None, None)
    assert bracket_interval([Crossing(10, 10.0, {10: 0.99})]) == (10, 10)


def test_bisection_budget_rows_report_their_bracket(tmp_path: Path) -> None:
    out = run_study(spec("bisect", d_min=10, d_max=2000, rtol=0.1), tmp_path / "b", pool=InlinePool(),
                    run_fn=CurveRuns(grid_acc))
    rows = {r["epochs"]: r for r in budget_rows(out.engine)}
    assert 50 <= rows[10]["d_int90_mean"] <= 55 and rows[10]["bracket_ratio_max"] <= 1.1
    assert rows[1]["d_int90_mean"] >= 1000  # a passing visited d at or above the true crossing
    assert out.rows[0]["d_int90_lo"] < 50 <= out.rows[0]["d_int90_hi"]


def test_budget_bars_reach_down_to_the_search_bracket(tmp_path: Path) -> None:
    """At a budget the bisection visited coarsely, the figure's bar reaches down to the true
    crossing (1000 / 1, at epoch 1 of grid_acc's thresholds) instead of stopping at the point."""
    out = run_study(spec("bisect", d_min=10, d_max=2000, rtol=0.1), tmp_path / "b", pool=InlinePool(),
                    run_fn=CurveRuns(grid_acc))
    rows = sorted(budget_rows(out.engine), key=lambda r: r["epochs"])
    below, above = error_bars(rows)
    for r, lo, hi in zip(rows, below, above, strict=True):
        assert hi == r["d_int90_max"] - r["d_int90_mean"]
        assert math.isclose(r["d_int90_mean"] - lo, r["d_int90_min"] / r["bracket_ratio_max"])
        assert r["d_int90_mean"] - lo <= threshold_d(r["epochs"]) <= r["d_int90_mean"] + hi
    assert below[0] > 0.5 * rows[0]["d_int90_mean"]  # epoch 1: visited only coarsely, a long bar


def test_budget_figure_for_ended_searches_and_none_for_a_pair_still_searching(tmp_path: Path) -> None:
    import warnings

    from projbench.study.budget import budget_figure

    out = run_study(spec("bisect", d_min=10, d_max=2000, rtol=0.1), tmp_path / "b", pool=InlinePool(),
                    run_fn=CurveRuns(grid_acc))
    rows = budget_rows(out.engine)
    searching = [{**r, "architecture": "other", "d_int90_mean": None, "d_int90_min": None,
                  "d_int90_max": None, "reached": 0, "seeds": 0} for r in rows]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "no artists with labels" for a legend
        paths = budget_figure(rows + searching, tmp_path / "fig")
    assert [p.name for p in paths] == ["d_int90_vs_budget_toy_toyset.png"]
    assert paths[0].stat().st_size > 0
    assert not (tmp_path / "fig" / "d_int90_vs_budget_other_toyset.png").exists()


def test_figures_draw_every_variant_and_censor_not_reached_cells(tmp_path: Path) -> None:
    from projbench.report.study_figures import _bound, write_figures

    def acc(s: RunSpec, epoch: float) -> float:
        if s.projection is None:
            return 1.0
        if s.recipe.lr > 0.002:  # this variant never reaches the target on the grid
            return 0.5
        return 0.95 if s.d >= 100 else 0.5

    data = {"seeds": [0, 1], "projections": ["p"], "axes": {"lr": [0.001, 0.003]},
            "search": {"method": "grid", "grid": [10, 100, 1000], "baseline": "local"},
            "recipe": {"epochs": 10, "eval_epochs": list(EPOCHS)},
            "pairs": [{"architecture": "toy", "dataset": "toyset"}]}
    out = run_study(resolve(data, "toy"), tmp_path / "v", pool=InlinePool(), run_fn=CurveRuns(acc))
    reached, censored = sorted(out.rows, key=lambda r: r["d_int90_mean"] is None)
    assert reached["d_int90_mean"] == 100 and censored["status"] == "not reached"
    assert _bound(censored) == 1000.0  # drawn at the largest d tried, not dropped
    # the row says how far off the search was and names both remedies, not only a wider range
    assert censored["message"].startswith("best 0.500 < target ")
    assert censored["message"].endswith("within d <= 1,000: extend the grid upwards, or, if a run near "
                                        "d = D misses too, fix the recipe (lr, epochs)")
    names = {p.name for p in write_figures(out.rows, tmp_path / "fig")}
    assert {"d_int90_toyset_lr_0.001.png", "d_int90_toyset_lr_0.003.png", "d_int90_vs_lr.png"} <= names


def test_reference_csv_with_two_sources_gives_a_ratio_per_source(tmp_path: Path) -> None:
    from projbench.report.study import add_reference, read_reference, render

    ref = tmp_path / "ref.csv"
    ref.write_text("architecture,dataset,projection,d_int90,source\n"
                   "toy,toyset,p,25,paper\ntoy,toyset,p,100,reimplementation\n")
    out = run_study(spec(), tmp_path / "r", pool=InlinePool(), run_fn=CurveRuns(grid_acc))
    rows = out.rows
    add_reference(rows, read_reference(ref))
    assert rows[0]["ours_over"] == {"paper": 2.0, "reimplementation": 0.5}
    md = render(rows, "md")
    assert "| ref1 | ours/ref1 | ref2 | ours/ref2 |" in md and "| 25 | 2.00 | 100 | 0.50 |" in md
    from projbench.report.study import reference_legend

    assert reference_legend(rows) == "ref1 = paper; ref2 = reimplementation"
