"""Bad arguments to the projection API and fwht: one clear ProjbenchError each."""

from __future__ import annotations

import pytest
import torch

import projbench
from projbench.errors import InvalidArgumentError, ProjbenchError, ResourceLimitError
from projbench.hadamard import fwht
from projbench.projection import Projection

PROJECTIONS = projbench.list_plugins("projections")


def test_projection_name_must_be_a_string() -> None:
    with pytest.raises(InvalidArgumentError, match="projection name must be a string"):
        projbench.make_projection(123, d=2, D=4)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [2**70, 2**63, -(2**63) - 1, 1.5, "3", True])
def test_seed_out_of_range_or_not_an_int(seed: object) -> None:
    with pytest.raises(InvalidArgumentError, match="seed"):
        projbench.make_projection("fastjl", d=2, D=8, seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", PROJECTIONS)
def test_negative_seed_differs_from_positive(name: str) -> None:
    a = projbench.make_projection(name, d=4, D=32, seed=5).to_dense()
    b = projbench.make_projection(name, d=4, D=32, seed=-5).to_dense()
    assert not torch.equal(a, b)
    projbench.make_projection(name, d=2, D=8, seed=2**63 - 1)
    projbench.make_projection(name, d=2, D=8, seed=-(2**63))


@pytest.mark.parametrize("device", ["nope", "cuda:99" if torch.cuda.is_available() else "cuda", 3])
def test_bad_or_missing_device(device: object) -> None:
    with pytest.raises(InvalidArgumentError, match="device"):
        projbench.make_projection("fastfood", d=2, D=8, device=device)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", PROJECTIONS)
@pytest.mark.parametrize("bad", [torch.float64, torch.int64])
def test_wrong_input_dtype_is_one_clear_error(name: str, bad: torch.dtype) -> None:
    """Every projection (built-in or plugin) refuses a float64/int64 input to a float32 map."""
    p = projbench.make_projection(name, d=3, D=16)
    with pytest.raises(InvalidArgumentError, match=r"float32.*cast"):
        p(torch.ones(2, 3, dtype=bad))
    with pytest.raises(InvalidArgumentError, match=r"float32.*cast"):
        p.adjoint(torch.ones(16, dtype=bad))


def test_third_party_projection_gets_the_checks() -> None:
    class Silly(Projection):
        name = "silly-test"

        def __init__(self, d: int, D: int, **kw: object) -> None:
            super().__init__(d, D, **kw)  # type: ignore[arg-type]
            self.register_buffer("m", torch.ones(D, d))

        def forward(self, theta: torch.Tensor) -> torch.Tensor:
            return theta @ self.m.T

        def adjoint(self, y: torch.Tensor) -> torch.Tensor:
            return y @ self.m

    p = Silly(2, 3)
    with pytest.raises(InvalidArgumentError, match=r"Silly\.forward got a float64"):
        p(torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("name", ["fastfood", "fastjl"])
def test_huge_D_is_a_resource_error(name: str) -> None:
    with pytest.raises(ResourceLimitError, match="max_bytes"):
        projbench.make_projection(name, d=10, D=2**40)


@pytest.mark.parametrize("dim", ["a", 1.0, None, True])
def test_fwht_dim_must_be_an_int(dim: object) -> None:
    with pytest.raises(InvalidArgumentError, match="dim"):
        fwht(torch.ones(4), dim=dim)  # type: ignore[arg-type]


def test_fwht_scale_argument() -> None:
    x = torch.randn(3, 64, dtype=torch.float64)
    torch.testing.assert_close(fwht(x, scale=0.25), fwht(x) * 0.25)
    torch.testing.assert_close(fwht(x, normalized=True, scale=3.0), fwht(x) * 3.0 / 8)
    with pytest.raises(InvalidArgumentError, match="scale"):
        fwht(x, scale=float("nan"))


def test_errors_are_projbench_errors() -> None:
    assert issubclass(InvalidArgumentError, ProjbenchError) and issubclass(ResourceLimitError, ProjbenchError)
