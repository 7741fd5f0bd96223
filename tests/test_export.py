"""Shipping a subspace-trained model: export / load_subspace, sizes, refusals."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import pytest
import torch

import projbench
from projbench import export as E
from projbench.builtin import model_parts
from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.subspace import SubspaceModel, state_dict_bytes
from projbench.subspace_file import IncompatibleSubspaceFileError, SubspaceFileError

SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def _inputs(dataset: str, n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *SHAPES[dataset], generator=torch.Generator().manual_seed(seed))


def _trained(arch: str, dataset: str, projection: str, d: int = 40, **kw: object) -> SubspaceModel:
    """A SubspaceModel with a random θ_d and, in train mode, BatchNorm statistics moved off their
    initial values (so that the export must carry them)."""
    sm = SubspaceModel.from_names(arch, dataset, projection, d=d, seed=7, model_seed=3, **kw)  # type: ignore[arg-type]
    with torch.no_grad():
        sm.theta_d.copy_(torch.randn(d, generator=torch.Generator().manual_seed(1), dtype=sm.theta_d.dtype))
    sm.train()
    with torch.no_grad():
        for i in range(2):
            sm(_inputs(dataset, seed=10 + i).to(sm.theta_d.dtype))
    return sm.eval()


def _rewrite(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Apply ``edit(header)`` to an export's JSON header and write it back with a valid CRC."""
    data = path.read_bytes()
    (hlen,) = struct.unpack_from("<I", data, 8)
    header = json.loads(data[12 : 12 + hlen])
    edit(header)
    head = json.dumps(header).encode()
    body = data[:8] + struct.pack("<I", len(head)) + head + data[12 + hlen : -4]
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))


CASES = [
    ("mlp", "digits", "fastfood", {}),
    ("lenet", "mnist", "fastjl", {}),
    ("lenet", "digits", "sparse", {"per_layer": True}),
    ("fc", "digits", "dense", {"architecture_options": {"width": 12}}),
    ("resnet20", "cifar10", "fastfood", {"architecture_options": {"scale": 0.25}}),
    ("lenet", "digits", "kronecker", {}),
    ("fc", "digits", "kronecker-sum", {"per_layer": True}),
]


@pytest.mark.parametrize(("arch", "dataset", "projection", "kw"), CASES)
def test_roundtrip_bit_identical(tmp_path: Path, arch: str, dataset: str, projection: str, kw: dict) -> None:
    sm = _trained(arch, dataset, projection, **kw)
    path = tmp_path / "model.pjsub"
    written = sm.export(path)
    assert written == path.stat().st_size == sm.ship_bytes()
    loaded = projbench.load_subspace(path)
    assert not loaded.training
    x = _inputs(dataset, seed=99)
    with torch.no_grad():
        assert torch.equal(loaded(x), sm(x))
        assert torch.equal(loaded.flat_parameters(), sm.flat_parameters())
    for (name, a), (_, b) in zip(sm.model.named_buffers(), loaded.model.named_buffers(), strict=True):
        assert torch.equal(a, b), name
    assert (loaded.projection_name, loaded.seed, loaded.per_layer, loaded.d) == (
        projection, 7, kw.get("per_layer", False), 40)
    assert loaded.origin == sm.origin
    # the loaded model can be shipped again, to the same bytes
    assert loaded.ship_bytes() == written


def test_batchnorm_statistics_travel(tmp_path: Path) -> None:
    sm = _trained("resnet20", "cifar10", "fastfood", architecture_options={"scale": 0.25})
    fresh = SubspaceModel.from_names("resnet20", "cifar10", "fastfood", d=40, seed=7, model_seed=3,
                                     architecture_options={"scale": 0.25})
    assert not torch.equal(sm.model.stem[1].running_mean, fresh.model.stem[1].running_mean)
    sm.export(tmp_path / "r.pjsub")
    loaded = projbench.load_subspace(tmp_path / "r.pjsub")
    assert torch.equal(loaded.model.stem[1].running_mean, sm.model.stem[1].running_mean)
    assert int(loaded.model.stem[1].num_batches_tracked) == 2


def test_float64_roundtrip(tmp_path: Path) -> None:
    sm = _trained("mlp", "digits", "fastjl", dtype=torch.float64)
    sm.export(tmp_path / "f64.pjsub")
    loaded = projbench.load_subspace(tmp_path / "f64.pjsub")
    assert loaded.theta_d.dtype == torch.float64
    x = _inputs("digits").double()
    with torch.no_grad():
        assert torch.equal(loaded(x), sm(x))


