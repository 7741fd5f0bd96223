"""Built-in plugin ``sparse``: the very sparse random projection.

Implementation: :mod:`projbench.builtin.sparse`.

The implementation is imported inside the hook, when the projections registry is first filled, so
loading the plugin (``projbench --help``, errors) does not import torch.
"""

from __future__ import annotations

from typing import Any

from projbench.hookspecs import hookimpl
from projbench.registry import Registry


@hookimpl
def projbench_register_projections(registry: Registry[Any]) -> None:
    from projbench.builtin.sparse import SparseProjection

    registry.add(SparseProjection)
