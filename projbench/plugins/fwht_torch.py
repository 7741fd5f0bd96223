"""Built-in plugin ``torch-fwht``: the FWHT backends that ship with projbench.

* ``"torch"`` — the default, pure PyTorch (:func:`projbench.fwht.fwht_torch`), every device;
* ``"fht-cpu"`` — the compiled CPU transform of the optional ``fht-cpu`` package
  (:mod:`projbench.plugins.fwht_fhtcpu`); registered always, ``available()`` only where
  ``pip install 'projbench[fast]'`` installed the library, so ``projbench list backends``
  shows it either way and the dispatcher falls back to ``"torch"`` where it cannot run.
"""

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
    from projbench.plugins.fwht_fhtcpu import FHTCPU_BACKEND

    registry.add(TORCH_BACKEND)
    registry.add(FHTCPU_BACKEND)
