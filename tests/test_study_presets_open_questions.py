"""The open questions as study presets, each run at smoke size on the
embedded digits: robustness across recipes, direct small networks, burn-in, FastJL stability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from projbench.cli import cli
from projbench.executors import InlinePool
from projbench.report.study_extra_tables import robustness_rows, stability_summary
from projbench.report.study_figures import write_figures
from projbench.study.driver import replay_study, run_study
from projbench.study.spec_files import read_toml
from projbench.study.spec_resolve import resolve


def smoke_sized(preset: str, arch: str = "mlp") -> Any:
    """The preset with its experiment kept (axes, direct, measure, projections) and its budget cut."""
    data, name = read_toml(preset)
    data["pairs"] = [{"architecture": arch, "dataset": "digits"}]
    data["recipe"] = {**data.get("recipe", {}), "lr": 2e-2, "epochs": 30, "max_steps": 40, "batch_size": 64}
    data["run"] = {"threads": 1}
    search = data.setdefault("search", {})
    if search.get("method") == "grid":
        search["grid"] = [16, 128, 512]
    else:
        search.update(d_min=8, d_max=1024, rtol=1.0)
    data["axes"] = {k: v[:2] for k, v in data.get("axes", {}).items()}
    if "direct" in data:
        data["direct"] = {"sizes": 3, "lrs": [1e-2, 3e-2]}
    return resolve(data, name)


def test_robustness_preset(tmp_path: Path) -> None:
    spec = smoke_sized("robustness-mnist")
    assert len(spec.variants()) == 8  # lr x optimizer x batch size, two values each
    out = run_study(spec, tmp_path / "r", pool=InlinePool())
    assert len(out.rows) == 8 and {r["axis_optimizer"] for r in out.rows} == {"adam", "sgd"}
    robust = robustness_rows(out.rows)
    assert len(robust) == 1 and robust[0]["variants"] == 8
    r = robust[0]
    if r["with_d_int90"] >= 2:
        assert r["max_over_min"] >= 1 and r["cv"] is not None and r["argmin"] and r["argmax"]
    pngs = {p.name for p in write_figures(out.rows, tmp_path / "fig")}
    assert {"d_int90_vs_lr.png", "d_int90_vs_optimizer.png", "d_int90_vs_batch_size.png"} <= pngs or \
        r["with_d_int90"] == 0


def test_direct_vs_subspace_preset(tmp_path: Path) -> None:
    out = run_study(smoke_sized("direct-vs-subspace"), tmp_path / "d", pool=InlinePool())
    row = out.rows[0]
    curve = row["direct_curve"]
    assert len(curve) >= 2 and row["direct_complete"]
    sizes = sorted(curve)
    assert sizes[0] < sizes[-1] <= 4810  # direct networks span the search range, below the full mlp
    assert all(lr in (1e-2, 3e-2) for _, _, lr in curve.values())
    if row["d_direct90"] is not None:
        assert row["d_direct90"] in curve and curve[row["d_direct90"]][0] >= row["target_accuracy"]
    direct_runs = [r for r in out.engine.results.values() if r["identity"]["role"] == "direct"]
    assert len(direct_runs) == len(curve) * 2 * 2  # sizes x lrs x seeds
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "d"), "--format", "csv", "--no-figures"])
    assert "d_direct90" in result.stdout.splitlines()[0]


def test_burn_in_preset(tmp_path: Path) -> None:
    spec = smoke_sized("burn-in")
    assert [v["burn_in"] for v in spec.variants()] == [0, 20]
    out = run_study(spec, tmp_path / "b", pool=InlinePool())
    burned = [r for r in out.engine.results.values() if r["identity"]["burn_in"] == 20]
    assert burned and all(r["identity"]["role"] == "subspace" for r in burned)
    assert {r["axis_burn_in"] for r in out.rows} == {0, 20}
    # the same (d, seed) with and without burn-in are different runs with different results
    key = lambda r: (r["identity"]["projection"], r["identity"]["d"], r["identity"]["seed"])  # noqa: E731
    plain = {key(r): r["stats"]["test_accuracy"] for r in out.engine.results.values()
             if r["identity"]["burn_in"] == 0 and r["identity"]["role"] == "subspace"}
    pairs = [(plain[key(r)], r["stats"]["test_accuracy"]) for r in burned if key(r) in plain]
    assert pairs and any(a != b for a, b in pairs)


def test_fastjl_stability_preset(tmp_path: Path) -> None:
    spec = smoke_sized("fastjl-stability")
    assert [p.label for p in spec.projections] == ["fastjl", "fastjl-report", "fastfood"]
    assert spec.measure == {"condition_columns": 64}
    run_study(spec, tmp_path / "s", pool=InlinePool())
    outcome, _ = replay_study(tmp_path / "s")
    srows = outcome.engine.stability_rows()
    assert {r["projection"] for r in srows} == {"fastjl", "fastjl-report", "fastfood"}
    assert all(r["cond_P_sample"] is not None and r["cond_P_sample"] >= 1 for r in srows)
    assert all(r["seeds"] == 2 and 0 <= r["diverged"] <= 2 for r in srows)
    summary = stability_summary(srows)
    assert len(summary) == 3 and all("unstable_from_d" in s for s in summary)
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "s"), "--figures", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert "where training becomes unstable" in result.output
    assert (tmp_path / "f" / "stability.png").stat().st_size > 1000


def test_bytes_to_ship_column(tmp_path: Path) -> None:
    out = run_study(smoke_sized("smoke"), tmp_path / "x", pool=InlinePool())
    ok = [r for r in out.rows if r["d_int90_mean"] is not None]
    assert ok
    for r in ok:
        assert 0 < r["bytes_to_ship"] < r["state_dict_bytes"]
        assert r["bytes_to_ship"] >= 4 * r["d_int90_mean"]  # at least θ_d in float32


def test_every_preset_resolves() -> None:
    from projbench.study.spec_files import load_spec, preset_names

    names = preset_names()
    assert {"robustness-mnist", "robustness-converged", "li2018-mnist", "smoke"} <= set(names)
    for preset in names:
        spec = load_spec(preset)
        assert spec.description and spec.pairs and spec.run_count(), preset


def test_robustness_converged_is_the_lr_axis_of_robustness_mnist_at_li2018_recipe() -> None:
    """Only the budget differs from robustness-mnist's lr axis: its projection, seeds and search,
    FC on MNIST, at li2018-mnist's recipe (100 epochs, full training set) with lr as the axis."""
    from projbench.study.spec_files import load_spec

    converged, short = load_spec("robustness-converged"), load_spec("robustness-mnist")
    li = load_spec("li2018-mnist")
    assert converged.axes == {"lr": short.axes["lr"]}
    assert converged.seeds == short.seeds and [p.label for p in converged.projections] == ["fastjl"]
    (pair,) = converged.pairs
    fc_short = next(p for p in short.pairs if p.architecture == "fc")
    fc_li = next(p for p in li.pairs if p.architecture == "fc")
    assert (pair.architecture, pair.dataset) == ("fc", "mnist")
    assert pair.search == fc_short.search
    def without_lr(recipe: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in recipe.items() if k != "lr"}

    assert without_lr(pair.recipe) == without_lr(fc_li.recipe)
    assert pair.run["train_subset"] is None and fc_short.run["train_subset"] == 10000


