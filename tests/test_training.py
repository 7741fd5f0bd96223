"""The training loop: seeded determinism, divergence handling, evaluation, recipes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from projbench.errors import InvalidArgumentError
from projbench.recipe import LI_ET_AL_WEIGHT_DECAY, Recipe, default_weight_decay, recipe_for
from projbench.training import evaluate, train


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated Gaussian blobs in 4-D (a problem a linear model solves)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    y = torch.randint(0, 3, (n,), generator=g)
    x = centers[y] + torch.randn(n, 4, generator=g)
    return x, y


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_learns_separable_problem() -> None:
    res = train(mlp(), blobs(300, 0), blobs(200, 1), Recipe(epochs=5, batch_size=32, lr=1e-2), seed=0)
    assert res.status == "ok" and res.diverged_at_step is None
    assert res.test_accuracy > 0.95
    assert res.steps == 5 * math.ceil(300 / 32) and res.epochs == 5
    assert len(res.history) == 5 and res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_deterministic_by_seed_and_rng_untouched() -> None:
    recipe = Recipe(epochs=2, batch_size=16)
    data, test = blobs(100, 0), blobs(50, 1)
    state = torch.get_rng_state()
    a, b, c = mlp(), mlp(), mlp()
    ra = train(a, data, test, recipe, seed=3)
    rb = train(b, data, test, recipe, seed=3)
    train(c, data, test, recipe, seed=4)
    assert torch.equal(flat(a), flat(b)) and ra.train_loss == rb.train_loss
    assert not torch.equal(flat(a), flat(c))
    assert torch.equal(torch.get_rng_state(), state)


def test_max_steps_caps_training() -> None:
    res = train(mlp(), blobs(100, 0), None, Recipe(epochs=10, batch_size=10, max_steps=25), seed=0)
    assert res.steps == 25 and res.epochs == pytest.approx(2.5)
    assert math.isnan(res.test_accuracy)


class NaNAfter(nn.Module):
    """A linear model whose output turns NaN from forward call ``k`` (counted in train mode)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.k = k
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        if self.training:
            self.calls += 1
            if self.calls > self.k:
                out = out * float("nan")
        return out


def test_injected_nan_is_recorded_as_divergence() -> None:
    model = NaNAfter(7)
    res = train(model, blobs(100, 0), blobs(40, 1), Recipe(epochs=3, batch_size=10), seed=0)
    assert res.status == "diverged" and res.diverged_at_step == 7 and res.steps == 7
    assert res.test_accuracy > 0  # evaluated in eval mode, where this model is finite


def test_huge_learning_rate_diverges_without_crash() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    x, y = blobs(200, 0)
    recipe = Recipe(optimizer="sgd", lr=1e12, momentum=0.0, epochs=20)
    res = train(model, (x * 100, y), (x, y), recipe, seed=0)
    assert res.status == "diverged"
    assert res.diverged_at_step is not None and res.steps == res.diverged_at_step


