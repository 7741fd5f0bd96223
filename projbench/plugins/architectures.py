"""Built-in plugin ``architectures``: the architectures of Li et al. 2018, plus ResNets.

Implementation: :mod:`projbench.builtin.architectures`.

The implementation is imported inside the hook, when the architectures registry is first filled, so
loading the plugin (``projbench --help``, errors) does not import torch.
"""

from __future__ import annotations

from typing import Any

from projbench.hookspecs import hookimpl
from projbench.registry import Registry


@hookimpl
def projbench_register_architectures(registry: Registry[Any]) -> None:
    from projbench.builtin.architectures import ARCHITECTURES

    for arch in ARCHITECTURES:
        registry.add(arch)
