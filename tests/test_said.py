"""Structure-aware scaling (SAID): θ_i = θ₀_i + λ_i (P θ'_d)_i with one trainable scale per
parameter tensor, the scales counted in d; and scaling="none" changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import projbench
from projbench.errors import InvalidArgumentError
from projbench.recipe import Recipe
from projbench.subspace import SubspaceModel
from projbench.training import train
from projbench.training_runs import RunSpec

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _lenet(seed: int = 0) -> torch.nn.Module:
    return projbench.make_model("lenet", "digits", seed=seed)


def _digits(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = projbench.load_dataset("digits", "train")
    return x[:n], y[:n]


def test_scales_are_part_of_d_and_the_projection_has_d_minus_n_columns() -> None:
    sm = SubspaceModel(_lenet(), "fastfood", d=60, seed=3, scaling="said")
    n = len(sm.parameter_names)
    assert n == 10 and sm.d == 60 and sm.projected_d == 50
    assert sm.projection.d == 50
    trainable = [p for p in sm.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trainable) == 60  # d numbers in all, scales included
    assert sm.said_scales is not None and torch.equal(sm.said_scales, torch.ones(n))


def test_at_lambda_one_the_first_step_is_the_unscaled_projections() -> None:
    said = SubspaceModel(_lenet(), "fastfood", d=60, seed=3, scaling="said")
    plain = SubspaceModel(_lenet(), "fastfood", d=50, seed=3)
    x, y = _digits(64)
    with torch.no_grad():
        assert torch.equal(said(x), plain(x))  # θ = θ₀ at the start
    torch.nn.functional.cross_entropy(said(x), y).backward()
    torch.nn.functional.cross_entropy(plain(x), y).backward()
    assert said.theta_d.grad is not None and plain.theta_d.grad is not None
    assert torch.equal(said.theta_d.grad[:50], plain.theta_d.grad)
    assert torch.equal(said.theta_d.grad[50:], torch.zeros(10))  # ⟨P θ'_d, g⟩ = 0 at θ'_d = 0


def test_scales_receive_gradients_and_learn() -> None:
    sm = SubspaceModel(_lenet(), "fastfood", d=60, seed=3, scaling="said")
    x, y = _digits(64)
    with torch.no_grad():
        sm.theta_d[:50].normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    torch.nn.functional.cross_entropy(sm(x), y).backward()
    assert sm.theta_d.grad is not None
    scale_grads = sm.theta_d.grad[50:]
    assert bool((scale_grads != 0).all()), scale_grads

    fresh = SubspaceModel(_lenet(), "fastfood", d=60, seed=3, scaling="said")
    train(fresh, _digits(), None, Recipe(lr=1e-2, epochs=3, batch_size=64), seed=0)
    scales = fresh.said_scales
    assert scales is not None and bool((scales != 1).all())
    # the scales alter the map: θ_i − θ₀_i = λ_i u_i, with u the unscaled update
    with torch.no_grad():
        m = fresh.projected_d
        update = fresh.projection(fresh.theta_d[:m])
        lam = torch.repeat_interleave(scales, torch.tensor([p.numel() for p in _lenet().parameters()]))
        assert torch.allclose(fresh.flat_parameters() - fresh.theta0, lam * update, atol=1e-6)


def test_per_layer_said_trains_d_numbers() -> None:
    sm = SubspaceModel(_lenet(), "sparse", d=30, seed=1, per_layer=True, scaling="said")
    assert sm.projected_d == 20 and all(p.d == 20 for p in sm.projections)
    x, y = _digits(32)
    torch.nn.functional.cross_entropy(sm(x), y).backward()
    assert sm.theta_d.grad is not None and sm.theta_d.grad.shape == (30,)


@pytest.mark.parametrize("d", [1, 9, 10])
def test_d_not_above_the_number_of_tensors_is_refused_in_one_line(d: int) -> None:
    with pytest.raises(InvalidArgumentError, match=r"10 tensors, so d must exceed 10") as err:
        SubspaceModel(_lenet(), "fastfood", d=d, scaling="said")
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidArgumentError, match="scaling must be one of"):
        SubspaceModel(_lenet(), "fastfood", d=50, scaling="SAID")


def test_scaling_none_is_the_default_and_saves_what_it_always_saved(tmp_path: Path) -> None:
    default = SubspaceModel(_lenet(), "fastjl", d=40, seed=2)
    none = SubspaceModel(_lenet(), "fastjl", d=40, seed=2, scaling="none")
    x, _ = _digits(16)
    with torch.no_grad():
        default.theta_d.normal_(generator=torch.Generator().manual_seed(1))
        none.theta_d.copy_(default.theta_d)
        assert torch.equal(default(x), none(x))
    extra = none.get_extra_state()
    assert set(extra) == {"version", "d", "D", "projection", "seed", "per_layer", "options"}
    assert "said_repeats" not in dict(none.named_buffers())
    none.export(tmp_path / "n.pjsub")
    header = (tmp_path / "n.pjsub").read_bytes()
    assert b'"scaling"' not in header and b'"num_classes"' not in header


def test_said_state_dict_round_trip_and_a_mismatch_is_refused() -> None:
    sm = SubspaceModel(_lenet(), "fastfood", d=60, seed=3, scaling="said")
    with torch.no_grad():
        sm.theta_d.normal_(generator=torch.Generator().manual_seed(4))
    again = SubspaceModel(_lenet(), "fastfood", d=60, seed=3, scaling="said")
    again.load_state_dict(sm.state_dict())
    x, _ = _digits(16)
    with torch.no_grad():
        assert torch.equal(again(x), sm(x))
    plain = SubspaceModel(_lenet(), "fastfood", d=60, seed=3)
    with pytest.raises(InvalidArgumentError, match="scaling='said'"):
        plain.load_state_dict(sm.state_dict())


def test_said_export_round_trip_is_bit_identical(tmp_path: Path) -> None:
    sm = SubspaceModel.from_names("lenet", "digits", "fastfood", d=60, seed=3, scaling="said")
    train(sm, _digits(), None, Recipe(lr=1e-2, epochs=2, batch_size=64), seed=0)
    path = tmp_path / "said.pjsub"
    size = sm.export(path)
    assert size < 4 * sm.D  # θ₀ and P travel as names and seeds
    loaded = projbench.load_subspace(path)
    assert loaded.scaling == "said" and loaded.d == 60 and loaded.projected_d == 50
    assert torch.equal(loaded.said_scales, sm.said_scales)
    x, _ = _digits(32)
    with torch.no_grad():
        assert torch.equal(loaded(x), sm.eval()(x))


def test_a_run_identity_names_the_scaling_only_when_it_is_not_none() -> None:
    base = RunSpec("lenet", "digits", 0, Recipe(), projection="fastfood", d=60)
    assert "scaling" not in base.identity
    said = base.with_(scaling="said")
    assert said.identity["scaling"] == "said" and said.run_id != base.run_id
    with pytest.raises(InvalidArgumentError, match="subspace runs"):
        RunSpec("lenet", "digits", 0, Recipe(), scaling="said")


def _committed_run(study: str, **match: object) -> dict:
    with open(RESULTS / study / "study.jsonl") as f:
        header = json.loads(f.readline())
        for line in f:
            record = json.loads(line)
            identity = record.get("identity") or {}
            if record.get("type") == "run" and all(identity.get(k) == v for k, v in match.items()):
                return {"header": header, "record": record}
    raise AssertionError(f"no run {match} in {study}")


def test_scaling_none_reproduces_a_committed_run_bit_for_bit(data_dir: Path) -> None:
    from projbench.training_runs import execute_run

    found = _committed_run("study-fastjl-stability", role="subspace", projection="fastfood", d=3000, seed=1)
    if found["header"]["env"].get("torch") != torch.__version__:
        pytest.skip("the committed run was made with another torch version")
    stored = found["record"]
    spec = RunSpec.from_identity(stored["identity"])
    assert spec.run_id == stored["run_id"]  # the new fields left its identity as it was
    record = execute_run(spec, os.fspath(data_dir))
    assert record["status"] == "ok"
    assert record["stats"]["train_loss"] == stored["stats"]["train_loss"]  # the same training, bit for bit
    assert record["stats"]["test_accuracy"] == stored["stats"]["test_accuracy"]
