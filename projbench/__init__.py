"""projbench: a plugin-based benchmark toolkit for random projections in deep learning.

Public API (see ``shared/DESIGN.md`` §3)::

    P = projbench.make_projection("fastjl", d=1000, D=199_210, seed=0, device="cpu")
    y = P(theta)             # (..., d) -> (..., D)
    x = P.adjoint(y)         # (..., D) -> (..., d)
    projbench.fwht(x, dim=-1, normalized=False)
    projbench.make_model("lenet", "mnist")
    projbench.SubspaceModel(model, projection="fastfood", d=500, seed=0)
    projbench.list_plugins("projections")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from projbench.architectures import Architecture, count_parameters, make_model
from projbench.datasets import DatasetSpec, load_dataset
from projbench.errors import (
    DataNotFoundError,
    DuplicateNameError,
    InvalidArgumentError,
    ProjbenchError,
    ResourceLimitError,
    UnknownNameError,
)
from projbench.fwht import FWHTBackend, fwht
from projbench.hookspecs import hookimpl
from projbench.projection import Projection, jl_min_dim, make_projection
from projbench.records import read_results, to_dataframe
from projbench.registry import Registry

if TYPE_CHECKING:
    from projbench.export import load_subspace
    from projbench.subspace import SubspaceModel


def list_plugins(kind: str = "projections") -> list[str]:
    """Registered names of ``kind``: projections, architectures, datasets, backends or suites."""
    from projbench.manager import get_registry

    return get_registry(kind).names()


def __getattr__(name: str) -> Any:  # lazy: SubspaceModel pulls in torch.func
    if name == "SubspaceModel":
        from projbench.subspace import SubspaceModel

        return SubspaceModel
    if name == "load_subspace":
        from projbench.export import load_subspace

        return load_subspace
    if name == "testing":  # contract checks for plugin authors: projbench.testing.run_all_checks
        import importlib

        return importlib.import_module("projbench.testing")
    raise AttributeError(f"module 'projbench' has no attribute {name!r}")


__all__ = [
    "Architecture",
    "DataNotFoundError",
    "DatasetSpec",
    "DuplicateNameError",
    "FWHTBackend",
    "InvalidArgumentError",
    "ProjbenchError",
    "Projection",
    "Registry",
    "ResourceLimitError",
    "SubspaceModel",
    "UnknownNameError",
    "__version__",
    "count_parameters",
    "fwht",
    "hookimpl",
    "jl_min_dim",
    "list_plugins",
    "load_dataset",
    "load_subspace",
    "make_model",
    "make_projection",
    "read_results",
    "testing",
    "to_dataframe",
]
