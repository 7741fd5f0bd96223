"""Architectures: parameter counts against Li et al. 2018, shapes, structure of the LeNet variants."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from projbench.architectures import Architecture, count_parameters, make_model
from projbench.builtin import architectures as A
from projbench.errors import InvalidArgumentError
from projbench.manager import get_registry

MNIST, CIFAR, DIGITS = (1, 28, 28), (3, 32, 32), (1, 8, 8)

#: D stated by Li et al. 2018 (supplementary material): the independent reference
PAPER_D = [
    ("fc", MNIST, 199_210),
    ("fc", CIFAR, 656_810),
    ("lenet", MNIST, 44_426),
    ("lenet", CIFAR, 62_006),
    ("untied-lenet", MNIST, 286_334),
    ("untied-lenet", CIFAR, 658_238),
    ("fc-lenet", MNIST, 3_640_574),
    ("fc-lenet", CIFAR, 16_397_726),
]


def _build(name: str, shape: tuple[int, int, int], classes: int = 10) -> torch.nn.Module:
    spec: Architecture = get_registry("architectures").get(name)
    return spec.build(shape, classes)


@pytest.mark.parametrize(("name", "shape", "expected"), PAPER_D)
def test_parameter_count_matches_paper(name: str, shape: tuple[int, int, int], expected: int) -> None:
    assert count_parameters(_build(name, shape)) == expected


def _fctied_closed_form(c: int, s: int) -> int:
    """D of FCTied-LeNet from the construction: kernel s_in + s_out − 1 on LeNet's stage sizes."""
    s1 = s - 4
    p1 = s1 // 2
    s2 = p1 - 4
    p2 = s2 // 2
    k1, k2 = s + s1 - 1, p1 + s2 - 1
    conv = 6 * c * k1 * k1 + 6 + 16 * 6 * k2 * k2 + 16
    dense = (16 * p2 * p2 + 1) * 120 + (120 + 1) * 84 + (84 + 1) * 10
    return conv + dense


@pytest.mark.parametrize(("shape", "documented"), [(MNIST, 92_138), (CIFAR, 172_598)])
def test_fctied_lenet_count(shape: tuple[int, int, int], documented: int) -> None:
    assert _fctied_closed_form(shape[0], shape[1]) == documented
    assert count_parameters(_build("fctied-lenet", shape)) == documented


@pytest.mark.parametrize(("name", "target"), [("resnet20", 0.27e6), ("resnet18", 11.17e6)])
def test_resnet_counts_near_paper(name: str, target: float) -> None:
    d = count_parameters(_build(name, CIFAR))
    assert abs(d - target) <= 0.02 * target


def test_mlp_and_lenet_count_on_digits() -> None:
    # closed forms: 64·64+64 + 64·10+10; LeNet with "same" padding on 8×8: 8 → 4 → 4 → 2
    assert count_parameters(_build("mlp", DIGITS)) == 64 * 64 + 64 + 64 * 10 + 10
    lenet = 156 + 2416 + (16 * 2 * 2 + 1) * 120 + 121 * 84 + 85 * 10
    assert count_parameters(_build("lenet", DIGITS)) == lenet


def _all_cases() -> list[tuple[str, str]]:
    archs, datasets = get_registry("architectures"), get_registry("datasets")
    return [(a, d) for a in archs.names() for d in datasets.names()]


@pytest.mark.parametrize(("arch", "dataset"), _all_cases())
def test_forward_backward_every_supported_pair(arch: str, dataset: str) -> None:
    spec: Architecture = get_registry("architectures").get(arch)
    ds = get_registry("datasets").get(dataset)
    shape = tuple(ds.input_shape)
    if spec.supports is not None and not spec.supports(shape):
        with pytest.raises(InvalidArgumentError):
            make_model(arch, dataset)
        with pytest.raises(InvalidArgumentError):
            spec.build(shape, ds.num_classes)
        return
    model = make_model(arch, dataset, seed=0)
    x = torch.randn(2, *shape)
    out = model(x)
    assert out.shape == (2, ds.num_classes)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_supports_expected_pairs() -> None:
    archs = get_registry("architectures")
    for name in ("fc", "mlp", "lenet", "untied-lenet", "fc-lenet", "fctied-lenet"):
        assert archs.get(name).supports(DIGITS)
        assert archs.get(name).supports(MNIST)
    for name in ("resnet20", "resnet18"):
        assert archs.get(name).supports(CIFAR)
        assert not archs.get(name).supports(MNIST)
        assert not archs.get(name).supports((3, 28, 28))


def test_resnet_on_mnist_message_is_clear() -> None:
    with pytest.raises(InvalidArgumentError, match=r"3×32×32"):
        _build("resnet20", MNIST)
    with pytest.raises(InvalidArgumentError, match="does not support dataset 'mnist'"):
        make_model("resnet18", "mnist")


def test_lenet_rejects_tiny_input() -> None:
    assert not A.lenet_supports((1, 3, 3))
    with pytest.raises(InvalidArgumentError, match="4×4"):
        _build("lenet", (1, 3, 3))


