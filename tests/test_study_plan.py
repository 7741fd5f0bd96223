"""What a study will cost, before it runs: run counts from the spec and the search, steps and
evaluations per run, the cost arithmetic, a real measurement, and `study --dry-run`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from projbench.cli import cli
from projbench.errors import InvalidArgumentError
from projbench.recipe import Recipe
from projbench.study import plan as P
from projbench.study import step_cost as C
from projbench.study.engine import StudyEngine
from projbench.study.spec_resolve import resolve


def _spec(**extra: Any) -> Any:
    data: dict[str, Any] = {
        "seeds": 2,
        "projections": ["fastfood", "fastjl"],
        "search": {"method": "grid", "grid": [10, 100, 1000], "baseline": "global"},
        "recipe": {"epochs": 3, "batch_size": 128},
        "pairs": [{"architecture": "mlp", "dataset": "digits"}],
        **extra,
    }
    return resolve(data, "plan-test")


def _engine_baselines(spec: Any) -> int:
    """Distinct baseline runs as the study engine plans them (nothing is trained)."""
    engine = StudyEngine(spec)
    return len({s.run_id for g in engine.groups for specs in g.baseline_specs.values() for s in specs})


# --- run counts --------------------------------------------------------------------------------


def test_a_grid_trains_every_point_and_a_bisection_is_bounded_by_its_rounds() -> None:
    assert P.chain_run_range({"method": "grid", "grid": [10, 100, 100, 1000]}) == (3, 3)
    # d_max then d_min, then bisection on log d from a ratio of 100 down to <= 1 + rtol = 2:
    # 100 -> 10 -> 3.2 -> 1.8, three rounds: 2 + 3 runs at most; d_min passing stops after 2
    bisect = {"method": "bisect", "d_min": 10, "d_max": 1000, "rtol": 1.0, "points_per_round": 1}
    assert P.chain_run_range(bisect) == (2, 5)
    # k = 2: d_max and d_min together, then rounds of 2 points shrinking log d three-fold
    assert P.chain_run_range({**bisect, "points_per_round": 2}) == (2, 6)


def test_global_baselines_count_three_learning_rates_per_seed() -> None:
    groups = P.pair_run_groups(_spec(), 0, 1437)
    assert P.run_totals(groups) == {"subspace": (12, 12), "baseline": (6, 6)}  # 2 proj × 2 seeds × 3 d
    local = _spec(search={"method": "grid", "grid": [10, 100, 1000], "baseline": "local"})
    assert P.run_totals(P.pair_run_groups(local, 0, 1437))["baseline"] == (2, 2)


def test_variants_share_the_baselines_the_engine_shares() -> None:
    burn = _spec(axes={"burn_in": [0, 50]})
    totals = P.run_totals(P.pair_run_groups(burn, 0, 1437))
    assert totals == {"subspace": (24, 24), "baseline": (6, 6)} and _engine_baselines(burn) == 6
    lrs = _spec(axes={"lr": [1e-3, 3e-3]})  # {lr/3, lr, 3lr} overlap: 1e-3 and 3e-3 appear twice
    assert P.run_totals(P.pair_run_groups(lrs, 0, 1437))["baseline"] == (8, 8)
    assert _engine_baselines(lrs) == 8


def test_burn_in_runs_carry_their_full_steps() -> None:
    groups = P.pair_run_groups(_spec(axes={"burn_in": [0, 50]}), 0, 1437)
    assert sorted(g.burn_in for g in groups if g.kind == "subspace") == [0, 50]


def test_direct_networks_count_sizes_lrs_and_seeds() -> None:
    spec = _spec(direct={"sizes": 3, "lrs": [1e-3, 1e-2]})
    assert P.run_totals(P.pair_run_groups(spec, 0, 1437))["direct"] == (12, 12)


# --- steps, evaluations, arithmetic ----------------------------------------------------------


def test_steps_are_epochs_times_batches_or_max_steps() -> None:
    assert P.steps_per_run(1437, Recipe(epochs=3, batch_size=128)) == 3 * 12
    assert P.steps_per_run(1437, Recipe(epochs=3, batch_size=128, max_steps=20)) == 20
    assert P.steps_per_run(60000, Recipe(epochs=100)) == 46900
    # evaluated after epochs 1 and 2 (the default series) and at the last step
    assert P.evaluations_per_run(1437, Recipe(epochs=3)) == 3
    assert P.evaluations_per_run(60000, Recipe(epochs=100, eval_epochs=(1, 2, 5, 10, 20, 50, 100))) == 7
    assert P.subset_size(60000, 256) == 256 and P.subset_size(1437, None) == 1437 == P.subset_size(1437, 5000)


def _cost(**changes: Any) -> C.StepCost:
    base = {"full_step_s": 0.01, "subspace_step_s": 0.015, "full_eval_s": 0.02, "subspace_eval_s": 0.03,
            "batch_size": 128, "eval_batch": 1000, "projection": "fastfood", "d": 100, "device": "cpu",
            "threads": 1}
    return C.StepCost(**{**base, **changes})


def test_a_run_costs_its_steps_burn_in_and_evaluations() -> None:
    cost = _cost()
    sub = P.RunGroup("subspace", (4, 10), steps=100, batch_size=128, evaluations=2, burn_in=10)
    # 100 × 15 ms + 10 burn-in × 10 ms + 2 evaluations × ⌈2500/1000⌉ batches × 30 ms
    assert C.run_seconds(sub, cost, 2500) == pytest.approx(1.5 + 0.1 + 0.18)
    base = P.RunGroup("baseline", (3, 3), steps=100, batch_size=128, evaluations=2)
    assert C.run_seconds(base, cost, 2500) == pytest.approx(1.0 + 0.12)
    expected = (4 * 1.78 + 3 * 1.12, 10 * 1.78 + 3 * 1.12)
    assert C.total_seconds([sub, base], cost, 2500) == pytest.approx(expected)
    # another batch size: the model's share scales, the projection's does not
    assert C.step_seconds(cost, "baseline", 256) == pytest.approx(0.02)
    assert C.step_seconds(cost, "subspace", 256) == pytest.approx(0.025)
    assert C.total_seconds([sub], _cost(subspace_step_s=None, subspace_eval_s=None), 2500) is None


def test_wall_time_divides_by_the_workers_and_load_inflates() -> None:
    assert C.wall_seconds(3600.0, 4) == 900.0
    with pytest.raises(InvalidArgumentError):
        C.wall_seconds(1.0, 0)
    assert C.load_inflation(3.0, 2) == 2.0 and C.load_inflation(0.5, 4) == 1.0
    assert P.executor_workers("local", 3, None, 1.0, 0.0) == 3
    assert P.executor_workers("ray", 4, None, 2.0, 0.0) == 2
    assert P.executor_workers("ray", 1, "auto", 1.0, 0.0) is None


def test_mid_d_is_the_geometric_middle_at_most_D() -> None:
    assert P.mid_d({"method": "bisect", "d_min": 10, "d_max": 1000}, 4810) == 100
    assert P.mid_d({"method": "grid", "grid": [10, 20, 50, 100]}, 4810) == 20
    assert P.mid_d({"method": "bisect", "d_min": 10, "d_max": 10**6}, 4810) == 3162


# --- measured --------------------------------------------------------------------------------


def test_a_real_measurement_on_digits_is_positive_and_finite() -> None:
    threads = torch.get_num_threads()
    cost = C.measure_step_cost("mlp", "digits", "fastfood", d=64, recipe=Recipe(), budget_s=0.2)
    times = (cost.full_step_s, cost.subspace_step_s, cost.full_eval_s, cost.subspace_eval_s)
    assert all(t is not None and math.isfinite(t) and t > 0 for t in times), cost
    assert (cost.projection, cost.d, cost.threads, cost.note) == ("fastfood", 64, 1, "")
    assert torch.get_num_threads() == threads


def test_a_projection_over_its_budget_leaves_the_subspace_cost_unknown() -> None:
    cost = C.measure_step_cost("mlp", "digits", "dense", {"max_bytes": 1000}, d=64, recipe=Recipe(),
                               budget_s=0.1)
    assert cost.subspace_step_s is None and "dense at d=64 not measured" in cost.note
    assert cost.full_step_s > 0


def test_split_sizes_come_from_the_data_or_the_standard_split(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert P.split_sizes("digits") == P.SplitSizes(1437, 360, "data")
    monkeypatch.setenv("PROJBENCH_DOWNLOAD", "0")
    sizes = P.split_sizes("mnist", str(tmp_path))  # no files there
    assert (sizes.train, sizes.test) == (60000, 10000) and "files not found" in sizes.source


def test_a_plan_of_a_pair_has_runs_and_a_measured_cost() -> None:
    plan = P.plan_pair(_spec(), 0, budget_s=0.1)
    assert (plan.D, plan.n_train, plan.n_test) == (4810, 1437, 360)
    assert plan.seconds is not None and 0 < plan.seconds[0] <= plan.seconds[1] < 3600
    assert plan.runs == {"subspace": (12, 12), "baseline": (6, 6)}


# --- the command -------------------------------------------------------------------------------


def test_dry_run_prints_the_plan_and_its_estimated_cost() -> None:
    jobs = (os.cpu_count() or 1) + 1
    result = CliRunner().invoke(cli, ["study", "smoke", "--dry-run", "--jobs", str(jobs)])
    assert result.exit_code == 0, result.output
    assert "mlp/digits" in result.stdout and "lenet/digits" in result.stdout
    out = " ".join(result.output.split())
    assert "plan and estimated cost" in out
    assert "estimated total:" in out and "CPU-hours" in out
    assert "estimated wall time:" in out and f"{jobs} concurrent runs (local)" in out
    assert "do not scale" in out and "load average" in out