def test_lenet_sgd_best_is_the_reimplementation_recipe_with_every_epoch_evaluated() -> None:
    """Plain SGD at lr 0.01 without L2, batch 128, 100 epochs, the best of every epoch's test
    accuracy, LeNet on MNIST only, the two d values being compared."""
    from projbench.study.spec_files import load_spec

    spec = load_spec("lenet-sgd-best")
    (pair,) = spec.pairs
    assert (pair.architecture, pair.dataset) == ("lenet", "mnist")
    r = pair.recipe
    assert (r["optimizer"], r["lr"], r["momentum"], r["weight_decay"]) == ("sgd", 0.01, 0.0, 0.0)
    assert (r["epochs"], r["batch_size"]) == (100, 128)
    assert list(r["eval_epochs"]) == list(range(1, 101))
    assert pair.search["method"] == "grid" and pair.search["grid"] == [170, 290]
    assert pair.search["accuracy"] == "best" and pair.search["baseline"] == "local"
    assert [p.label for p in spec.projections] == ["fastfood"]
    assert spec.run_count() == "6"  # 2 seeds × (2 grid d + 1 baseline)


def test_lenet_sgd_per_layer_is_lenet_sgd_best_in_the_per_tensor_geometry() -> None:
    """The same pair, grid, search and recipe as lenet-sgd-best except per_layer, one seed and
    lr × 10: SGD with P scaled by √10 (LeNet's 10 tensors, each with its own unit-norm P) moves
    θ as SGD at 10 times the lr does with projbench's 1/√k-scaled per-layer P."""
    from projbench.study.spec_files import load_spec
    from projbench.training_runs import tensor_count

    geometry, plain = load_spec("lenet-sgd-per-layer"), load_spec("lenet-sgd-best")
    (pair,), (base,) = geometry.pairs, plain.pairs
    assert pair.run["per_layer"] is True and base.run["per_layer"] is False
    assert pair.search == base.search and geometry.seeds == [0]
    assert pair.recipe["lr"] == pytest.approx(base.recipe["lr"] * tensor_count("lenet", "mnist"))
    assert {k: v for k, v in pair.recipe.items() if k != "lr"} == {
        k: v for k, v in base.recipe.items() if k != "lr"}


