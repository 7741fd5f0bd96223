"""SubspaceModel: θ = θ₀ + P θ_d over any nn.Module, checked against dense references."""

from __future__ import annotations

import copy
import io
import math
import types

import pytest
import torch
from torch import nn

import projbench
from projbench.errors import InvalidArgumentError
from projbench.manager import register_plugin, unregister_plugin

TINY = "tiny-dense-subspace"


class TinyDense(projbench.Projection):
    """Reference projection for these tests: an explicit Gaussian matrix, N(0, 1/D) entries."""

    name = TINY

    def __init__(self, d: int, D: int, *, seed: int = 0, device=None, dtype=torch.float32,
                 scale: float = 1.0):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(D, d, generator=g, dtype=torch.float64) * (scale / math.sqrt(D))
        self.register_buffer("matrix", m.to(dtype=dtype, device=device))

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return theta @ self.matrix.T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.matrix


@pytest.fixture(autouse=True)
def tiny_projection():
    plugin = types.ModuleType("tiny_subspace_plugin")

    @projbench.hookimpl
    def projbench_register_projections(registry):
        registry.add(TinyDense)

    plugin.projbench_register_projections = projbench_register_projections  # type: ignore[attr-defined]
    register_plugin(plugin, "tiny_subspace_plugin")
    yield
    unregister_plugin("tiny_subspace_plugin")


def _registered() -> list[str]:
    return [n for n in projbench.list_plugins("projections") if n != TINY]


PROJECTIONS = [TINY, *_registered()]


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 4 * 4, 7), nn.ReLU(), nn.Linear(7, 4),
    )


def inputs(n: int = 5) -> torch.Tensor:
    return torch.randn(n, 1, 6, 6, generator=torch.Generator().manual_seed(1))


def flat_grad(model: nn.Module, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    (model(x) * w).sum().backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("projection", PROJECTIONS)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_output_equals_original_at_zero(projection: str, mode: str) -> None:
    model = small_model()
    reference = copy.deepcopy(model)
    sm = projbench.SubspaceModel(model, projection, d=10, seed=3)
    getattr(sm, mode)()
    getattr(reference, mode)()
    x = inputs()
    assert torch.equal(sm(x), reference(x))
    theta0 = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])
    assert torch.equal(sm.flat_parameters(), theta0)


