"""The d_int90 search on toy problems with known answers, resume, divergence, figure, CLI."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from projbench.errors import InvalidArgumentError
from projbench.intrinsic import (
    RunSpec,
    find_intrinsic_dim,
    global_baseline_recipes,
    interpolate_crossing,
    plot_intrinsic,
)
from projbench.results import read_run
from projbench.training import Recipe, TrainResult

AccFn = Callable[[RunSpec], float | tuple[float, str]]


class FakeTrainer:
    """Accuracy is a known function of the spec; counts calls; can 'crash' after n calls."""

    def __init__(self, acc: AccFn, baseline: Callable[[Recipe], float] = lambda r: 1.0,
                 crash_after: int | None = None) -> None:
        self.acc = acc
        self.baseline = baseline
        self.crash_after = crash_after
        self.calls: list[RunSpec] = []

    def __call__(self, spec: RunSpec) -> TrainResult:
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append(spec)
        status = "ok"
        if spec.is_baseline:
            value: float | tuple[float, str] = self.baseline(spec.recipe)
        else:
            value = self.acc(spec)
        if isinstance(value, tuple):
            value, status = value
        return TrainResult(test_accuracy=value, test_loss=1 - value, train_loss=1 - value, steps=10,
                           epochs=1.0, status=status, diverged_at_step=3 if status == "diverged" else None)


def step_acc(thresholds: dict[str, int]) -> AccFn:
    return lambda s: 0.95 if s.d >= thresholds[s.projection] else 0.5


def test_bisection_finds_known_step() -> None:
    trainer = FakeTrainer(step_acc({"a": 137, "b": 4000}))
    res = find_intrinsic_dim("toy", "toy", ["a", "b"], seeds=[0, 1], baseline="local", rtol=1e-9,
                             d_min=10, d_max=10000, trainer=trainer)
    assert res.baseline_accuracy == 1.0 and res.target_accuracy == pytest.approx(0.9)
    for name, expected in (("a", 137), ("b", 4000)):
        summ = res.projections[name]
        assert [s.d for s in summ.seeds] == [expected, expected]
        assert summ.mean == expected and summ.std == 0.0
        # bisection: about log2(log(d_max/d_min)/log(1+rtol)) evaluations, not the whole range
        assert len(summ.seeds[0].evaluated) < 20
    assert "d_int90 a: 137 ± 0" in res.projections["a"].line()


def test_grid_search_and_interpolation() -> None:
    trainer = FakeTrainer(step_acc({"a": 137}))
    res = find_intrinsic_dim("toy", "toy", ["a"], seeds=[0], search="grid", grid=[10, 100, 150, 200, 1000],
                             baseline="local", trainer=trainer)
    s = res.projections["a"].seeds[0]
    assert s.d == 150
    t = (0.9 - 0.5) / (0.95 - 0.5)
    assert s.interpolated == pytest.approx(math.exp(math.log(100) + t * (math.log(150) - math.log(100))))
    assert sorted(s.evaluated) == [10, 100, 150, 200, 1000]


def test_smooth_curve_per_seed_crossings_and_spread() -> None:
    """acc(d) = 0.98(1 − e^{−d/τ}) and baseline 0.98: d* = τ ln 10 exactly."""
    taus = {0: 100.0, 1: 150.0, 2: 200.0}
    trainer = FakeTrainer(lambda s: 0.98 * (1 - math.exp(-s.d / taus[s.seed])), baseline=lambda r: 0.98)
    res = find_intrinsic_dim("toy", "toy", ["p"], seeds=[0, 1, 2], baseline="local", rtol=0.01,
                             trainer=trainer)
    summ = res.projections["p"]
    exact = {s: tau * math.log(10) for s, tau in taus.items()}
    for s in summ.seeds:
        assert exact[s.seed] <= s.d <= exact[s.seed] * 1.01 + 1
        assert s.interpolated == pytest.approx(exact[s.seed], rel=0.01)
    crossings = [s.d for s in summ.seeds]
    assert summ.mean == pytest.approx(statistics.fmean(crossings))
    assert summ.std == pytest.approx(statistics.stdev(crossings))
    assert summ.interp_mean == pytest.approx(statistics.fmean(exact.values()), rel=0.01)


def test_not_reached_and_lower_bound() -> None:
    trainer = FakeTrainer(step_acc({"never": 10**9, "always": 1}))
    res = find_intrinsic_dim("toy", "toy", ["never", "always"], seeds=[0], baseline="local",
                             d_min=10, d_max=1000, trainer=trainer)
    assert res.projections["never"].seeds[0].d is None and not res.projections["never"].reached
    assert "not reached" in res.projections["never"].line()
    assert res.projections["always"].seeds[0].d == 10


def test_global_baseline_is_best_recipe() -> None:
    lr_acc = {1e-3 / 3: 0.7, 1e-3: 0.8, 3e-3: 0.9}

    def baseline(r: Recipe) -> float:
        return next(v for lr, v in lr_acc.items() if math.isclose(lr, r.lr))

    trainer = FakeTrainer(lambda s: 0.85 if s.d >= 300 else (0.75 if s.d >= 50 else 0.1), baseline=baseline)
    res = find_intrinsic_dim("toy", "toy", ["p"], seeds=[0, 1], baseline="global", rtol=1e-9,
                             recipe=Recipe(lr=1e-3), trainer=trainer)
    assert res.local_baseline == pytest.approx(0.8) and res.global_baseline == pytest.approx(0.9)
    assert res.baseline_recipe["lr"] == pytest.approx(3e-3)
    assert res.projections["p"].seeds[0].d == 300  # 0.75 < 0.81 = 0.9 × 0.9 ≤ 0.85
    local = find_intrinsic_dim("toy", "toy", ["p"], seeds=[0, 1], baseline="local", rtol=1e-9,
                               recipe=Recipe(lr=1e-3), trainer=FakeTrainer(trainer.acc, baseline))
    assert local.projections["p"].seeds[0].d == 50  # 0.75 ≥ 0.72 = 0.9 × 0.8
    assert len(global_baseline_recipes(Recipe())) == 3


def test_resume_after_interruption_reuses_recorded_runs(tmp_path: Path) -> None:
    def acc(s: RunSpec) -> float:
        return 0.95 if s.d >= 200 + 50 * s.seed else 0.4

    kwargs = dict(seeds=[0, 1], baseline="global", d_min=10, d_max=2000, rtol=0.05)
    full = FakeTrainer(acc)
    reference = find_intrinsic_dim("toy", "toy", ["a", "b"], trainer=full,
                                   results_path=tmp_path / "ref.jsonl", **kwargs)
    total = len(full.calls)

    path = tmp_path / "run.jsonl"
    crashing = FakeTrainer(acc, crash_after=total // 2)
    with pytest.raises(KeyboardInterrupt):
        find_intrinsic_dim("toy", "toy", ["a", "b"], trainer=crashing, results_path=path, **kwargs)
    partial = read_run(path)
    assert len(partial.cases) == total // 2 and partial.end is not None  # interrupted, cases kept

    resumed = FakeTrainer(acc)
    res = find_intrinsic_dim("toy", "toy", ["a", "b"], trainer=resumed, results_path=path, **kwargs)
    assert len(resumed.calls) == total - total // 2
    assert res.runs_trained == total - total // 2 and res.runs_reused == total // 2
    assert res.summary()["d_int90"] == reference.summary()["d_int90"]
    again = FakeTrainer(acc)
    find_intrinsic_dim("toy", "toy", ["a", "b"], trainer=again, results_path=path, **kwargs)
    assert again.calls == []
    # a different recipe is a different cache key: trained again
    other = FakeTrainer(acc)
    find_intrinsic_dim("toy", "toy", ["a"], trainer=other, results_path=path, recipe=Recipe(epochs=3),
                       **kwargs)
    assert len(other.calls) > 0
    assert len({c["key"] for c in read_run(path).cases}) == len(read_run(path).cases)


def test_divergence_is_recorded_and_counts_as_failing(tmp_path: Path) -> None:
    def acc(s: RunSpec) -> float | tuple[float, str]:
        if 100 <= s.d < 300:
            return 0.99, "diverged"  # accuracy high, but a diverged run never passes
        return 0.95 if s.d >= 100 else 0.3

    path = tmp_path / "div.jsonl"
    res = find_intrinsic_dim("toy", "toy", ["p"], seeds=[0], search="grid", grid=[50, 100, 200, 300, 1000],
                             baseline="local", trainer=FakeTrainer(acc), results_path=path)
    s = res.projections["p"].seeds[0]
    assert s.d == 300 and s.diverged == [100, 200]
    cases = read_run(path).cases
    statuses = {c["params"]["d"]: c["status"] for c in cases if c["projection"] == "p"}
    assert statuses == {50: "ok", 100: "diverged", 200: "diverged", 300: "ok", 1000: "ok"}
    assert all(c["stats"]["diverged_at_step"] == 3 for c in cases if c["status"] == "diverged")
    assert read_run(path).end["summary"]["d_int90"]["p"]["per_seed"] == {"0": 300}


def test_interpolate_crossing_closed_form() -> None:
    assert interpolate_crossing(10, 0.0, 1000, 1.0, 0.5) == pytest.approx(100.0)
    assert interpolate_crossing(10, 0.5, 20, 0.5, 0.9) == 20.0  # flat: no information


def test_invalid_search_arguments() -> None:
    trainer = FakeTrainer(step_acc({"a": 5}))
    with pytest.raises(InvalidArgumentError):
        find_intrinsic_dim("t", "t", ["a"], search="random", trainer=trainer)
    with pytest.raises(InvalidArgumentError):
        find_intrinsic_dim("t", "t", ["a"], d_min=100, d_max=10, trainer=trainer)
    with pytest.raises(InvalidArgumentError):
        find_intrinsic_dim("t", "t", ["a"], baseline="best", trainer=trainer)
    with pytest.raises(InvalidArgumentError):
        find_intrinsic_dim("t", "t", [], trainer=trainer)


def test_plot_writes_png(tmp_path: Path) -> None:
    trainer = FakeTrainer(lambda s: min(0.99, 0.3 + 0.1 * math.log(s.d)))
    res = find_intrinsic_dim("toy", "toy", ["a", "b"], seeds=[0, 1], search="grid", grid=[10, 100, 1000],
                             baseline="local", trainer=trainer)
    png = plot_intrinsic(res, tmp_path / "fig" / "d.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def _a_projection() -> str:
    import projbench

    names = projbench.list_plugins("projections")
    if not names:
        pytest.skip("no projection registered yet")
    return "dense" if "dense" in names else names[0]


def test_model_trainer_real_training_and_records(tmp_path: Path) -> None:
    """The default trainer on a registered architecture with injected (random, learnable) data."""
    import projbench
    from projbench.intrinsic import ModelTrainer

    if "digits" not in projbench.list_plugins("datasets"):
        pytest.skip("mlp/digits not registered")
    proj = _a_projection()
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (400,), generator=g)
    x = torch.randn(400, 1, 8, 8, generator=g) * 0.3
    x[torch.arange(400), 0, y // 8 + 3, y % 8] += 3.0  # the label is written into a pixel
    trainer = ModelTrainer("mlp", "digits", data=((x[:300], y[:300]), (x[300:], y[300:])))
    path = tmp_path / "r.jsonl"
    res = find_intrinsic_dim("mlp", "digits", [proj], seeds=[0], search="grid", grid=[2, 200],
                             baseline="local", recipe=Recipe(epochs=8, lr=3e-2, batch_size=32),
                             trainer=trainer, results_path=path)
    assert res.local_baseline > 0.9
    s = res.projections[proj].seeds[0]
    assert s.evaluated[200] > s.evaluated[2]
    run = read_run(path)
    assert run.header["config"]["projections"] == [proj]
    assert {c["projection"] for c in run.cases} == {"none", proj}
    assert trainer.calls == 3


def test_cli_intrinsic_dim_and_resume(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from projbench.cli import cli

    proj = _a_projection()
    args = ["intrinsic-dim", "--arch", "mlp", "--dataset", "digits", "--proj", proj, "--seeds", "1",
            "--search", "grid", "--grid", "4,64", "--epochs", "1", "--baseline", "local",
            "--train-subset", "256", "--out", str(tmp_path)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    lines = first.stdout.strip().splitlines()
    assert lines[0].startswith(f"d_int90 {proj}:")
    jsonl, png = Path(lines[-2]), Path(lines[-1])
    assert jsonl.exists() and png.exists() and png.suffix == ".png"
    n_cases = len(read_run(jsonl).cases)
    assert n_cases == 3
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert len(read_run(jsonl).cases) == n_cases  # everything reused
    assert second.stdout.splitlines()[0] == lines[0]
    bad = CliRunner().invoke(cli, [*args[:7], "--grid", "abc", "--search", "grid"])
    assert bad.exit_code != 0 and "grid" in bad.output
    records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    assert records[0]["type"] == "run" and records[-1]["type"] == "end"
