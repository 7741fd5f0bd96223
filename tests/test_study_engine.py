"""The study engine with fake training runs whose accuracy is a known function of the run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from projbench.errors import InvalidArgumentError
from projbench.executors import InlinePool
from projbench.recipe import Recipe
from projbench.study.driver import replay_study, run_study
from projbench.study.spec_resolve import resolve
from projbench.study.store import StudyMismatchError, read_study
from projbench.training_runs import RunSpec

STEPS = {"a": 137, "b": 4000}


class FakeRuns:
    """run_fn(spec, data_dir) -> record; counts calls; can raise after n calls."""

    def __init__(
        self,
        baseline: Any = lambda spec: 1.0,
        acc: Any = None,
        crash_after: int | None = None,
        fail_projection: str | None = None,
    ) -> None:
        self.baseline = baseline
        self.acc = acc or (lambda spec: 0.95 if spec.d >= STEPS.get(spec.projection, 10**9) else 0.5)
        self.crash_after = crash_after
        self.fail_projection = fail_projection
        self.calls: list[RunSpec] = []

    def __call__(self, spec: RunSpec, data_dir: str | None) -> dict[str, Any]:
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append(spec)
        if self.fail_projection is not None and spec.projection == self.fail_projection:
            raise RuntimeError("worker exploded")
        value = self.baseline(spec) if spec.projection is None else self.acc(spec)
        status = "ok"
        if isinstance(value, tuple):
            value, status = value
        return {
            "type": "run",
            "run_id": spec.run_id,
            "identity": spec.identity,
            "status": status,
            "stats": {"test_accuracy": value, "run_wall_s": 0.01},
            "samples": {},
            "error": None,
            "worker": {},
        }


def toy_spec(**changes: Any) -> Any:
    data: dict[str, Any] = {
        "seeds": [0, 1],
        "projections": ["a", "b"],
        "search": {"d_min": 10, "d_max": 10000, "rtol": 1e-9, "baseline": "local", "points_per_round": 1},
        "pairs": [{"architecture": "toy", "dataset": "toyset"}],
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return resolve(data, "toy")


def row(outcome: Any, projection: str) -> dict[str, Any]:
    return next(r for r in outcome.rows if r["projection"] == projection)


@pytest.mark.parametrize("k", [1, 3])
def test_known_steps_and_shared_baselines(tmp_path: Path, k: int) -> None:
    runs = FakeRuns()
    out = run_study(toy_spec(search={"points_per_round": k}), tmp_path / "s", pool=InlinePool(), run_fn=runs)
    for name, expected in STEPS.items():
        r = row(out, name)
        assert (
            r["d_int90_mean"] == expected
            and r["d_int90_std"] == 0.0
            and r["per_seed"] == {0: expected, 1: expected}
        )
        assert (
            r["status"] == "ok"
            and r["baseline_accuracy"] == 1.0
            and r["target_accuracy"] == pytest.approx(0.9)
        )
    baselines = [s for s in runs.calls if s.projection is None]
    assert len(baselines) == 2  # one per seed, shared by both projections
    assert len({s.run_id for s in runs.calls}) == len(runs.calls)  # nothing trained twice


def test_global_baseline_uses_the_best_recipe(tmp_path: Path) -> None:
    lr_acc = {1e-3 / 3: 0.7, 1e-3: 0.8, 3e-3: 0.9}
    runs = FakeRuns(
        baseline=lambda s: next(v for lr, v in lr_acc.items() if math.isclose(lr, s.recipe.lr)),
        acc=lambda s: 0.85 if s.d >= 300 else (0.75 if s.d >= 50 else 0.1),
    )
    spec = toy_spec(projections=["p"], search={"baseline": "global"}, recipe={"lr": 1e-3})
    out = run_study(spec, tmp_path / "g", pool=InlinePool(), run_fn=runs)
    r = row(out, "p")
    assert r["baseline_accuracy"] == pytest.approx(0.9) and r["d_int90_mean"] == 300
    assert {round(s.recipe.lr, 8) for s in runs.calls if s.projection is None} == {
        round(x, 8) for x in lr_acc
    }
    local = run_study(
        toy_spec(projections=["p"], recipe={"lr": 1e-3}),
        tmp_path / "l",
        pool=InlinePool(),
        run_fn=FakeRuns(runs.baseline, runs.acc),
    )
    assert row(local, "p")["d_int90_mean"] == 50  # 0.75 >= 0.72 = 0.9 x 0.8


@pytest.mark.parametrize(
    ("baseline", "words"),
    [
        (lambda s: 0.11, "near chance"),
        (lambda s: (0.95, "diverged"), "diverged"),
    ],
)
def test_a_meaningless_baseline_stops_the_pair(tmp_path: Path, baseline: Any, words: str) -> None:
    runs = FakeRuns(baseline=baseline)
    out = run_study(toy_spec(), tmp_path / "c", pool=InlinePool(), run_fn=runs)
    assert all(r["status"] == "failed" and words in r["message"] for r in out.rows)
    assert all(s.projection is None for s in runs.calls)  # no search against a meaningless target


def test_a_failing_run_is_recorded_and_the_study_goes_on(tmp_path: Path) -> None:
    spec = toy_spec(projections=["a", "bad"])
    out = run_study(spec, tmp_path / "f", pool=InlinePool(), run_fn=FakeRuns(fail_projection="bad"))
    assert row(out, "a")["d_int90_mean"] == 137
    bad = row(out, "bad")
    assert bad["status"] == "failed" and "worker exploded" in bad["message"]
    stored = read_study(tmp_path / "f")
    assert sum(r["status"] == "failed" for r in stored.runs.values()) == 2  # one per seed
    again = FakeRuns(fail_projection=None, acc=lambda s: 0.95 if s.d >= 50 else 0.1)
    retry = run_study(spec, tmp_path / "f", pool=InlinePool(), run_fn=again)
    assert {s.projection for s in again.calls} == {"bad"}  # only the failed runs are tried again
    assert row(retry, "bad")["d_int90_mean"] == 50


def test_resume_after_interruption_repeats_nothing(tmp_path: Path) -> None:
    spec = toy_spec(seeds=[0, 1, 2], search={"rtol": 0.05})
    reference = run_study(spec, tmp_path / "ref", pool=InlinePool(), run_fn=(full := FakeRuns()))
    total = len(full.calls)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, tmp_path / "s", pool=InlinePool(), run_fn=FakeRuns(crash_after=total // 2))
    assert len(read_study(tmp_path / "s").runs) == total // 2
    resumed = FakeRuns()
    out = run_study(spec, tmp_path / "s", pool=InlinePool(), run_fn=resumed)
    assert len(resumed.calls) == total - total // 2 and out.reused == total // 2
    keys = ("projection", "d_int90_mean", "d_int90_std", "per_seed", "interpolated_mean", "baseline_accuracy")
    assert [{k: r[k] for k in keys} for r in out.rows] == [{k: r[k] for k in keys} for r in reference.rows]
    replayed, stored = replay_study(tmp_path / "s")
    assert stored.ended and [r["d_int90_mean"] for r in replayed.rows] == [
        r["d_int90_mean"] for r in out.rows
    ]


def test_a_changed_spec_is_refused(tmp_path: Path) -> None:
    run_study(toy_spec(), tmp_path / "s", pool=InlinePool(), run_fn=FakeRuns())
    with pytest.raises(StudyMismatchError, match=r"seeds.*\[0, 1\].*\[0, 1, 2\]"):
        run_study(toy_spec(seeds=[0, 1, 2]), tmp_path / "s", pool=InlinePool(), run_fn=FakeRuns())
    with pytest.raises(StudyMismatchError, match="train_subset"):
        run_study(toy_spec(run={"train_subset": 100}), tmp_path / "s", pool=InlinePool(), run_fn=FakeRuns())


def test_every_result_changing_setting_is_part_of_a_runs_identity() -> None:
    base = RunSpec("fc", "mnist", 0, Recipe(), projection="fastjl", d=100)
    variants = [
        base.with_(seed=1),
        base.with_(recipe=Recipe(lr=2e-3)),
        base.with_(train_subset=500),
        base.with_(test_subset=500),
        base.with_(device="cuda"),
        base.with_(dtype="float64"),
        base.with_(options=(("q", 0.1),)),
        base.with_(per_layer=True),
        base.with_(burn_in=10),
        base.with_(threads=2),
        base.with_(d=101),
        base.with_(projection="fastfood"),
        base.with_(arch_options=(("width", 10),)),
    ]
    ids = {v.run_id for v in variants}
    assert len(ids) == len(variants) and base.run_id not in ids
    assert RunSpec.from_identity(base.identity) == base


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": 0}, "seeds"),
        ({"projections": []}, "projections"),
        ({"projections": ["a", "a"]}, "twice"),
        ({"search": {"rtol": float("nan")}}, "rtol"),
        ({"search": {"baseline": "best"}}, "baseline"),
        ({"recipe": {"lr": -1}}, "lr"),
        ({"recipe": {"lr": "fast"}}, "lr"),
        ({"recipe": {"weight_decay": float("nan")}}, "weight_decay"),
        ({"recipe": {"epochs": 1.5}}, "epochs"),
        ({"pairs": []}, "pairs"),
        ({"bogus": 1}, "bogus"),
        ({"search": {"d_min": 100, "d_max": 10}}, "d_min"),
        ({"run": {"dtype": "int8"}}, "dtype"),
    ],
)
def test_bad_specs_get_one_line_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        toy_spec(**change)
