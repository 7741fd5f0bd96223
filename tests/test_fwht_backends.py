"""FWHT backends: the compiled ``fht-cpu`` plugin against scipy and the torch backend, and the
dispatcher (availability, devices, dtypes, one fallback warning, env var and use_backend)."""

from __future__ import annotations

import sys
import warnings

import pytest
import scipy.linalg
import torch

from projbench import testing
from projbench.builtin.fwht_torch import fwht_torch
from projbench.errors import UnknownNameError
from projbench.hadamard import (
    BACKEND_ENV,
    FWHTBackend,
    fwht,
    resolve_backend,
    selected_backend,
    use_backend,
)

fwht_module = sys.modules["projbench.hadamard"]
needs_fhtcpu = pytest.mark.skipif(
    fwht_module.get_backend("fht-cpu").supports(torch.device("cpu"), torch.float32) is not None,
    reason="fht-cpu not installed (pip install 'projbench[fast]')",
)


def scipy_h(n: int) -> torch.Tensor:
    return torch.from_numpy(scipy.linalg.hadamard(n).astype("float64"))


@pytest.fixture(autouse=True)
def _fresh_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setattr(fwht_module, "_selected", None)
    monkeypatch.setattr(fwht_module, "_warned", set())


def test_fht_cpu_is_registered_with_its_limits() -> None:
    b = fwht_module.get_backend("fht-cpu")
    assert b.devices == ("cpu",) and torch.float16 not in b.dtypes and b.fuses_scale


@needs_fhtcpu
@pytest.mark.parametrize("k", [0, 1, 3, 7, 10, 13])
@pytest.mark.parametrize("batch", [(), (1,), (3,), (2, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fht_cpu_matches_scipy(k: int, batch: tuple[int, ...], dtype: torch.dtype) -> None:
    n = 1 << k
    x = torch.randn(*batch, n, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
    ref = x @ scipy_h(n)
    y = fwht(x.to(dtype), backend="fht-cpu")
    assert y.dtype == dtype and y.shape == x.shape
    tol = 1e-9 if dtype == torch.float64 else 1e-4 * n**0.5
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=tol)


@needs_fhtcpu
def test_fht_cpu_dims_scale_gradients_and_input_untouched() -> None:
    x = torch.randn(4, 64, 3, dtype=torch.float64)
    before = x.clone()
    torch.testing.assert_close(fwht(x, dim=1, normalized=True, backend="fht-cpu"),
                               fwht(x, dim=1, normalized=True, backend="torch"))
    assert torch.equal(x, before)
    torch.testing.assert_close(fwht(x[..., 0], scale=0.5, backend="fht-cpu"), fwht_torch(x[..., 0]) * 0.5)
    xg = torch.randn(2, 32, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fwht(t, normalized=True, backend="fht-cpu"), (xg,))
    # large rows: the library's blocked path
    big = torch.randn(2, 1 << 16, dtype=torch.float64)
    torch.testing.assert_close(fwht(big, backend="fht-cpu"), fwht_torch(big), rtol=1e-10, atol=1e-7)


@needs_fhtcpu
@pytest.mark.parametrize("name", ["fastfood", "fastjl"])
def test_projection_contract_with_fht_cpu(name: str) -> None:
    previous = use_backend("fht-cpu")
    try:
        testing.run_all_checks(name, d=7, D=50)
        testing.run_all_checks(name, d=20, D=300)
    finally:
        use_backend(previous)


@needs_fhtcpu
def test_unsupported_dtype_falls_back_with_one_warning() -> None:
    x = torch.randn(2, 16).to(torch.bfloat16)
    with pytest.warns(RuntimeWarning, match=r"'fht-cpu'.*bfloat16.*using 'torch'"):
        y = fwht(x, backend="fht-cpu")
    torch.testing.assert_close(y, fwht(x, backend="torch"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fwht(x, backend="fht-cpu")  # the same reason is not repeated


def test_unavailable_and_wrong_device_backends_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def never(x: torch.Tensor) -> torch.Tensor:
        calls.append("used")
        return x

    gone = FWHTBackend("gone", never, available=lambda: False)
    gpu_only = FWHTBackend("gpu-only", never, devices=("cuda",))
    broken = FWHTBackend("broken", never, available=lambda: 1 / 0 > 0)
    real = fwht_module.get_backend
    fakes = {b.name: b for b in (gone, gpu_only, broken)}
    monkeypatch.setattr(fwht_module, "get_backend",
                        lambda name=None: fakes.get(name or "", None) or real(name))
    x = torch.randn(3, 8, dtype=torch.float64)
    cases = (("gone", "not available"), ("gpu-only", "does not run on cpu"), ("broken", "raised"))
    for name, why in cases:
        with pytest.warns(RuntimeWarning, match=why):
            torch.testing.assert_close(fwht(x, backend=name), x @ scipy_h(8))
    assert not calls
    assert resolve_backend("gone", torch.device("cpu"), torch.float64).name == "torch"


def test_selection_by_env_var_and_function(monkeypatch: pytest.MonkeyPatch) -> None:
    assert selected_backend() == "torch"
    monkeypatch.setenv(BACKEND_ENV, "fht-cpu")
    assert selected_backend() == "fht-cpu" and fwht_module.get_backend().name == "fht-cpu"
    assert use_backend("torch") is None
    assert selected_backend() == "torch"  # the function wins over the environment
    assert use_backend(None) == "torch"
    assert selected_backend() == "fht-cpu"
    with pytest.raises(UnknownNameError, match="torch"):
        use_backend("no-such-backend")
    monkeypatch.setenv(BACKEND_ENV, "no-such-backend")
    with pytest.raises(UnknownNameError):
        fwht(torch.ones(4))
