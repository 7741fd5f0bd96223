"""A first d_int90 (and a first export) on the first try: intrinsic-dim's defaults work on every
built-in pair, a missed target says whether the search range or the recipe is at fault,
--burn-in moves θ₀ before each subspace run, and a model from make_model exports as it is."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import projbench
from projbench.architectures import ModelOrigin, origin_of
from projbench.cli import cli
from projbench.errors import InvalidArgumentError
from projbench.intrinsic_defaults import clip_search, default_epochs
from projbench.intrinsic_probe import unreached_message
from projbench.recipe import Recipe
from projbench.study.store import read_study
from projbench.subspace import SubspaceModel

QUICK = ["--arch", "mlp", "--dataset", "digits", "--seeds", "1"]


def _intrinsic(tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["intrinsic-dim", *QUICK, *args, "--out", str(tmp_path)])


def _d_int90_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("d_int90 "))


# --- defaults --------------------------------------------------------------------------------


def test_the_bare_command_gives_a_first_number_on_mlp_digits(tmp_path: Path) -> None:
    """No --proj, no --d-max, no recipe: fastfood, d_max clipped to D = 4,810, lr 1e-2 and
    enough epochs for 500 steps; the search reaches its target well below D."""
    result = _intrinsic(tmp_path)
    assert result.exit_code == 0, result.output
    assert "d_max 10,000 exceeds D = 4,810" in result.output
    assert "adam lr 0.01, 42 epochs" in result.output
    line = _d_int90_line(result.stdout)
    assert line.startswith("d_int90 fastfood: ") and "not reached" not in line
    d = int(line.split(": ")[1].split()[0].replace(",", ""))
    assert 10 <= d <= 4810 // 4


@pytest.mark.parametrize(
    ("arch", "dataset", "D"),
    [("mlp", "digits", 4810), ("fc", "digits", 55210), ("lenet", "digits", 21386),
     ("untied-lenet", "digits", 67454), ("fc-lenet", "digits", 68606), ("fctied-lenet", "digits", 24890),
     ("lenet", "mnist", 44426), ("resnet20", "cifar10", 269722), ("resnet18", "cifar10", 11173962)],
)
def test_the_default_search_range_fits_every_built_in_pair(arch: str, dataset: str, D: int) -> None:
    from projbench.architectures import count_parameters_for

    assert count_parameters_for(arch, dataset) == D
    d_max, grid, note = clip_search(D, 10, 10000, None, "bisect")
    assert d_max == min(10000, D)
    assert grid is None and (note is None) == (D >= 10000)


def test_grid_points_above_D_are_dropped_with_a_line() -> None:
    _, grid, note = clip_search(4810, 10, 10000, None, "grid")
    assert grid is not None and max(grid) <= 4810 and 10 in grid
    assert note is not None and "5,000" in note and "10,000" in note
    assert clip_search(4810, 10, 10000, [10, 100], "grid")[2] is None


def test_a_search_range_with_nothing_below_D_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="below D"):
        clip_search(4810, 5000, 10000, None, "bisect")
    with pytest.raises(InvalidArgumentError, match="every grid point exceeds D"):
        clip_search(4810, 10, 10000, [5000, 9000], "grid")
    result = _intrinsic(tmp_path, "--d-min", "6000")
    assert result.exit_code != 0 and "below D = 4,810" in result.output
    assert "Traceback" not in result.output


def test_default_epochs_give_every_run_at_least_500_steps() -> None:
    assert default_epochs(1437, 128) == 42  # digits: 12 steps an epoch
    assert default_epochs(60000, 128) == 10  # MNIST: 469 steps an epoch already
    assert default_epochs(256, 128) == 250


# --- a missed target: the search range or the recipe? -------------------------------------


def test_a_recipe_that_does_not_train_is_blamed_not_d_max(tmp_path: Path) -> None:
    """lr 1e-3 for 3 epochs: the global baseline (best of lr/3, lr, 3lr) sets a target that
    subspace training at lr 1e-3 misses even at d = D, so raising d_max cannot help."""
    result = _intrinsic(tmp_path, "--proj", "fastfood", "--lr", "1e-3", "--epochs", "3", "--search", "grid",
                        "--grid", "50,100")
    assert result.exit_code == 0, result.output
    line = _d_int90_line(result.stdout)
    assert "not reached" in line and "even d = 4,810 = D reaches only" in line
    assert "raise --lr (now 0.001) or --epochs (now 3), not the grid" in line
    assert "extend the grid" not in line and "d_max" not in line


def test_a_range_that_stops_short_is_told_to_widen(tmp_path: Path) -> None:
    args = ("--proj", "fastfood", "--lr", "3e-2", "--epochs", "10", "--baseline", "local", "--d-min", "4",
            "--d-max", "16")
    result = _intrinsic(tmp_path, *args)
    assert result.exit_code == 0, result.output
    line = _d_int90_line(result.stdout)
    assert "not reached within d <= 16, but d = 4,810 = D reaches" in line
    assert "raise --d-max (e.g. --d-max 4810)" in line
    folder = next(tmp_path.iterdir())
    probes = json.loads((folder / "probes.json").read_text())
    assert [r["identity"]["d"] for r in probes.values()] == [4810]
    assert len(read_study(folder).runs) == 2  # baseline and d = 16: the probe stays outside the study
    again = _intrinsic(tmp_path, *args)  # the probe is not trained again
    assert _d_int90_line(again.stdout) == line and "0 runs trained" in again.output


def test_the_advice_follows_the_probe() -> None:
    recipe = Recipe(lr=0.01, epochs=5)
    common = {"target": 0.8, "baseline": 0.9, "tried": 100, "num_params": 4810, "recipe": recipe}
    reached = unreached_message(d_probe=4810, accuracy=0.85, diverged=False, **common)
    assert "raise --d-max (e.g. --d-max 4810)" in reached
    missed = unreached_message(d_probe=2405, accuracy=0.5, diverged=False, **common)
    assert "even d = 2,405 reaches only 0.500" in missed and "89% of baseline" in missed
    assert "raise --lr (now 0.01) or --epochs (now 5), not d_max" in missed
    assert "lower --lr" in unreached_message(d_probe=4810, accuracy=0.1, diverged=True, **common)
    assert "no larger d could be built" in unreached_message(d_probe=None, accuracy=None, diverged=False,
                                                              **common)


# --- burn-in ---------------------------------------------------------------------------------


def test_burn_in_steps_precede_every_subspace_run(tmp_path: Path) -> None:
    result = _intrinsic(tmp_path, "--proj", "fastfood", "--burn-in", "30", "--epochs", "5", "--train-subset",
                        "512", "--search", "grid", "--grid", "64,512", "--baseline", "local")
    assert result.exit_code == 0, result.output
    assert "30 burn-in steps" in result.output and "burn_in=30" in result.output
    folder = next(tmp_path.iterdir())
    assert folder.name == "intrinsic-mlp-digits-fastfood-burn-in-30"
    runs = list(read_study(folder).runs.values())
    by_role = {(r["identity"]["role"], r["identity"]["burn_in"]) for r in runs}
    assert by_role == {("baseline", 0), ("subspace", 30)}
    refused = _intrinsic(tmp_path, "--burn-in", "-1")
    assert refused.exit_code == 2 and "Traceback" not in refused.output


# --- a model from make_model carries its origin ------------------------------------------


def _random_theta_d(sm: SubspaceModel) -> SubspaceModel:
    with torch.no_grad():
        noise = torch.randn(sm.d, generator=torch.Generator().manual_seed(1), dtype=sm.theta_d.dtype)
        sm.theta_d.copy_(noise)
    return sm


def test_a_make_model_model_exports_and_loads_back(tmp_path: Path) -> None:
    model = projbench.make_model("fc", "digits", seed=4, width=12)
    sm = _random_theta_d(SubspaceModel(model.double(), "fastjl", d=20, seed=2))
    assert sm.origin == ModelOrigin("fc", "digits", 4, {"width": 12, "depth": 2})
    path = tmp_path / "fc.pjsub"
    assert sm.export(path) == path.stat().st_size < 4 * sm.D
    loaded = projbench.load_subspace(path)
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(loaded(x), sm(x))
    assert loaded.origin == sm.origin


def test_the_origin_travels_with_the_model_but_not_in_its_state() -> None:
    model = projbench.make_model("lenet", "digits", seed=7)
    assert origin_of(model) == ModelOrigin("lenet", "digits", 7, {"scale": 1.0})
    assert origin_of(copy.deepcopy(model).to(torch.float64)) == origin_of(model)
    assert all("origin" not in key for key in model.state_dict())
    assert origin_of(projbench.make_model("lenet", "digits")) is None  # no seed: not reproducible


def test_an_origin_is_checked_not_trusted(tmp_path: Path) -> None:
    unseeded = SubspaceModel(projbench.make_model("mlp", "digits"), "fastfood", d=8)
    with pytest.raises(InvalidArgumentError, match=r"make_model\(arch, dataset, seed=N\)"):
        unseeded.export(tmp_path / "x.pjsub")
    trained = projbench.make_model("mlp", "digits", seed=0)
    with torch.no_grad():
        trained[1].weight.add_(0.01)  # changed after make_model: θ₀ is no longer the origin's
    with pytest.raises(InvalidArgumentError, match="include_theta0=True"):
        SubspaceModel(trained, "fastfood", d=8).export(tmp_path / "y.pjsub")