def test_sizes_ship_vs_state_dict() -> None:
    sm = _trained("lenet", "mnist", "fastfood", d=100)
    payload = E.subspace_payload(sm)
    (hlen,) = struct.unpack_from("<I", payload, 8)
    assert sm.ship_bytes() == len(payload) == 8 + 4 + hlen + 4 * 100 + 4  # LeNet has no buffers
    full = sm.materialize()
    assert state_dict_bytes(full) == 4 * 44_426
    assert state_dict_bytes(full, serialized=True) > 4 * 44_426
    # θ₀ and the wrapped model's parameters share memory: counted once
    assert state_dict_bytes(sm) == 4 * (44_426 + 100)
    extra = sm.ship_bytes(include_theta0=True) - sm.ship_bytes()
    assert 4 * 44_426 <= extra <= 4 * 44_426 + 200  # θ₀ plus its line in the tensor table
    assert sm.ship_bytes() < state_dict_bytes(full) / 50


def test_buffers_count_in_ship_bytes() -> None:
    sm = _trained("resnet20", "cifar10", "fastjl", architecture_options={"scale": 0.25})
    buffer_bytes = sum(b.numel() * b.element_size() for b in sm.model.buffers())
    assert buffer_bytes > 0
    assert sm.ship_bytes() > 4 * sm.d + buffer_bytes
    assert state_dict_bytes(sm.materialize()) == 4 * sm.D + buffer_bytes


SIZE_AT_D = [
    ("fc", "digits", "dense", {}),
    ("fc", "digits", "sparse", {}),
    ("lenet", "digits", "fastfood", {}),
    ("fc", "digits", "fastjl", {"variant": "report"}),
    ("resnet20", "cifar10", "fastjl", {"architecture_options": {"scale": 0.25}}),
    ("lenet", "digits", "kronecker-sum", {"per_layer": True}),
    ("fc", "digits", "fastfood", {"scaling": "said"}),
]


@pytest.mark.parametrize(("arch", "dataset", "projection", "kw"), SIZE_AT_D)
@pytest.mark.parametrize("d", [9, 10, 1234])
def test_size_at_another_d_is_the_size_that_model_writes(arch, dataset, projection, kw, d) -> None:  # type: ignore[no-untyped-def]
    """ship_bytes(d=…) of a small model == ship_bytes() of the model built at d (digits of d,
    shapes and offsets in the header included), with and without θ₀."""
    small = SubspaceModel.from_names(arch, dataset, projection, d=8, seed=5, **kw)
    at_d = SubspaceModel.from_names(arch, dataset, projection, d=d, seed=5, **kw)
    for include in (False, True):
        assert small.ship_bytes(d=d, include_theta0=include) == at_d.ship_bytes(include_theta0=include)
    assert small.ship_bytes(d=8) == small.ship_bytes() == len(E.subspace_payload(small))


def test_size_at_a_d_below_the_trained_scales_is_refused() -> None:
    sm = SubspaceModel.from_names("fc", "digits", "fastfood", d=8, scaling="said")
    n_scales = sm.d - sm.projected_d
    with pytest.raises(InvalidArgumentError, match=f"above the {n_scales} scales"):
        sm.ship_bytes(d=n_scales)
    with pytest.raises(InvalidArgumentError, match="integer"):
        sm.ship_bytes(d=True)  # type: ignore[arg-type]


# --- versions ---------------------------------------------------------------------------------


def test_other_version_that_reproduces_loads_with_warning(tmp_path: Path) -> None:
    sm = _trained("mlp", "digits", "fastfood")
    path = tmp_path / "m.pjsub"
    sm.export(path)
    _rewrite(path, lambda h: h.update(projbench="0.0.1", torch="1.0.0"))
    with pytest.warns(UserWarning, match=r"projbench 0\.0\.1 and torch 1\.0\.0.*rebuild bit for bit"):
        loaded = projbench.load_subspace(path)
    with torch.no_grad():
        assert torch.equal(loaded(_inputs("digits")), sm(_inputs("digits")))


