"""Size options of the architectures, size_for_parameters, and make_model's RNG hygiene."""

from __future__ import annotations

import pytest
import torch

from projbench.architectures import (
    Architecture,
    count_parameters,
    count_parameters_for,
    describe_options,
    make_model,
    resolve_options,
    size_for_parameters,
)
from projbench.errors import InvalidArgumentError
from projbench.manager import get_registry

MNIST_IN, CLASSES = 784, 10


def _fc_closed_form(n: int, w: int, c: int, depth: int = 2) -> int:
    return (n + 1) * w + (depth - 1) * (w + 1) * w + (w + 1) * c


def _lenet_closed_form(c_in: int, flat_area: int, s: float) -> int:
    """D of LeNet with every channel/width multiplied by s (rounded half up, ≥ 1), 5×5 kernels."""

    def r(v: int) -> int:
        return max(1, int(v * s + 0.5))

    c1, c2, h1, h2 = r(6), r(16), r(120), r(84)
    conv = (c_in * 25 * c1 + c1) + (c1 * 25 * c2 + c2)
    return conv + (c2 * flat_area + 1) * h1 + (h1 + 1) * h2 + (h2 + 1) * 10


@pytest.mark.parametrize("arch", sorted(get_registry("architectures").names()))
@pytest.mark.parametrize("dataset", ["digits", "mnist", "cifar10"])
def test_default_options_keep_reference_counts(arch: str, dataset: str) -> None:
    spec: Architecture = get_registry("architectures").get(arch)
    ds = get_registry("datasets").get(dataset)
    shape = tuple(ds.input_shape)
    if spec.supports is not None and not spec.supports(shape):
        pytest.skip("unsupported pair")
    with torch.device("meta"):
        reference = count_parameters(spec.build(shape, ds.num_classes))  # no options at all
    assert count_parameters_for(arch, dataset) == reference
    explicit = count_parameters_for(arch, dataset, **dict(spec.options))
    assert explicit == reference


@pytest.mark.parametrize("width", [1, 7, 64, 200, 333])
def test_fc_width_closed_form(width: int) -> None:
    fc = make_model("fc", "mnist", width=width)
    assert count_parameters(fc) == _fc_closed_form(MNIST_IN, width, CLASSES)
    assert count_parameters(make_model("mlp", "mnist", width=width)) == _fc_closed_form(
        MNIST_IN, width, CLASSES, depth=1
    )
    assert count_parameters_for("fc", "mnist", width=width, depth=3) == _fc_closed_form(
        MNIST_IN, width, CLASSES, depth=3
    )


@pytest.mark.parametrize("scale", [0.01, 0.25, 0.5, 1.0, 1.5, 2.0])
def test_lenet_scale_closed_form(scale: float) -> None:
    # MNIST: 28 → 24 → 12 → 8 → 4 (flat area 16); CIFAR-10: 32 → 28 → 14 → 10 → 5 (area 25)
    assert count_parameters(make_model("lenet", "mnist", scale=scale)) == _lenet_closed_form(1, 16, scale)
    assert count_parameters_for("lenet", "cifar10", scale=scale) == _lenet_closed_form(3, 25, scale)


def test_scaled_models_run() -> None:
    for arch, dataset, opts, shape in [
        ("lenet", "mnist", {"scale": 0.3}, (1, 28, 28)),
        ("untied-lenet", "digits", {"scale": 0.5}, (1, 8, 8)),
        ("fctied-lenet", "digits", {"scale": 2.0}, (1, 8, 8)),
        ("resnet20", "cifar10", {"scale": 0.25}, (3, 32, 32)),
        ("fc", "digits", {"width": 5, "depth": 1}, (1, 8, 8)),
    ]:
        model = make_model(arch, dataset, seed=0, **opts)
        out = model(torch.randn(2, *shape))
        assert out.shape == (2, 10)
        assert torch.isfinite(out).all()
    small = make_model("resnet20", "cifar10", scale=0.25)
    assert small.stem[0].out_channels == 4 and small.fc.in_features == 16


def test_options_from_strings_and_numbers() -> None:
    assert resolve_options("fc", {"width": "100"}) == {"width": 100, "depth": 2}
    assert resolve_options("fc", {"width": 100.0}) == {"width": 100, "depth": 2}
    assert resolve_options("lenet", {"scale": "0.5"}) == {"scale": 0.5}
    assert resolve_options("lenet", {"scale": 2}) == {"scale": 2.0}


