"""Built-in plugin: the default pure-PyTorch FWHT backend ``"torch"``."""

from __future__ import annotations

import torch

from projbench.fwht import FWHTBackend, fwht_torch
from projbench.hookspecs import hookimpl
from projbench.registry import Registry

TORCH_BACKEND = FWHTBackend(
    name="torch",
    transform=fwht_torch,
    fuses_scale=True,
    description="pure PyTorch, radix-2^k dense Hadamard blocks (CPU and CUDA)",
    dtypes=(torch.float16, torch.bfloat16, torch.float32, torch.float64),
)


@hookimpl
def projbench_register_fwht_backends(registry: Registry[FWHTBackend]) -> None:
    registry.add(TORCH_BACKEND)
