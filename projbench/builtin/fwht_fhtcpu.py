"""Optional FWHT backend ``fht-cpu``: the compiled SIMD + OpenMP transform of the ``fht-cpu``
package (install with ``pip install 'projbench[fast]'``).

The library transforms a C-contiguous numpy array in place along its last axis (rows in
parallel with OpenMP for 2-D arrays), computing the same unnormalised Sylvester-order x·H_n as
:func:`projbench.builtin.fwht_torch.fwht_torch`. This backend copies the input into a new tensor — multiplied
by ``scale`` in the same pass, so a normalised transform costs no extra sweep — and lets the
library transform that tensor's memory through a zero-copy numpy view. CPU only, float32 and
float64; elsewhere (CUDA, half types, library not installed) the dispatcher falls back to
``"torch"`` with one warning. Registered by the built-in ``torch-fwht`` plugin. Verified by
the same checks as the default backend (``tests/test_fwht_backends.py``). Select it with
``PROJBENCH_FWHT_BACKEND=fht-cpu``, ``projbench.hadamard.use_backend("fht-cpu")`` or
``fwht(..., backend="fht-cpu")``.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import torch

from projbench.hadamard import FWHTBackend


@functools.lru_cache(maxsize=1)
def _library() -> ModuleType | None:
    try:
        return importlib.import_module("fht_cpu")
    except Exception:  # noqa: BLE001 - not installed, or a broken binary: "not available"
        return None


def available() -> bool:
    """True when the ``fht_cpu`` package imports here."""
    return _library() is not None


def fwht_fhtcpu(x: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """scale·x·H_n along the last dim of a CPU float32/float64 tensor, by ``fht_cpu``."""
    lib = _library()
    if lib is None:  # the dispatcher checks available() first; direct calls get a clear error
        from projbench.errors import InvalidArgumentError

        raise InvalidArgumentError(
            "the fht-cpu backend needs the fht-cpu package: pip install 'projbench[fast]'"
        )
    n = x.shape[-1]
    out = torch.mul(x, scale) if scale != 1.0 else x.clone(memory_format=torch.contiguous_format)
    out = out.contiguous()
    if out.numel() == 0 or n == 1:
        return out
    arr = out.detach().view(-1, n).numpy()  # shares memory with ``out``
    if arr.shape[0] == 1:
        lib.fht(arr[0])
    else:
        lib.fht(arr, num_threads=max(1, torch.get_num_threads()))
    return out


FHTCPU_BACKEND = FWHTBackend(
    name="fht-cpu",
    transform=fwht_fhtcpu,
    description="compiled SIMD/OpenMP FWHT of the fht-cpu package (CPU only; install the 'fast' extra)",
    devices=("cpu",),
    dtypes=(torch.float32, torch.float64),
    available=available,
    fuses_scale=True,
)