def test_registered_names_and_owner() -> None:
    archs = get_registry("architectures")
    expected = {"mlp", "fc", "lenet", "untied-lenet", "fc-lenet", "fctied-lenet", "resnet20", "resnet18"}
    assert expected <= set(archs.names())
    assert all(archs.owner(n) == "architectures" for n in expected)


def test_make_model_seed_reproducible() -> None:
    a = make_model("lenet", "mnist", seed=3)
    b = make_model("lenet", "mnist", seed=3)
    c = make_model("lenet", "mnist", seed=4)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


@pytest.mark.parametrize("name", ["lenet", "untied-lenet", "fc-lenet", "fctied-lenet"])
@pytest.mark.parametrize("shape", [MNIST, CIFAR, DIGITS])
def test_lenet_variants_share_lenet_feature_sizes(name: str, shape: tuple[int, int, int]) -> None:
    x = torch.randn(2, *shape)
    ref = A.LeNet(shape, 10)
    model = _build(name, shape)
    stage_ref = ref.features[0](x)
    stage = model.features[0](x)
    assert stage.shape == stage_ref.shape
    assert model.features(x).shape == ref.features(x).shape


def test_he_normal_initialisation() -> None:
    torch.manual_seed(0)
    model = A.FCLeNet(MNIST, 10)
    w = model.features[0][1].weight
    assert abs(w.std().item() - math.sqrt(2 / 784)) < 0.01 * math.sqrt(2 / 784)
    assert torch.count_nonzero(model.features[0][1].bias) == 0


# --- LocallyConnected2d -------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 2])
def test_locally_connected_with_shared_weights_equals_conv(padding: int) -> None:
    torch.manual_seed(0)
    lc = A.LocallyConnected2d(3, 4, (9, 7), kernel_size=3, padding=padding)
    kernel = torch.randn(4, 3, 3, 3)
    bias = torch.randn(4)
    with torch.no_grad():
        lc.weight.copy_(kernel.reshape(4, -1).expand_as(lc.weight))
        lc.bias.copy_(bias.view(4, 1, 1).expand_as(lc.bias))
    x = torch.randn(5, 3, 9, 7)
    torch.testing.assert_close(lc(x), F.conv2d(x, kernel, bias, padding=padding), rtol=1e-5, atol=1e-5)


def test_locally_connected_untied_matches_loop_reference() -> None:
    torch.manual_seed(1)
    lc = A.LocallyConnected2d(2, 3, (6, 5), kernel_size=3, padding=1)
    x = torch.randn(4, 2, 6, 5)
    xp = F.pad(x, (1, 1, 1, 1))
    oh, ow = lc.output_size
    ref = torch.empty(4, 3, oh, ow)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i : i + 3, j : j + 3].reshape(4, -1)  # (N, C·k·k), order (c, u, v)
            ref[:, :, i, j] = patch @ lc.weight[i * ow + j].T + lc.bias[:, i, j]
    torch.testing.assert_close(lc(x), ref, rtol=1e-5, atol=1e-5)


def test_locally_connected_count_and_bad_input() -> None:
    lc = A.LocallyConnected2d(1, 6, (28, 28), kernel_size=5)
    assert count_parameters(lc) == 24 * 24 * 6 * (25 + 1)
    with pytest.raises(InvalidArgumentError):
        lc(torch.randn(1, 1, 27, 28))
    with pytest.raises(InvalidArgumentError):
        A.LocallyConnected2d(1, 1, (3, 3), kernel_size=5)


# --- structure of FC-LeNet / FCTied-LeNet ---------------------------------------------------


def test_fctied_every_output_sees_whole_input_with_tied_weights() -> None:
    model = A.FCTiedLeNet(MNIST, 10)
    conv = model.features[0]
    assert conv.kernel_size == (51, 51)
    x = torch.randn(1, *MNIST, requires_grad=True)
    out = conv(x)
    assert out.shape == (1, 6, 24, 24)
    for i, j in [(0, 0), (23, 23), (0, 23), (11, 7)]:
        (g,) = torch.autograd.grad(out[0, 0, i, j], x, retain_graph=True)
        assert torch.count_nonzero(g) == 28 * 28  # fully connected to the input
    # tied: shifting the input by one pixel (inside the zero padding) shifts the output
    x0 = torch.zeros(1, *MNIST)
    x0[0, 0, 5, 5] = 1.0
    x1 = torch.roll(x0, shifts=(1, 1), dims=(2, 3))
    with torch.no_grad():
        y0, y1 = conv(x0) - conv.bias.view(1, -1, 1, 1), conv(x1) - conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y1[..., 1:, 1:], y0[..., :-1, :-1])


def test_fc_lenet_first_stage_is_dense() -> None:
    model = A.FCLeNet(CIFAR, 10)
    x = torch.randn(1, *CIFAR, requires_grad=True)
    out = model.features[0](x)
    assert out.shape == (1, 6, 28, 28)
    (g,) = torch.autograd.grad(out[0, 0, 0, 0], x)
    assert torch.count_nonzero(g) == 3 * 32 * 32
