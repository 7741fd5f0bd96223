"""Recipe fields beyond lr/epochs: Adam's betas and eps reach the optimiser, the L2 term on the
effective kernels (Keras' ``l2`` as Li et al. apply it), and the learning curve."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from projbench.errors import InvalidArgumentError
from projbench.recipe import Recipe
from projbench.training import _forward_loss, _make_optimizer, kernel_l2, train
from projbench.training_runs import RunSpec


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 4, generator=g), y


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))


def test_adam_betas_and_eps_reach_the_optimizer_state() -> None:
    model = mlp()
    recipe = Recipe(beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=1e-4)
    opt = _make_optimizer([p for p in model.parameters()], recipe)
    group = opt.param_groups[0]
    assert group["betas"] == (0.8, 0.99) and group["eps"] == 1e-6 and group["weight_decay"] == 1e-4
    train(model, blobs(64, 0), None, Recipe(epochs=1, beta2=0.5, batch_size=64), seed=0)
    kernels = Recipe(weight_decay=1e-4, weight_decay_on="kernels")
    assert _make_optimizer(list(model.parameters()), kernels).param_groups[0]["weight_decay"] == 0.0


def test_beta2_changes_training_and_the_identity_only_when_set() -> None:
    data = blobs(128, 0)
    a, b = mlp(), mlp()
    train(a, data, None, Recipe(epochs=2, batch_size=32), seed=0)
    train(b, data, None, Recipe(epochs=2, batch_size=32, beta2=0.99), seed=0)
    assert not torch.equal(a[0].weight, b[0].weight)
    legacy = RunSpec("fc", "mnist", 0, Recipe())
    assert "beta2" not in legacy.identity["recipe"]  # ids of earlier studies unchanged
    assert RunSpec("fc", "mnist", 0, Recipe(beta2=0.99)).identity["recipe"]["beta2"] == 0.99
    assert legacy.run_id == RunSpec("fc", "mnist", 0, Recipe(eval_epochs=[1, 5])).run_id


@pytest.mark.parametrize(
    "bad", [{"beta2": 1.0}, {"beta1": -0.1}, {"eps": 0}, {"weight_decay_on": "biases"},
            {"eval_epochs": [0]}, {"eval_epochs": "5"}, {"beta2": True}]
)
def test_bad_recipe_fields_are_refused(bad: dict) -> None:
    with pytest.raises(InvalidArgumentError):
        Recipe(**bad)


def test_kernel_l2_is_keras_l2_on_weights_not_biases() -> None:
    model = mlp()
    recipe = Recipe(weight_decay=0.01, weight_decay_on="kernels")
    x, y = blobs(16, 1)
    model.eval()
    loss = _forward_loss(model, x, y, recipe)
    ce = torch.nn.functional.cross_entropy(model(x), y)
    closed = 0.01 * (model[0].weight.pow(2).sum() + model[3].weight.pow(2).sum())
    assert float(loss.detach()) == pytest.approx(float((ce + closed).detach()), rel=1e-6)
    assert float(kernel_l2([model[0].weight])) == pytest.approx(float(model[0].weight.pow(2).sum()))


def test_kernel_l2_of_a_subspace_model_acts_on_theta0_plus_p_theta_d() -> None:
    """Gradient of wd·Σ‖W‖² w.r.t. θ_d equals Pᵀ(2·wd·θ masked to kernels), with P dense."""
    import projbench

    sm = projbench.SubspaceModel(mlp(), "dense", d=5, seed=0)
    with torch.no_grad():
        sm.theta_d.normal_()
    wd = 0.05
    recipe = Recipe(weight_decay=wd, weight_decay_on="kernels")
    x, y = blobs(8, 2)
    sm.eval()
    ce = torch.nn.functional.cross_entropy(sm(x), y)
    (g_ce,) = torch.autograd.grad(ce, sm.theta_d)
    loss = _forward_loss(sm, x, y, recipe)
    (g,) = torch.autograd.grad(loss, sm.theta_d)
    theta = sm.flat_parameters().detach()
    mask = torch.cat([torch.full((math.prod(s),), float(len(s) >= 2)) for s in
                      (p.shape for p in sm.parameter_dict().values())])
    cols = []  # the columns of P, read off the map θ_d -> θ − θ₀
    saved = sm.theta_d.detach().clone()
    with torch.no_grad():
        for e in torch.eye(5):
            sm.theta_d.copy_(e)
            cols.append(sm.flat_parameters() - sm.theta0)
        sm.theta_d.copy_(saved)
    P = torch.stack(cols, 1)
    expected = g_ce + P.T @ (2 * wd * theta * mask)
    assert torch.allclose(g, expected, atol=1e-5)


def test_learning_curve_is_recorded_at_the_asked_epochs_and_changes_nothing() -> None:
    data, test = blobs(100, 0), blobs(60, 1)
    steps = math.ceil(100 / 20)
    a, b = mlp(), mlp()
    ra = train(a, data, test, Recipe(epochs=6, batch_size=20, eval_epochs=[1, 2, 5]), seed=1)
    rb = train(b, data, test, Recipe(epochs=6, batch_size=20, eval_epochs=[]), seed=1)
    assert [p["epoch"] for p in ra.curve] == [1, 2, 5, 6]
    assert [p["step"] for p in ra.curve] == [steps, 2 * steps, 5 * steps, 6 * steps]
    assert [p["epoch"] for p in rb.curve] == [6]
    assert torch.equal(a[0].weight, b[0].weight)  # evaluation never changes training
    assert ra.curve[-1]["test_accuracy"] == ra.test_accuracy == rb.test_accuracy
    assert all(0 <= p["test_accuracy"] <= 1 and math.isfinite(p["test_loss"]) for p in ra.curve)
    default = train(mlp(), data, test, Recipe(epochs=12, batch_size=20), seed=1)
    assert [p["epoch"] for p in default.curve] == [1, 2, 5, 10, 12]
