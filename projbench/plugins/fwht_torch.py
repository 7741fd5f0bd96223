"""Built-in plugin ``torch-fwht``: the FWHT backends that ship with projbench.

* ``"torch"`` — the default, pure PyTorch (:mod:`projbench.builtin.fwht_torch`), every device;
* ``"fht-cpu"`` — the compiled CPU transform of the optional ``fht-cpu`` package
  (:mod:`projbench.builtin.fwht_fhtcpu`); registered always, ``available()`` only where
  ``pip install 'projbench[fast]'`` installed the library, so ``projbench list backends``
  shows it either way and the dispatcher falls back to ``"torch"`` where it cannot run.

Both are built inside the hook, so loading the plugin does not import torch.
"""

from __future__ import annotations

from typing import Any

from projbench.hookspecs import hookimpl
from projbench.registry import Registry


@hookimpl
def projbench_register_fwht_backends(registry: Registry[Any]) -> None:
    from projbench.builtin.fwht_fhtcpu import FHTCPU_BACKEND
    from projbench.builtin.fwht_torch import TORCH_BACKEND

    registry.add(TORCH_BACKEND)
    registry.add(FHTCPU_BACKEND)