def test_other_version_that_would_not_reproduce_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sm = _trained("mlp", "digits", "fastfood")
    path = tmp_path / "m.pjsub"
    sm.export(path)
    _rewrite(path, lambda h: h.update(torch="1.0.0"))
    # this "torch" initialises differently (as a new version's init could): θ₀ changes
    monkeypatch.setattr(model_parts, "he_normal_", lambda w, fan_in: torch.nn.init.normal_(w, 0.0, 0.5))
    pattern = r"would not reproduce.*θ₀.*torch 1\.0\.0"
    with pytest.raises(IncompatibleSubspaceFileError, match=pattern) as info:
        projbench.load_subspace(path)
    assert "\n" not in str(info.value)


def test_edited_fingerprint_other_version_refused_same_version_damaged(tmp_path: Path) -> None:
    sm = _trained("lenet", "digits", "fastjl")
    path = tmp_path / "m.pjsub"
    sm.export(path)
    _rewrite(path, lambda h: h["sha256"].update(projection="0" * 64))
    with pytest.raises(SubspaceFileError, match=r"damaged or edited.*rebuilt P") as info:
        projbench.load_subspace(path)
    assert not isinstance(info.value, IncompatibleSubspaceFileError)
    _rewrite(path, lambda h: h.update(projbench="0.0.1"))
    with pytest.raises(IncompatibleSubspaceFileError, match=r"would not reproduce.*projbench 0\.0\.1"):
        projbench.load_subspace(path)


def test_future_format_version_refused(tmp_path: Path) -> None:
    sm = _trained("mlp", "digits", "fastfood")
    path = tmp_path / "m.pjsub"
    sm.export(path)
    _rewrite(path, lambda h: h.update(format_version=2))
    with pytest.raises(IncompatibleSubspaceFileError, match="format version 2"):
        projbench.load_subspace(path)


