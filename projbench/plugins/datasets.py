"""Built-in plugin ``datasets``: digits, MNIST, Fashion-MNIST and CIFAR-10.

Implementation: :mod:`projbench.builtin.datasets`.

The implementation is imported inside the hook, when the datasets registry is first filled, so
loading the plugin (``projbench --help``, errors) does not import torch.
"""

from __future__ import annotations

from typing import Any

from projbench.hookspecs import hookimpl
from projbench.registry import Registry


@hookimpl
def projbench_register_datasets(registry: Registry[Any]) -> None:
    from projbench.builtin.datasets import DATASETS

    for spec in DATASETS:
        registry.add(spec)