@pytest.mark.parametrize(
    ("arch", "options", "pattern"),
    [
        ("fc", {"widht": 3}, r"no option 'widht' \(did you mean 'width'\?\).*width=200, depth=2"),
        ("lenet", {"width": 3}, r"no option 'width'.*scale=1\.0"),
        ("fc", {"width": 0}, r"width must be a positive integer.*accepted options of 'fc'"),
        ("fc", {"width": "wide"}, r"width='wide' must be int.*width=200"),
        ("fc", {"width": 1.5}, r"must be int"),
        ("fc", {"width": True}, r"must be int"),
        ("lenet", {"scale": float("nan")}, r"must be float"),
        ("lenet", {"scale": "inf"}, r"must be float"),
        ("lenet", {"scale": -0.5}, r"scale must be a positive finite number.*scale=1\.0"),
        ("resnet20", {"scale": 0}, r"positive"),
    ],
)
def test_bad_options_one_line_error(arch: str, options: dict, pattern: str) -> None:
    dataset = "cifar10" if arch.startswith("resnet") else "mnist"
    with pytest.raises(InvalidArgumentError, match=pattern) as info:
        make_model(arch, dataset, **options)
    assert "\n" not in str(info.value)


def test_third_party_architecture_without_options() -> None:
    spec = Architecture("plain", lambda shape, classes: torch.nn.Linear(shape[0], classes))
    assert resolve_options(spec) == {}
    with pytest.raises(InvalidArgumentError, match="accepts no options"):
        resolve_options(spec, {"width": 3})


# --- size_for_parameters --------------------------------------------------------------------


@pytest.mark.parametrize("target", [1, 500, 5_000, 44_426, 199_210, 1_000_003])
def test_size_for_parameters_int_matches_brute_force(target: int) -> None:
    got = size_for_parameters("fc", "mnist", target)
    assert set(got) == {"width", "depth"} and got["depth"] == 2
    counts = {w: _fc_closed_form(MNIST_IN, w, CLASSES) for w in range(1, 2000)}
    best = min(counts, key=lambda w: (abs(counts[w] - target), w))
    assert got["width"] == best
    if target == 199_210:
        assert got["width"] == 200


@pytest.mark.parametrize("target", [2_000, 10_000, 44_426, 120_000])
def test_size_for_parameters_float_no_grid_point_is_closer(target: int) -> None:
    got = size_for_parameters("lenet", "mnist", target)
    d = _lenet_closed_form(1, 16, got["scale"])
    assert count_parameters_for("lenet", "mnist", **got) == d
    grid = [i / 2000 for i in range(1, 8001)]  # scales 0.0005 … 4.0
    best = min(abs(_lenet_closed_form(1, 16, s) - target) for s in grid)
    assert abs(d - target) <= best
    if target == 44_426:
        assert got == {"scale": 1.0}


def test_size_for_parameters_fixed_options_and_errors() -> None:
    got = size_for_parameters("fc", "digits", 10_000, depth=3)
    assert got["depth"] == 3
    assert count_parameters_for("fc", "digits", **got) == _fc_closed_form(64, got["width"], 10, depth=3)
    with pytest.raises(InvalidArgumentError, match="target_D"):
        size_for_parameters("fc", "mnist", 0)
    with pytest.raises(InvalidArgumentError, match="no option 'scale'"):
        size_for_parameters("fc", "mnist", 1000, option="scale")
    spec = Architecture("plain", lambda shape, classes: torch.nn.Linear(shape[0], classes))
    with pytest.raises(InvalidArgumentError, match="no size option"):
        size_for_parameters(spec, "mnist", 100)  # type: ignore[arg-type]


# --- RNG hygiene ------------------------------------------------------------------


def test_make_model_leaves_global_cpu_rng_untouched() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    make_model("lenet", "mnist", seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))


def test_make_model_does_not_reseed_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    make_model("mlp", "digits", seed=5)
    assert calls == []  # torch.manual_seed would queue a reseed of every CUDA generator


def test_seeded_model_independent_of_global_state() -> None:
    torch.manual_seed(1)
    a = make_model("fc", "digits", seed=3, width=16)
    torch.manual_seed(2)
    torch.rand(10)
    b = make_model("fc", "digits", seed=3, width=16)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = make_model("fc", "digits", seed=-3, width=16)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


@pytest.mark.parametrize("seed", [2**70, -(2**64), True, 1.5, "3"])
def test_bad_seed_is_clear(seed: object) -> None:
    with pytest.raises(InvalidArgumentError, match="seed"):
        make_model("mlp", "digits", seed=seed)  # type: ignore[arg-type]


def test_describe_options() -> None:
    assert describe_options("fc") == {
        "width": {"default": 200, "type": "int", "size": True},
        "depth": {"default": 2, "type": "int", "size": False},
    }
    assert describe_options("lenet") == {"scale": {"default": 1.0, "type": "float", "size": True}}
    for name in get_registry("architectures").names():
        spec = get_registry("architectures").get(name)
        assert spec.size_option is None or spec.size_option in spec.options
