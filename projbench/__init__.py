"""projbench: a plugin-based benchmark toolkit for random projections in deep learning.

Public API::

    P = projbench.make_projection("fastjl", d=1000, D=199_210, seed=0, device="cpu")
    y = P(theta)             # (..., d) -> (..., D)
    x = P.adjoint(y)         # (..., D) -> (..., d)
    projbench.fwht(x, dim=-1, normalized=False)
    projbench.make_model("lenet", "mnist")
    projbench.SubspaceModel(model, projection="fastfood", d=500, seed=0)
    projbench.list_plugins("projections")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from projbench.allocator import tune_cpu_allocator
from projbench.errors import (
    DataNotFoundError,
    DuplicateNameError,
    InvalidArgumentError,
    ProjbenchError,
    ResourceLimitError,
    UnknownNameError,
)
from projbench.hookspecs import hookimpl
from projbench.records import read_results, to_dataframe
from projbench.registry import Registry

if TYPE_CHECKING:
    from projbench import testing
    from projbench.architectures import Architecture, count_parameters, make_model
    from projbench.datasets import DatasetSpec, load_dataset
    from projbench.hadamard import FWHTBackend, fwht
    from projbench.projection import Projection, jl_min_dim, make_projection
    from projbench.study.api import Study, compare_studies, read_study
    from projbench.subspace import SubspaceModel
    from projbench.subspace_loading import load_subspace

#: public names that need torch, imported on first access (PEP 562) so that ``import projbench``,
#: ``projbench --help`` and command-line errors stay fast: name -> defining module
_LAZY: dict[str, str] = {
    "Architecture": "projbench.architectures",
    "count_parameters": "projbench.architectures",
    "make_model": "projbench.architectures",
    "DatasetSpec": "projbench.datasets",
    "load_dataset": "projbench.datasets",
    "FWHTBackend": "projbench.hadamard",
    "fwht": "projbench.hadamard",
    "Projection": "projbench.projection",
    "jl_min_dim": "projbench.projection",
    "make_projection": "projbench.projection",
    "SubspaceModel": "projbench.subspace",
    "load_subspace": "projbench.subspace_loading",
    "Study": "projbench.study.api",
    "read_study": "projbench.study.api",
    "compare_studies": "projbench.study.api",
}


def list_plugins(kind: str = "projections") -> list[str]:
    """Registered names of ``kind``: projections, architectures, datasets, backends or suites."""
    from projbench.manager import get_registry

    return get_registry(kind).names()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    if name == "testing":  # contract checks for plugin authors: projbench.testing.run_all_checks
        return importlib.import_module("projbench.testing")
    raise AttributeError(f"module 'projbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"testing"})


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
    "Study",
    "SubspaceModel",
    "UnknownNameError",
    "__version__",
    "compare_studies",
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
    "read_study",
    "testing",
    "to_dataframe",
    "tune_cpu_allocator",
]