# --- hostile files --------------------------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, bytes]:
    sm = _trained("mlp", "digits", "fastfood")
    good = E.subspace_payload(sm)
    flipped = bytearray(good)
    flipped[-10] ^= 0x01  # inside θ_d
    buffer = io.BytesIO()
    torch.save(sm.state_dict(), buffer)
    return {
        "empty": b"",
        "magic only": E.MAGIC,
        "truncated": good[: len(good) // 2],
        "one byte short": good[:-1],
        "bit flip": bytes(flipped),
        "random": bytes(range(256)) * 4,
        "torch.save": buffer.getvalue(),
        "json": b'{"format": "projbench-subspace"}',
    }


def test_hostile_files_one_line_error(tmp_path: Path) -> None:
    for label, data in _bad_files(tmp_path).items():
        path = tmp_path / f"{label.replace(' ', '_')}.pjsub"
        path.write_bytes(data)
        with pytest.raises(SubspaceFileError) as info:
            projbench.load_subspace(path)
        assert "\n" not in str(info.value), label
        assert str(path) in str(info.value), label
    with pytest.raises(SubspaceFileError, match="cannot read"):
        projbench.load_subspace(tmp_path / "missing.pjsub")


def test_malformed_header_fields(tmp_path: Path) -> None:
    sm = _trained("mlp", "digits", "fastfood")
    path = tmp_path / "m.pjsub"
    for edit, pattern in [
        (lambda h: h.update(d="40"), "'d'"),
        (lambda h: h.update(dtype="complex32"), "dtype"),
        (lambda h: h.update(tensors=[{"name": "theta_d"}]), "tensor table"),
        (lambda h: h["tensors"][0].update(nbytes=10**9), "does not fit"),
        (lambda h: h.update(theta0="magic"), "θ₀ mode"),
    ]:
        sm.export(path)
        _rewrite(path, edit)
        with pytest.raises(ProjbenchError, match=pattern):
            projbench.load_subspace(path)


# --- export refusals and the θ₀ extension point -------------------------------------------


def test_export_needs_origin(tmp_path: Path) -> None:
    """A model without a known origin cannot be exported until one is set."""
    sm = SubspaceModel(projbench.make_model("mlp", "digits", seed=0), "fastfood", d=8)
    sm.origin = None
    with pytest.raises(InvalidArgumentError, match="from_names"):
        sm.export(tmp_path / "x.pjsub")
    sm.origin = E.ModelOrigin("mlp", "digits", 0)
    sm.export(tmp_path / "x.pjsub")
    assert projbench.load_subspace(tmp_path / "x.pjsub").D == sm.D


def test_export_refuses_theta0_not_from_seed(tmp_path: Path) -> None:
    model = projbench.make_model("mlp", "digits", seed=0)
    with torch.no_grad():
        model[1].weight.add_(0.01)  # "burn-in"
    sm = SubspaceModel(model, "fastfood", d=8)
    sm.origin = E.ModelOrigin("mlp", "digits", 0)
    with pytest.raises(InvalidArgumentError, match="include_theta0=True"):
        sm.export(tmp_path / "x.pjsub")
    with pytest.raises(InvalidArgumentError, match="include_theta0"):
        sm.ship_bytes()
    # storing θ₀ ships it anyway, bit for bit
    size = sm.export(tmp_path / "x.pjsub", include_theta0=True)
    assert size > 4 * sm.D
    loaded = projbench.load_subspace(tmp_path / "x.pjsub")
    with torch.no_grad():
        assert torch.equal(loaded(_inputs("digits")), sm(_inputs("digits")))


def test_theta0_recipe_extension_point(tmp_path: Path) -> None:
    def nudge(model: torch.nn.Module, recipe: dict) -> None:
        with torch.no_grad():
            model[1].weight.add_(float(recipe["by"]))

    model = projbench.make_model("mlp", "digits", seed=0)
    nudge(model, {"by": 0.01})
    sm = SubspaceModel(model, "fastjl", d=8, seed=2)
    sm.origin = E.ModelOrigin("mlp", "digits", 0)
    path = tmp_path / "r.pjsub"
    small = sm.export(path, theta0_recipe={"kind": "test-nudge", "by": 0.01})
    assert small < 4 * sm.D
    with pytest.raises(InvalidArgumentError, match=r"'test-nudge'.*register_theta0_recipe"):
        projbench.load_subspace(path)
    E.register_theta0_recipe("test-nudge", nudge)
    try:
        loaded = projbench.load_subspace(path)
        with torch.no_grad():
            assert torch.equal(loaded(_inputs("digits")), sm(_inputs("digits")))
        # a recipe that does not redo the change is caught by the θ₀ fingerprint
        _rewrite(path, lambda h: h["theta0_recipe"].update(by=0.02))
        with pytest.raises(SubspaceFileError, match="θ₀"):
            projbench.load_subspace(path)
    finally:
        E._THETA0_RECIPES.pop("test-nudge", None)
    with pytest.raises(InvalidArgumentError, match="kind"):
        sm.export(path, theta0_recipe={"by": 1})


def test_unknown_architecture_in_file_is_one_line(tmp_path: Path) -> None:
    sm = _trained("mlp", "digits", "fastfood")
    path = tmp_path / "m.pjsub"
    sm.export(path)
    _rewrite(path, lambda h: h.update(architecture="not-installed-net"))
    with pytest.raises(ProjbenchError, match="not-installed-net") as info:
        projbench.load_subspace(path)
    assert "\n" not in str(info.value)


def test_make_model_is_deterministic_for_every_architecture() -> None:
    # the premise of shipping θ₀ as a seed
    for arch, dataset in [("mlp", "digits"), ("fc", "mnist"), ("lenet", "cifar10"),
                          ("untied-lenet", "digits"), ("fctied-lenet", "digits"), ("resnet20", "cifar10")]:
        a = projbench.make_model(arch, dataset, seed=11)
        torch.rand(5)
        b = projbench.make_model(arch, dataset, seed=11)
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(pa, pb), (arch, name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("projection", ["fastfood", "fastjl", "sparse", "dense", "kronecker",
                                        "kronecker-sum"])
def test_cuda_roundtrip_and_cross_device(tmp_path: Path, projection: str) -> None:
    sm = _trained("lenet", "mnist", projection, device="cuda")
    path = tmp_path / "g.pjsub"
    sm.export(path)
    loaded = projbench.load_subspace(path)
    assert loaded.theta_d.device.type == "cuda"
    x = _inputs("mnist").cuda()
    with torch.no_grad():
        assert torch.equal(loaded(x), sm(x))
        on_cpu = projbench.load_subspace(path, device="cpu")
        torch.testing.assert_close(on_cpu(x.cpu()), sm(x).cpu(), rtol=1e-4, atol=1e-5)


def test_from_names_stores_converted_options_with_defaults() -> None:
    sm = SubspaceModel.from_names("fc", "digits", "fastfood", d=4, architecture_options={"width": "12"})
    assert sm.origin is not None and dict(sm.origin.options) == {"width": 12, "depth": 2}
    assert sm.D == (64 + 1) * 12 + 13 * 12 + 13 * 10
    with pytest.raises(InvalidArgumentError, match="accepted options of 'fc'"):
        SubspaceModel.from_names("fc", "digits", "fastfood", d=4, architecture_options={"scale": 2})