def test_evaluate_matches_manual_and_counts_nan_rows_wrong() -> None:
    model = mlp().eval()
    x, y = blobs(57, 2)
    ev = evaluate(model, (x, y), batch_size=10)
    with torch.no_grad():
        logits = model(x)
    assert ev.n == 57
    assert ev.accuracy == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert ev.loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)

    class AlwaysNaN(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(x.shape[0], 3)
            out[:, 0] = float("nan")
            return out

    assert evaluate(AlwaysNaN(), (x, torch.zeros(57, dtype=torch.long))).accuracy == 0.0


def test_cosine_schedule_and_sgd() -> None:
    res = train(mlp(), blobs(64, 0), blobs(64, 1),
                Recipe(optimizer="sgd", lr=0.1, epochs=4, batch_size=16, schedule="cosine"), seed=0)
    assert res.status == "ok" and res.test_accuracy > 0.8


def test_recipe_defaults_and_weight_decay_by_architecture() -> None:
    r = Recipe()
    assert (r.optimizer, r.lr, r.batch_size) == ("adam", 1e-3, 128)
    assert default_weight_decay("fc") == 1e-5 and default_weight_decay("lenet") == 1e-4
    assert default_weight_decay("resnet20") == 0.0
    assert recipe_for("lenet").weight_decay == LI_ET_AL_WEIGHT_DECAY["lenet"]
    assert recipe_for("fc", lr=0.01, epochs=None).lr == 0.01
    with pytest.raises(InvalidArgumentError):
        Recipe(optimizer="rmsprop")
    with pytest.raises(InvalidArgumentError):
        Recipe(lr=-1.0)
    with pytest.raises(InvalidArgumentError):
        train(mlp(), (torch.zeros(3, 4), torch.zeros(4, dtype=torch.long)), None)


def test_trains_subspace_model() -> None:
    """Only θ_d moves; the wrapped model's θ₀ stays, and accuracy rises above chance."""
    import projbench

    names = projbench.list_plugins("projections")
    if not names:
        pytest.skip("no projection registered")
    name = "dense" if "dense" in names else names[0]
    sm = projbench.SubspaceModel(mlp(), name, d=20, seed=0)
    theta0 = sm.theta0.clone()
    res = train(sm, blobs(300, 0), blobs(200, 1), Recipe(epochs=10, batch_size=32, lr=3e-2), seed=0)
    assert torch.equal(sm.theta0, theta0) and torch.count_nonzero(sm.theta_d) > 0
    assert res.status == "ok" and res.test_accuracy > 0.8


def test_accuracy_suite_cases_and_figure() -> None:
    """The accuracy suite: a baseline case plus projection × d cases, stats relative to it."""
    import projbench
    from projbench.metrics.accuracy import BASELINE, AccuracySuite
    from projbench.suites import RunSettings, Suite

    names = projbench.list_plugins("projections")
    if not names or "digits" not in projbench.list_plugins("datasets"):
        pytest.skip("no projection or no digits dataset registered")
    proj = "dense" if "dense" in names else names[0]
    assert isinstance(AccuracySuite(), Suite)
    quick = AccuracySuite().cases([proj], RunSettings(quick=True))
    assert [c.projection for c in quick].count(BASELINE) == 1
    assert sorted(c.params["d"] for c in quick if c.projection == proj) == [16, 64, 256]
    suite = AccuracySuite(dims=(4, 128), recipe=Recipe(epochs=6, lr=3e-2), train_subset=600)
    settings = RunSettings(quick=True)
    records = []
    for case in suite.cases([proj], settings):
        out = suite.run_case(case, settings)
        assert out.status == "ok", out.error
        records.append({"suite": "accuracy", "projection": case.projection, "params": case.params,
                        "status": out.status, "stats": out.stats, "architecture": "mlp", "dataset": "digits"})
    base = records[0]["stats"]
    assert base["d"] is None and base["relative_accuracy"] == 1.0 and base["test_accuracy"] > 0.8
    by_d = {r["stats"]["d"]: r["stats"] for r in records[1:]}
    assert by_d[128]["test_accuracy"] > by_d[4]["test_accuracy"]
    for s in by_d.values():
        assert s["baseline_accuracy"] == base["test_accuracy"] and s["diverged"] is False
        assert s["relative_accuracy"] == pytest.approx(s["test_accuracy"] / base["test_accuracy"])
        assert s["steps"] == 6 * math.ceil(600 / 128)
    assert suite.figure(records) is not None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_on_cuda_subspace_deterministic() -> None:
    import projbench

    name = "fastfood" if "fastfood" in projbench.list_plugins("projections") else "dense"
    results = []
    for _ in range(2):
        sm = projbench.SubspaceModel(mlp(), name, d=20, seed=0, device="cuda")
        res = train(sm, blobs(300, 0), blobs(200, 1), Recipe(epochs=5, batch_size=32, lr=3e-2),
                    seed=0, device="cuda")
        results.append((res, sm.theta_d.detach().cpu()))
    (a, ta), (b, tb) = results
    assert a.status == "ok" and a.test_accuracy > 0.8 and ta.device.type == "cpu"
    # same seed, same run (up to GPU reduction order)
    assert abs(a.test_accuracy - b.test_accuracy) <= 0.01 and torch.allclose(ta, tb, atol=1e-4)
