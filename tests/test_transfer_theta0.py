"""θ₀ from a trained network: class-filtered split tasks, a re-initialised classifier head, a
pretraining run once per study and cached by its identity, checkpoints, exports, and one-line
refusals before any folder exists. Real training on the built-in digits (no files needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

import projbench
from projbench.datasets import select_classes
from projbench.errors import InvalidArgumentError
from projbench.executors import InlinePool
from projbench.recipe import Recipe
from projbench.study.driver import replay_study, run_study
from projbench.study.spec_files import load_spec
from projbench.study.spec_resolve import resolve
from projbench.training_runs import RunSpec, build_model, execute_run
from projbench.transfer import Theta0, classifier_head, load_state

LOW, HIGH = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
PRETRAIN = {"from": "pretrain", "classes": LOW, "recipe": {"epochs": 3}}


def _study(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seeds": 1,
        "projections": ["fastfood"],
        "search": {"method": "grid", "grid": [40, 400], "baseline": "local"},
        "recipe": {"epochs": 2, "lr": 3e-3},
        "axes": {"theta0": ["scratch", PRETRAIN], "scaling": ["none", "said"]},
        "pairs": [{"architecture": "lenet", "dataset": "digits", "classes": HIGH}],
    }
    data.update(changes)
    return data


class Counting:
    """``execute_run`` itself, counting the runs of each role it trains."""

    def __init__(self) -> None:
        self.roles: list[str] = []

    def __call__(self, spec: RunSpec, data_dir: str | None = None) -> dict[str, Any]:
        self.roles.append(spec.role)
        return execute_run(spec, data_dir)


def _records(folder: Path, role: str) -> list[dict[str, Any]]:
    out = []
    for line in (folder / "study.jsonl").read_text().splitlines()[1:]:
        record = json.loads(line)
        if record.get("type") == "run" and record["identity"].get("role") == role:
            out.append(record)
    return out


# -- split tasks -------------------------------------------------------------------------------
def test_a_class_filter_keeps_those_labels_renumbered_in_order() -> None:
    x, y = projbench.load_dataset("digits", "train")
    xs, ys = select_classes((x, y), HIGH)
    assert set(ys.tolist()) == {0, 1, 2, 3, 4}
    assert len(ys) == sum(int((y == c).sum()) for c in HIGH)
    kept = torch.isin(y, torch.tensor(HIGH))
    assert torch.equal(xs, x[kept]) and torch.equal(ys, y[kept] - 5)
    _, shuffled = select_classes((x, y), [9, 5])
    assert torch.equal(shuffled, (y[torch.isin(y, torch.tensor([5, 9]))] == 5).long())  # 9 -> 0, 5 -> 1


def test_mnist_digits_split_into_two_five_class_tasks(data_dir: Path) -> None:
    data = projbench.load_dataset("mnist", "test", data_dir)
    low, high = select_classes(data, LOW), select_classes(data, HIGH)
    assert len(low[1]) + len(high[1]) == 10000
    assert set(low[1].tolist()) == set(high[1].tolist()) == {0, 1, 2, 3, 4}


# -- the model of a fine-tuning run ---------------------------------------------------------
def _pretrained(tmp_path: Path) -> tuple[RunSpec, Path]:
    theta0 = Theta0("pretrain", "digits", tuple(LOW), Recipe(epochs=2, lr=3e-3), seed=7)
    run = RunSpec("lenet", "digits", 1, Recipe(), classes=tuple(HIGH), theta0=theta0)
    path = tmp_path / "theta0.pt"
    record = execute_run(run.pretrain_spec(path))
    assert record["status"] == "ok" and record["identity"]["role"] == "pretrain"
    assert record["stats"]["weights_sha256"] and path.is_file()
    return run.with_(theta0=theta0.with_path(path)), path


def test_the_head_is_reinitialised_as_the_scratch_runs_and_the_rest_is_pretrained(tmp_path: Path) -> None:
    run, path = _pretrained(tmp_path)
    model = build_model(run)
    scratch = build_model(run.with_(theta0=None))
    pretrained = load_state(path)
    head = classifier_head(model)
    assert head == "classifier.5" and model.get_submodule(head).out_features == 5
    for name, value in model.state_dict().items():
        if name.startswith(head + "."):
            assert torch.equal(value, scratch.state_dict()[name])  # the run seed's fresh head
        else:
            assert torch.equal(value, pretrained[name])


def test_a_trained_theta0_changes_the_run_identity(tmp_path: Path) -> None:
    base = RunSpec("lenet", "digits", 0, Recipe(), projection="fastfood", d=40, classes=tuple(HIGH))
    assert "theta0" not in base.identity and base.identity["classes"] == HIGH
    theta0 = Theta0("pretrain", "digits", tuple(LOW), Recipe(epochs=2))
    tuned = base.with_(theta0=theta0)
    assert tuned.identity["theta0"]["from"] == "pretrain" and tuned.run_id != base.run_id
    assert tuned.with_(theta0=theta0.with_path(tmp_path / "w.pt")).run_id == tuned.run_id  # not the path
    other_recipe = base.with_(theta0=Theta0("pretrain", "digits", tuple(LOW), Recipe(epochs=3)))
    other_seed = base.with_(theta0=Theta0("pretrain", "digits", tuple(LOW), Recipe(epochs=2), seed=1))
    checkpoint = base.with_(theta0=Theta0("checkpoint", path="x.pt", sha256="0" * 64))
    ids = {base.run_id, tuned.run_id, other_recipe.run_id, other_seed.run_id, checkpoint.run_id}
    assert len(ids) == 5
    assert RunSpec.from_identity(tuned.identity).run_id == tuned.run_id
    assert "classes" not in RunSpec("lenet", "digits", 0, Recipe()).identity  # earlier ids kept


# -- a study -----------------------------------------------------------------------------------
def test_a_pretraining_runs_once_is_cached_and_is_not_retrained(tmp_path: Path) -> None:
    spec = resolve(_study(), "transfer-test")
    out = tmp_path / "s"
    stop = {"after": 4}

    def interrupt(record: dict[str, Any], run: RunSpec) -> None:
        stop["after"] -= 1
        if stop["after"] == 0:
            raise KeyboardInterrupt("stopped")

    first = Counting()
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, out, pool=InlinePool(), run_fn=first, on_record=interrupt, check_inputs=True)
    assert first.roles.count("pretrain") == 1  # shared by the none and said variants
    cached = list((out / "theta0").glob("*.pt"))
    assert len(cached) == 1 and cached[0].stem == _records(out, "pretrain")[0]["run_id"]
    mtime = cached[0].stat().st_mtime_ns

    second = Counting()
    outcome = run_study(spec, out, pool=InlinePool(), run_fn=second, check_inputs=True)
    assert "pretrain" not in second.roles and cached[0].stat().st_mtime_ns == mtime
    assert len(_records(out, "pretrain")) == 1
    rows = {r["variant"]: r for r in outcome.rows}
    tuned = rows["theta0=pretrain digits[0-4], scaling=said"]
    assert tuned["dataset"] == "digits[5-9]" and tuned["theta0"] == "pretrain digits[0-4]"
    assert tuned["theta0_accuracy"] > 0.5 and tuned["baseline_accuracy"] is not None
    assert rows["theta0=scratch, scaling=none"]["theta0_accuracy"] is None

    cached[0].unlink()  # the weights are gone: the pretraining alone is trained again
    third = Counting()
    run_study(spec, out, pool=InlinePool(), run_fn=third, check_inputs=True)
    assert third.roles == ["pretrain"] and cached[0].is_file()

    replayed, _ = replay_study(out)
    assert [r["d_int90_mean"] for r in replayed.rows] == [r["d_int90_mean"] for r in outcome.rows]


def test_the_report_shows_scratch_and_fine_tuning_side_by_side(tmp_path: Path) -> None:
    from projbench.report.study import render, table_columns

    spec = resolve(_study(axes={"theta0": ["scratch", PRETRAIN]}), "transfer-test")
    outcome = run_study(spec, tmp_path / "s", pool=InlinePool())
    rows = outcome.rows
    assert [r["variant"] for r in rows] == ["theta0=scratch", "theta0=pretrain digits[0-4]"]
    assert [r["axis_theta0"] for r in rows] == ["scratch", "pretrain digits[0-4]"]
    headers = [h for h, _ in table_columns(rows)]
    assert "θ₀ acc" in headers and "θ₀" not in headers  # the variant already names θ₀
    text = render(rows, "md")
    assert "theta0=pretrain digits[0-4]" in text and "digits[5-9]" in text
    figures = tmp_path / "figures"
    from projbench.report.study_figures import write_figures

    names = {p.name for p in write_figures(rows, figures)}
    assert "d_int90_vs_theta0.png" in names


def test_a_checkpoint_theta0_is_fingerprinted_and_checked(tmp_path: Path) -> None:
    source = projbench.make_model("lenet", "digits", seed=5)
    path = tmp_path / "net.pt"
    torch.save(source.state_dict(), path)
    data = _study(axes={}, search={"method": "grid", "grid": [40]})
    data["pairs"][0]["theta0"] = {"from": "checkpoint", "path": str(path)}
    spec = resolve(data, "checkpoint-test")
    table = spec.pairs[0].theta0
    assert table is not None and len(table["sha256"]) == 64
    outcome = run_study(spec, tmp_path / "s", pool=InlinePool())
    assert outcome.rows[0]["theta0"] == "checkpoint net.pt" and outcome.failed_runs == 0
    identity = _records(tmp_path / "s", "subspace")[0]["identity"]
    assert identity["theta0"] == {"from": "checkpoint", "sha256": table["sha256"]}

    torch.save({"w": torch.zeros(2)}, path)  # another file behind the same path
    with pytest.raises(InvalidArgumentError, match="changed since the study recorded them"):
        run_study(spec, tmp_path / "other", pool=InlinePool())
    assert not (tmp_path / "other").exists()


class _Evil:
    def __reduce__(self) -> Any:
        return (os.system, ("echo pwned > /dev/null",))


def test_a_checkpoint_is_read_without_unpickling_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"w": _Evil()}, path)
    data = _study(axes={})
    data["pairs"][0]["theta0"] = {"from": "checkpoint", "path": str(path)}
    with pytest.raises(InvalidArgumentError, match="cannot be read as a state dict") as err:
        run_study(resolve(data, "evil"), tmp_path / "s", pool=InlinePool())
    assert "\n" not in str(err.value) and not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("pair", "axes", "message"),
    [
        ({"theta0": {"from": "somewhere"}}, {}, 'give from = "pretrain" or from = "checkpoint"'),
        ({"theta0": {"from": "pretrain", "epochs": 3}}, {}, "unknown key.*epochs"),
        ({"theta0": {"from": "pretrain", "recipe": {"lr": -1}}}, {}, "theta0 recipe: lr"),
        ({"theta0": {"from": "pretrain", "recipe": {"speed": 2}}}, {}, "theta0 recipe: unknown key.*speed"),
        ({"theta0": {"from": "checkpoint", "path": "/nonexistent.pt"}}, {}, "is not a file"),
        ({"theta0": 3}, {}, 'give "scratch" or a table'),
        ({"classes": [5]}, {}, "at least two class labels"),
        ({"classes": [5, 5, 6]}, {}, "lists a label twice"),
        ({"classes": [5, 12]}, {}, r"labels in 0\.\.9"),
        ({"theta0": {"from": "pretrain", "classes": [0, 11]}}, {}, r"labels in 0\.\.9"),
        ({"theta0": {"from": "pretrain", "dataset": "cifar10"}}, {}, r"has shape \[6, 3, 5, 5\]"),
        ({}, {"scaling": ["said"]}, "10 tensors, so every d searched must exceed 10"),
        ({}, {"scaling": ["fast"]}, "scaling: give one of 'none', 'said'"),
        ({}, {"theta0": ["scratch", {"from": "nope"}]}, "theta0: give from"),
    ],
)
def test_bad_values_are_one_line_before_any_folder(
    tmp_path: Path, pair: dict[str, Any], axes: dict[str, Any], message: str
) -> None:
    data = _study(axes=axes, search={"method": "grid", "grid": [10, 40]})
    data["pairs"][0].update(pair)
    with pytest.raises(InvalidArgumentError, match=message) as err:
        run_study(resolve(data, "bad"), tmp_path / "s", pool=InlinePool())
    assert "\n" not in str(err.value)
    assert not (tmp_path / "s").exists()


def test_a_stored_spec_with_a_theta0_reads_back_and_resumes_as_the_same_study(tmp_path: Path) -> None:
    from projbench.study.driver import spec_from_stored
    from projbench.study.spec_files import check_stored_spec, spec_differences

    data = _study(axes={"scaling": ["none", "said"]})
    data["pairs"][0]["theta0"] = PRETRAIN
    spec = resolve(data, "stored")
    stored = json.loads(json.dumps(spec.to_dict()))
    check_stored_spec(stored, "here")
    again = spec_from_stored(stored)
    assert spec_differences(stored, again.to_dict()) == []
    assert again.pairs[0].theta0 == spec.pairs[0].theta0 and again.pairs[0].classes == HIGH
    plain = resolve(_study(axes={}, pairs=[{"architecture": "lenet", "dataset": "digits"}]), "plain")
    assert "classes" not in plain.to_dict()["pairs"][0] and "theta0" not in plain.to_dict()["pairs"][0]


# -- export ------------------------------------------------------------------------------------
def test_export_of_a_fine_tuned_model_records_the_pretraining_and_reloads_it(tmp_path: Path) -> None:
    from projbench.training import train

    run, _ = _pretrained(tmp_path)
    tuned = run.with_(projection="fastfood", d=60, scaling="said")
    sm = build_model(tuned)
    data = select_classes(projbench.load_dataset("digits", "train"), HIGH)
    train(sm, data, None, Recipe(lr=1e-2, epochs=1, batch_size=64), seed=0)
    path = tmp_path / "tuned.pjsub"
    size = sm.export(path)
    assert size < 4 * sm.D  # θ₀ travels as its recipe, not as D numbers
    header = path.read_bytes()
    assert b'"theta0":"recipe"' in header and b'"kind":"pretrain"' in header and b'"num_classes":5' in header
    loaded = projbench.load_subspace(path)  # redoes the pretraining, checks θ₀'s fingerprint
    x = data[0][:32]
    with torch.no_grad():
        assert torch.equal(loaded(x), sm.eval()(x))
    assert loaded.scaling == "said" and loaded.origin is not None and loaded.origin.num_classes == 5


def test_export_of_a_model_from_a_checkpoint_stores_theta0(tmp_path: Path) -> None:
    from projbench.transfer import file_sha256

    path = tmp_path / "net.pt"
    torch.save(projbench.make_model("lenet", "digits", seed=9).state_dict(), path)
    theta0 = Theta0("checkpoint", path=str(path), sha256=file_sha256(path))
    sm = build_model(RunSpec("lenet", "digits", 2, Recipe(), projection="fastjl", d=30, theta0=theta0))
    with torch.no_grad():
        sm.theta_d.normal_(generator=torch.Generator().manual_seed(0))
    target = tmp_path / "ck.pjsub"
    assert sm.export(target) > 4 * sm.D  # θ₀ cannot be rebuilt from names: it is stored
    assert b'"theta0":"stored"' in target.read_bytes()
    path.unlink()  # the file is not needed to load the export
    loaded = projbench.load_subspace(target)
    x = projbench.load_dataset("digits", "test")[0][:16]
    with torch.no_grad():
        assert torch.equal(loaded(x), sm.eval()(x))


# -- the preset ----------------------------------------------------------------------------------
def test_the_transfer_preset_compares_scratch_with_fine_tuning() -> None:
    from projbench.study.plan import plan_pair

    spec = load_spec("transfer")
    assert [p.label for p in spec.pairs] == ["lenet/mnist[5-9]"]
    assert spec.pairs[0].classes == HIGH and len(spec.seeds) == 3
    assert spec.axes["scaling"] == ["none", "said"]
    sources = spec.axes["theta0"]
    assert sources[0] == "scratch" and sources[1]["classes"] == LOW
    assert "fastfood" in [p.name for p in spec.projections]
    plan = plan_pair(spec, 0, measure=False)
    assert plan.runs["pretrain"] == (1, 1)
    assert "budget" in spec.notes
