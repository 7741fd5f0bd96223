"""Fast Walsh–Hadamard transform: the backend contract, dispatch and autograd.

``fwht(x, dim=-1, normalized=False)`` computes y = x · H_n along ``dim`` where H_n is the
n×n Sylvester Hadamard matrix (H_1 = [1], H_2m = [[H_m, H_m], [H_m, −H_m]], entries ±1,
n = 2^k) — the same matrix as ``scipy.linalg.hadamard(n)``. With ``normalized=True`` the
result is scaled by 1/√n, making the transform orthogonal and an involution.

H is symmetric, so the backward pass is the same transform applied to the incoming gradient
(:func:`with_autograd`). Backends are plugins (hook ``projbench_register_fwht_backends``) that
meet the contract of :class:`FWHTBackend`; this module chooses one per call (:func:`use_backend`,
``$PROJBENCH_FWHT_BACKEND``, ``backend=``) and falls back to the default ``"torch"`` where the
choice cannot run. The default backend's kernel, its tuning tables and caches live in
:mod:`projbench.builtin.fwht_torch`; its public names (``fwht_torch``, ``fwht_leading``,
``hadamard_matrix``, ``TORCH_BACKEND``) can still be imported from here.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from projbench.errors import InvalidArgumentError

if TYPE_CHECKING:
    from projbench.builtin.fwht_torch import TORCH_BACKEND as TORCH_BACKEND
    from projbench.builtin.fwht_torch import fwht_leading as fwht_leading
    from projbench.builtin.fwht_torch import fwht_torch as fwht_torch
    from projbench.builtin.fwht_torch import hadamard_matrix as hadamard_matrix

DEFAULT_BACKEND = "torch"
#: names of the default backend's kernel module that this module still answers for (PEP 562)
_KERNEL_NAMES = frozenset({"TORCH_BACKEND", "fwht_leading", "fwht_torch", "hadamard_matrix"})
_KERNEL_MODULE = "projbench.builtin.fwht_torch"


@dataclass(frozen=True)
class FWHTBackend:
    """An FWHT implementation.

    ``transform(x)`` must compute the *unnormalised* x·H_n along the last dimension of a
    contiguous tensor of shape (..., n), n a power of two, and return a new tensor of the same
    shape and dtype. ``available()`` says whether it can run here (library installed, device
    present); ``devices`` and ``dtypes`` list what it supports: the dispatcher (:func:`fwht`)
    uses the backend only where all three allow it and otherwise falls back to ``"torch"``
    with one warning. With ``fuses_scale=True`` the transform also accepts a keyword
    ``scale`` and returns ``scale``·x·H_n (folded into its own passes, no extra sweep);
    otherwise the dispatcher multiplies afterwards.
    """

    name: str
    transform: Callable[[torch.Tensor], torch.Tensor]
    description: str = ""
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    available: Callable[[], bool] = field(default=lambda: True)
    fuses_scale: bool = False

    def supports(self, device: torch.device, dtype: torch.dtype) -> str | None:
        """None if the backend can transform a tensor of this device and dtype here, else why not."""
        try:
            ok = bool(self.available())
        except Exception as exc:  # noqa: BLE001 - a broken probe means "not available", never a crash
            return f"its availability check raised {type(exc).__name__}: {exc}"
        if not ok:
            return "it is not available here (library or device missing)"
        if device.type not in self.devices:
            return f"it does not run on {device.type} (devices: {', '.join(self.devices)})"
        if dtype not in self.dtypes:
            names = ", ".join(str(d).replace("torch.", "") for d in self.dtypes)
            return f"it does not support {str(dtype).replace('torch.', '')} (dtypes: {names})"
        return None


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def next_power_of_two(n: int) -> int:
    """Smallest power of two ≥ n (n ≥ 1)."""
    return 1 << max(0, math.ceil(math.log2(n))) if n > 1 else 1


def __getattr__(name: str) -> Any:
    """``fwht_torch``, ``fwht_leading``, ``hadamard_matrix`` and ``TORCH_BACKEND`` from their
    home, :mod:`projbench.builtin.fwht_torch` (imported on first access: it imports this module)."""
    if name in _KERNEL_NAMES:
        return getattr(importlib.import_module(_KERNEL_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------------------------
# Dispatch and autograd
# --------------------------------------------------------------------------------------------
#: Environment variable naming the FWHT backend used when none is passed (``backend=``) and
#: none was chosen with :func:`use_backend`.
BACKEND_ENV = "PROJBENCH_FWHT_BACKEND"
_selected: str | None = None
_warned: set[tuple[str, str, str]] = set()


def use_backend(name: str | None) -> str | None:
    """Make ``name`` the FWHT backend of every later :func:`fwht` call that passes no
    ``backend=`` (``None``: back to ``$PROJBENCH_FWHT_BACKEND`` or ``"torch"``).

    The name must be registered (else :class:`~projbench.errors.UnknownNameError` listing the
    registered ones); whether it can run is decided per call, by device and dtype. Returns the
    previous selection, so ``prev = use_backend("fht-cpu"); …; use_backend(prev)`` restores it.
    """
    global _selected
    if name is not None:
        if not isinstance(name, str):
            raise InvalidArgumentError(f"FWHT backend name must be a string, got {name!r}")
        get_backend(name)  # unknown -> UnknownNameError with the registered names
    previous, _selected = _selected, name
    return previous


def selected_backend() -> str:
    """The backend name :func:`fwht` uses without ``backend=``: :func:`use_backend`'s choice,
    else ``$PROJBENCH_FWHT_BACKEND``, else ``"torch"``."""
    return _selected or os.environ.get(BACKEND_ENV, "").strip() or DEFAULT_BACKEND


def get_backend(name: str | None = None) -> FWHTBackend:
    """The registered backend ``name`` (default: :func:`selected_backend`)."""
    from projbench.manager import get_registry

    backend: FWHTBackend = get_registry("backends").get(name or selected_backend())
    return backend


def resolve_backend(name: str | None, device: torch.device, dtype: torch.dtype) -> FWHTBackend:
    """The backend that will transform a tensor of ``device``/``dtype``: ``name`` (or the
    selected one) when its ``available()``, ``devices`` and ``dtypes`` allow it, else the
    default ``"torch"`` backend, with one warning per (backend, device type, dtype)."""
    backend = get_backend(name)
    if backend.name == DEFAULT_BACKEND:
        return backend
    why = backend.supports(device, dtype)
    if why is None:
        return backend
    key = (backend.name, device.type, str(dtype))
    if key not in _warned:
        _warned.add(key)
        warnings.warn(
            f"FWHT backend {backend.name!r} cannot transform this {str(dtype).replace('torch.', '')} "
            f"tensor on {device.type}: {why}; using {DEFAULT_BACKEND!r} instead",
            RuntimeWarning,
            stacklevel=3,
        )
    return get_backend(DEFAULT_BACKEND)


def _fused(backend: FWHTBackend) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The backend as a (x, scale) -> scale·x·H callable."""
    if backend.fuses_scale:
        return functools.partial(_call_fused, backend.transform)
    return functools.partial(_call_then_scale, backend.transform)


