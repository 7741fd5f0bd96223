"""Built-in plugin ``kronecker``: the Kronecker-product and Kronecker-sum projections
(``kronecker``, ``kronecker-sum``; implementation: :mod:`projbench.builtin.kronecker`).

The implementation is imported inside the hook, when the projections registry is first filled, so
loading the plugin (``projbench --help``, errors) does not import torch.
"""

from __future__ import annotations

from typing import Any

from projbench.hookspecs import hookimpl
from projbench.registry import Registry


@hookimpl
def projbench_register_projections(registry: Registry[Any]) -> None:
    from projbench.builtin.kronecker import KroneckerProjection, KroneckerSumProjection

    registry.add(KroneckerProjection)
    registry.add(KroneckerSumProjection)