def test_kronecker_mnist_preset_is_cpu_budget_on_mnist() -> None:
    """kronecker-mnist is cpu-budget's MNIST pairs, seeds, search and recipe with the Kronecker
    projections beside fastfood, whose runs keep the identities (the ids) of the committed
    cpu-budget runs; it plans without training anything."""
    from projbench.study.engine import StudyEngine
    from projbench.study.plan import pair_run_groups, run_totals
    from projbench.study.spec_files import load_spec
    from projbench.study.store import read_study

    spec, budget = load_spec("kronecker-mnist"), load_spec("cpu-budget")
    assert [p.label for p in spec.projections] == ["kronecker", "kronecker-sum", "fastfood"]
    mnist = [p for p in budget.pairs if p.dataset == "mnist"]
    assert spec.seeds == budget.seeds and len(spec.pairs) == len(mnist) == 2
    for ours, theirs in zip(spec.pairs, mnist, strict=True):
        fields = lambda p: (p.architecture, p.dataset, p.search, p.recipe, p.run, p.classes, p.theta0)  # noqa: E731
        assert fields(ours) == fields(theirs)
    engine = StudyEngine(spec)
    baselines = {s.run_id for g in engine.groups for specs in g.baseline_specs.values() for s in specs}
    fastfood = {engine.subspace_spec(c, d).run_id for c in engine.chains if c.projection == "fastfood"
                for d in (10, 3000)}  # the first round of every bisection
    committed = set(read_study(Path(__file__).resolve().parent.parent / "results" / "study-cpu-budget").runs)
    assert len(baselines) == 4 and len(fastfood) == 8 and baselines | fastfood <= committed
    for index in range(len(spec.pairs)):
        assert run_totals(pair_run_groups(spec, index, 60_000)) == {"baseline": (2, 2), "subspace": (12, 60)}


@pytest.mark.slow
def test_fastfood_variants_preset(tmp_path: Path) -> None:
    """Both Fastfood variants searched side by side: the option is part of each run's identity
    (no run of one variant is reused for the other), the baselines are shared."""
    spec = smoke_sized("fastfood-variants")
    assert [p.label for p in spec.projections] == ["fastfood", "fastfood-stacked"]
    out = run_study(spec, tmp_path / "v", pool=InlinePool())
    assert {r["projection"] for r in out.rows} == {"fastfood", "fastfood-stacked"}
    runs = list(out.engine.results.values())
    subspace = [r for r in runs if r["identity"]["role"] == "subspace"]
    assert {r["identity"]["projection"] for r in subspace} == {"fastfood"}
    options = {tuple(sorted(r["identity"]["options"].items())) for r in subspace}
    assert options == {(), (("variant", "stacked"),)}
    assert len({r["run_id"] for r in subspace}) == len(subspace)
    assert sum(r["identity"]["role"] == "baseline" for r in runs) == len(spec.seeds)