def _call_fused(transform: Callable[..., torch.Tensor], x: torch.Tensor, scale: float) -> torch.Tensor:
    return transform(x, scale=scale)


def _call_then_scale(transform: Callable[..., torch.Tensor], x: torch.Tensor, scale: float) -> torch.Tensor:
    y = transform(x)
    return y.mul_(scale) if scale != 1.0 else y


class _FWHTFunction(torch.autograd.Function):
    """y = scale·x·H along the last dim; dL/dx = scale·(dL/dy)·H since H is symmetric."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: torch.Tensor, transform: Callable[[torch.Tensor, float], torch.Tensor], scale: float
    ) -> torch.Tensor:
        ctx.transform = transform
        ctx.scale = scale
        return transform(x.contiguous(), scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        g = _FWHTFunction.apply(grad.contiguous(), ctx.transform, ctx.scale)
        return g, None, None


def with_autograd(
    x: torch.Tensor, transform: Callable[[torch.Tensor, float], torch.Tensor], scale: float
) -> torch.Tensor:
    """``transform(x, scale)`` (= scale·x·H along the last dim) recorded for autograd: the
    backward pass is the same transform of the incoming gradient (H is symmetric)."""
    result: torch.Tensor = _FWHTFunction.apply(x, transform, scale)
    return result


def fwht(
    x: torch.Tensor,
    dim: int = -1,
    normalized: bool = False,
    *,
    backend: str | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """scale · x · H_n along ``dim`` (Sylvester order), n = x.shape[dim] a power of two.

    ``normalized=True`` multiplies by a further 1/√n (orthogonal transform); ``scale`` is an
    extra factor that backends fold into their passes (no extra sweep). Works for any batch
    shape, float32/float64 (half types where the backend supports them), CPU and CUDA, with
    autograd. ``backend`` names a registered backend (default: :func:`selected_backend`); one
    that cannot handle this device/dtype, or is not available here, falls back to ``"torch"``
    with a warning. A length that is not a power of two raises :class:`InvalidArgumentError`:
    zero-pad to :func:`next_power_of_two` first.
    """
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(f"fwht expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0:
        raise InvalidArgumentError("fwht expects at least a 1-d tensor, got a scalar")
    if not x.is_floating_point():
        raise InvalidArgumentError(f"fwht expects a floating tensor, got dtype {x.dtype}; cast with .float()")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise InvalidArgumentError(f"fwht dim must be an integer axis, got {dim!r}")
    if not -x.dim() <= dim < x.dim():
        raise InvalidArgumentError(f"dim {dim} is out of range for a tensor of shape {tuple(x.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale):
        raise InvalidArgumentError(f"fwht scale must be a finite number, got {scale!r}")
    dim %= x.dim()
    n = x.shape[dim]
    if not is_power_of_two(n):
        raise InvalidArgumentError(
            f"fwht needs a power-of-two length along dim {dim}, got {n}; zero-pad to "
            f"{next_power_of_two(n)} (projbench.hadamard.next_power_of_two) first"
        )
    impl = resolve_backend(backend, x.device, x.dtype)
    total = float(scale) / math.sqrt(n) if normalized else float(scale)
    moved = x.movedim(dim, -1) if dim != x.dim() - 1 else x
    if x.requires_grad and torch.is_grad_enabled():
        y = with_autograd(moved, _fused(impl), total)
    else:  # no graph to record: skip the autograd Function's per-call cost
        y = _fused(impl)(moved.contiguous(), total)
    return y.movedim(-1, dim) if dim != x.dim() - 1 else y
