"""Architecture specs and :func:`make_model`.

An :class:`Architecture` is registered by a plugin (hook ``projbench_register_architectures``)
and builds an ``nn.Module`` for a dataset's input shape (C, H, W) and number of classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from projbench.errors import InvalidArgumentError


@dataclass(frozen=True)
class Architecture:
    """``build(input_shape, num_classes)`` -> a fresh, randomly initialised ``nn.Module``.

    ``input_shape`` is (C, H, W). ``build`` raises :class:`InvalidArgumentError` for input
    shapes it does not support (e.g. a CIFAR-only ResNet on 1×28×28 input); ``supports``
    (optional) answers that question without building.
    """

    name: str
    build: Callable[[tuple[int, int, int], int], nn.Module]
    description: str = ""
    supports: Callable[[tuple[int, int, int]], bool] | None = None


def count_parameters(model: nn.Module) -> int:
    """D: the number of trainable parameters (what a subspace projection must cover)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_model(arch: str, dataset: str, *, seed: int | None = None) -> nn.Module:
    """Build architecture ``arch`` for the input shape and classes of dataset ``dataset``.

    With ``seed`` the initialisation is reproducible (``torch.manual_seed(seed)`` scoped to
    the build through ``torch.random.fork_rng``).
    """
    import torch

    from projbench.manager import get_registry

    spec: Architecture = get_registry("architectures").get(arch)
    ds = get_registry("datasets").get(dataset)
    shape, classes = tuple(ds.input_shape), int(ds.num_classes)
    if spec.supports is not None and not spec.supports(shape):  # type: ignore[arg-type]
        raise InvalidArgumentError(
            f"architecture {arch!r} does not support dataset {dataset!r} (input {shape})"
        )
    if seed is None:
        return spec.build(shape, classes)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(shape, classes)  # type: ignore[arg-type]