def test_only_theta_d_is_trainable() -> None:
    model = small_model()
    D = projbench.count_parameters(model)
    sm = projbench.SubspaceModel(model, TINY, d=13)
    trainable = [(n, p) for n, p in sm.named_parameters() if p.requires_grad]
    assert [n for n, _ in trainable] == ["theta_d"]
    assert trainable[0][1].numel() == 13 and sm.d == 13 and sm.D == D
    assert projbench.count_parameters(sm) == 13
    assert torch.count_nonzero(sm.theta_d) == 0
    # θ₀ is the model's initial parameters; the model's own parameters alias it (no copy)
    start = sm.theta0.data_ptr()
    end = start + sm.theta0.numel() * sm.theta0.element_size()
    for p in sm.model.parameters():
        assert start <= p.data_ptr() < end


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_gradient_is_adjoint_of_dense_projection(projection: str) -> None:
    """∂L/∂θ_d = Pᵀ ∂L/∂θ, with P the projection's own dense matrix; also at θ_d ≠ 0."""
    model = small_model()
    sm = projbench.SubspaceModel(copy.deepcopy(model), projection, d=9, seed=1)
    sm.eval()
    with torch.no_grad():
        sm.theta_d.copy_(torch.randn(9, generator=torch.Generator().manual_seed(2)) * 0.1)
    x, w = inputs(), torch.randn(5, 4, generator=torch.Generator().manual_seed(3))
    (sm(x) * w).sum().backward()
    P = sm.projection.to_dense().double()
    # reference: the plain model at θ = θ₀ + Pθ_d, its gradient mapped back by Pᵀ
    theta = sm.theta0.double() + P @ sm.theta_d.detach().double()
    ref = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        offset = 0
        for p in ref.parameters():
            p.copy_(theta[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
    expected = P.T @ flat_grad(ref, x.double(), w.double())
    assert sm.theta_d.grad is not None and torch.count_nonzero(sm.theta_d.grad) > 0
    torch.testing.assert_close(sm.theta_d.grad.double(), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sm.flat_parameters().double(), theta, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_deterministic_by_seed(projection: str) -> None:
    def params(seed: int) -> torch.Tensor:
        sm = projbench.SubspaceModel(small_model(), projection, d=8, seed=seed)
        with torch.no_grad():
            sm.theta_d.fill_(1.0)
        return sm.flat_parameters().detach()

    assert torch.equal(params(5), params(5))
    assert not torch.equal(params(5), params(6))


def test_batchnorm_buffers_update_and_are_not_projected() -> None:
    sm = projbench.SubspaceModel(small_model(), TINY, d=6)
    bn = sm.model[1]
    before = bn.running_mean.clone()
    sm.train()
    sm(inputs() * 3 + 1)
    assert not torch.equal(bn.running_mean, before)
    assert int(bn.num_batches_tracked) == 1
    frozen = bn.running_mean.clone()
    sm.eval()
    sm(inputs())
    assert torch.equal(bn.running_mean, frozen)
    assert not sm.model.training and not sm.projection.training


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_per_layer_does_not_crop_theta_d(projection: str) -> None:
    """Tensors smaller than d (biases of 3, 7, 4 entries; d = 16) still see all of θ_d."""
    model = small_model()
    d = 16
    try:
        sm = projbench.SubspaceModel(model, projection, d=d, seed=2, per_layer=True)
    except InvalidArgumentError as exc:  # a projection may refuse d > D, with a clear message
        assert projection != TINY and "d" in str(exc)
        pytest.skip(f"{projection} refuses d > D: {exc}")
    numels = [p.numel() for p in model.parameters()]
    assert len(sm.projections) == len(numels) and any(n < d for n in numels)
    # the linear map θ_d ↦ θ − θ₀, column by column
    cols = []
    for j in range(d):
        with torch.no_grad():
            sm.theta_d.zero_()
            sm.theta_d[j] = 1.0
            cols.append(sm.flat_parameters() - sm.theta0)
    M = torch.stack(cols, dim=1)
    blocks = [P.to_dense() for P in sm.projections]
    assert all(b.shape == (n, d) for b, n in zip(blocks, numels))
    torch.testing.assert_close(M, torch.cat(blocks) / math.sqrt(len(blocks)), rtol=1e-5, atol=1e-6)
    offset = 0
    for n in numels:
        if n < d:  # columns beyond the tensor's size act on it: nothing was cropped
            assert torch.count_nonzero(M[offset:offset + n, n:]) > 0
        offset += n
    # the projections of different tensors are different draws
    assert not torch.equal(blocks[1][:3], blocks[2][:3])
    # and the backward is the transpose of the same map
    with torch.no_grad():
        sm.theta_d.zero_()
    g = torch.randn(sm.D, generator=torch.Generator().manual_seed(0))
    (sm.flat_parameters() * g).sum().backward()
    torch.testing.assert_close(sm.theta_d.grad, M.T @ g, rtol=1e-4, atol=1e-5)


def test_state_dict_stores_recipe_not_projection() -> None:
    sm = projbench.SubspaceModel(small_model(), TINY, d=7, seed=11, scale=2.0)
    with torch.no_grad():
        sm.theta_d.copy_(torch.arange(7.0) / 10)
    state = sm.state_dict()
    assert not any(k.startswith("projections") for k in state)
    assert {"theta_d", "theta0", "_extra_state"} <= set(state)
    assert state["_extra_state"]["projection"] == TINY and state["_extra_state"]["seed"] == 11
    assert state["_extra_state"]["options"] == {"scale": 2.0}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    other = projbench.SubspaceModel(small_model(seed=9), TINY, d=7, seed=0)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.seed == 11 and other.projection_options == {"scale": 2.0}
    torch.testing.assert_close(other.projection.to_dense(), sm.projection.to_dense())
    sm.eval()
    other.eval()
    x = inputs()
    torch.testing.assert_close(other(x), sm(x))
    wrong_d = projbench.SubspaceModel(small_model(), TINY, d=8)
    with pytest.raises((InvalidArgumentError, RuntimeError)):
        wrong_d.load_state_dict(state)


def test_dtype_conversion_keeps_model_tied_to_theta0() -> None:
    sm = projbench.SubspaceModel(small_model(), TINY, d=5).double()
    assert sm.theta_d.dtype == torch.float64 and sm.projection.matrix.dtype == torch.float64
    for p in sm.model.parameters():
        assert p.dtype == torch.float64
    ptr = sm.theta0.data_ptr()
    assert next(sm.model.parameters()).data_ptr() == ptr
    sm.eval()
    assert sm(inputs().double()).dtype == torch.float64


def test_frozen_parameters_pass_through() -> None:
    model = small_model()
    model[0].weight.requires_grad_(False)
    sm = projbench.SubspaceModel(model, TINY, d=4)
    assert sm.D == projbench.count_parameters(small_model()) - model[0].weight.numel()
    assert "0.weight" not in sm.parameter_names


def test_materialize_gives_plain_model() -> None:
    sm = projbench.SubspaceModel(small_model(), TINY, d=5)
    with torch.no_grad():
        sm.theta_d.normal_()
    sm.eval()
    plain = sm.materialize().eval()
    torch.testing.assert_close(plain(inputs()), sm(inputs()))


def test_invalid_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        projbench.SubspaceModel(small_model(), TINY, d=0)
    with pytest.raises(InvalidArgumentError):
        projbench.SubspaceModel(nn.ReLU(), TINY, d=3)
    with pytest.raises(projbench.UnknownNameError):
        projbench.SubspaceModel(small_model(), "no-such-projection", d=3)


def test_seed_out_of_range_is_clear() -> None:
    for seed in (2**64, -(2**63) - 1):
        with pytest.raises(InvalidArgumentError, match=r"seed must lie in"):
            projbench.SubspaceModel(small_model(), TINY, d=3, seed=seed)


def test_per_layer_seeds_hash_sign() -> None:
    """Seeds s and −s give different per-layer projections (abs(seed) once merged them)."""
    import numpy as np

    from projbench.subspace import _derived_seeds

    def per_layer_matrices(seed: int) -> list[torch.Tensor]:
        sm = projbench.SubspaceModel(small_model(), TINY, d=4, seed=seed, per_layer=True)
        return [p.matrix for p in sm.projections]

    for s in (1, 5, 12345):
        plus, minus = per_layer_matrices(s), per_layer_matrices(-s)
        assert all(not torch.equal(a, b) for a, b in zip(plus, minus, strict=True))
    # non-negative seeds keep their previous derivation (SeedSequence(s), low 31 bits)
    ref = np.random.SeedSequence(7).generate_state(5, dtype=np.uint32)
    assert _derived_seeds(7, 5) == [int(v) & 0x7FFFFFFF for v in ref]
    # distinct roots give distinct per-layer seed lists, including across the sign and the
    # 32-bit word boundary
    roots = [*range(-300, 301), 2**32, -(2**32), 2**63, -(2**63), 2**64 - 1, 2**32 + 1]
    assert len({tuple(_derived_seeds(r, 4)) for r in roots}) == len(roots)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("projection", PROJECTIONS)
def test_cuda_matches_cpu(projection: str) -> None:
    cpu = projbench.SubspaceModel(small_model(), projection, d=12, seed=4)
    gpu = projbench.SubspaceModel(small_model(), projection, d=12, seed=4, device="cuda")
    assert gpu.theta0.is_cuda and gpu.theta_d.is_cuda
    for sm in (cpu, gpu):
        with torch.no_grad():
            sm.theta_d.fill_(0.5)
        sm.eval()
    x = inputs()
    out = gpu(x.cuda())
    out.sum().backward()
    torch.testing.assert_close(out.cpu(), cpu(x), rtol=1e-4, atol=1e-4)
    assert gpu.theta_d.grad is not None and gpu.theta_d.grad.is_cuda


@pytest.mark.slow
def test_fc_mnist_fastfood_d1000_one_epoch(data_dir) -> None:
    """FC (D = 199,210) on real MNIST in a 1000-dim Fastfood subspace, one epoch: > 0.8."""
    from projbench.recipe import recipe_for
    from projbench.training import train

    if "fastfood" not in projbench.list_plugins("projections"):
        pytest.skip("fastfood not registered")
    train_data = projbench.load_dataset("mnist", "train", data_dir)
    test_data = projbench.load_dataset("mnist", "test", data_dir)
    sm = projbench.SubspaceModel(projbench.make_model("fc", "mnist", seed=0), "fastfood", d=1000, seed=0)
    assert sm.D == 199_210
    res = train(sm, train_data, test_data, recipe_for("fc", epochs=1, lr=1e-2), seed=0)
    assert res.status == "ok" and res.test_accuracy > 0.8, res
