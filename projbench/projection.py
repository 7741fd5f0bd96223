"""The :class:`Projection` base class every projection plugin derives from.

A projection is a linear map P ∈ R^{D×d} held as an ``nn.Module`` whose random state lives in
buffers (so ``.to()`` and ``state_dict`` work). It is sampled from a CPU
``torch.Generator`` seeded with ``seed``, so the same seed gives the same matrix on every device.

* ``forward(theta)``: (..., d) -> (..., D), θ ↦ P θ
* ``adjoint(y)``: (..., D) -> (..., d), y ↦ Pᵀ y, the exact transpose
* normalisation: E‖P e_j‖² = 1 for every column j, so E‖Pθ‖² = ‖θ‖²
* the JL sketch of P is S = √(D/d)·Pᵀ : R^D → R^d with E‖Sx‖² = ‖x‖² (:meth:`sketch`)
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from projbench.errors import InvalidArgumentError, ResourceLimitError

_BASE_ARGS = ("self", "d", "D", "seed", "device", "dtype")


def _check_positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{what} must be a positive integer, got {value!r}")
    return value


#: seeds are signed 64-bit integers: s and −s give different generators, and no two seeds alias
SEED_RANGE = (-(2**63), 2**63 - 1)


def check_seed(seed: object) -> int:
    """``seed`` as an int in :data:`SEED_RANGE`, else :class:`InvalidArgumentError`."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"seed must be an integer, got {seed!r}")
    lo, hi = SEED_RANGE
    if not lo <= seed <= hi:
        raise InvalidArgumentError(
            f"seed must be a signed 64-bit integer in [-2**63, 2**63 - 1], got {seed}"
        )
    return seed


def check_device(device: object) -> torch.device:
    """``device`` (None, a string or a torch.device) as a usable torch.device, else
    :class:`InvalidArgumentError` (an unknown name, or CUDA/MPS that is not available here)."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, str | torch.device):
        raise InvalidArgumentError(f"device must be a string like 'cpu' or 'cuda:0', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InvalidArgumentError(
            f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:<index>'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError(
                f"device {device!r} is not available: torch.cuda.is_available() is False here "
                "(no CUDA driver or GPU); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidArgumentError(
                f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgumentError(f"device {device!r} is not available here; use device='cpu'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InvalidArgumentError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def check_state_budget(what: str, nbytes: int, max_bytes: object) -> None:
    """Refuse, before allocating, a state of ``nbytes`` over ``max_bytes``
    (:class:`ResourceLimitError`); ``max_bytes`` must be a positive integer."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise InvalidArgumentError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if nbytes > max_bytes:
        raise ResourceLimitError(
            f"{what} needs {nbytes:,} bytes ({nbytes / 1024**3:.2f} GiB) of state, over "
            f"max_bytes={max_bytes:,}; use a smaller D or d, or raise max_bytes (-o max_bytes=...)"
        )


def _check_input(x: object, p: Projection, what: str, expected: int) -> None:
    cls_name = type(p).__name__
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(f"{cls_name}.{what} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[-1] != expected:
        raise InvalidArgumentError(
            f"{cls_name}.{what} expects a tensor of shape (..., {expected}), got {tuple(x.shape)}"
        )
    ref = p._reference_tensor()
    if x.dtype != ref.dtype:
        raise InvalidArgumentError(
            f"{cls_name}.{what} got a {str(x.dtype).replace('torch.', '')} tensor but the projection "
            f"is {str(ref.dtype).replace('torch.', '')}; cast the input (x.to({ref.dtype})) or "
            f"build the projection with dtype={x.dtype}"
        )
    if x.device.type != ref.device.type or (
        x.device.index is not None and ref.device.index is not None and x.device.index != ref.device.index
    ):
        raise InvalidArgumentError(
            f"{cls_name}.{what} got a tensor on {x.device} but the projection is on {ref.device}; "
            "move one of them (.to(device))"
        )


class Projection(nn.Module):
    """Base class of every projection; see the module docstring for the contract.

    Subclasses set ``name``, call ``super().__init__(d, D, seed=..., device=..., dtype=...)``,
    register their random state as buffers and implement :meth:`forward` and :meth:`adjoint`.
    Projection-specific options are extra keyword-only arguments of ``__init__``; they are
    discovered from the signature (:meth:`option_names`).
    Inputs of ``forward`` and ``adjoint`` are checked for every subclass (third-party ones
    included): a tensor of shape (..., d) resp. (..., D) with the projection's dtype and device,
    else one :class:`InvalidArgumentError` — never a silent float64 result or a deep torch error.
    """

    name: ClassVar[str] = ""
    #: one line for ``projbench list projections``
    summary: ClassVar[str] = ""
    #: E‖P e_j‖² = 1. A deliberately unnormalised construction (e.g. fastjl's
    #: ``variant="report"``) sets it False, which exempts it from that one contract check.
    unit_columns: bool = True

    d: int
    D: int
    seed: int

    def __init__(
        self,
        d: int,
        D: int,
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.d = _check_positive_int(d, "d (subspace dimension)")
        self.D = _check_positive_int(D, "D (number of parameters)")
        check_seed(seed)
        if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise InvalidArgumentError(f"dtype must be a floating torch dtype, got {dtype!r}")
        self.seed = seed
        self._init_dtype = dtype
        self._init_device = check_device(device)

    # -- shape checking wrapped around every subclass's forward/adjoint ---------------------
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method, size_attr in (("forward", "d"), ("adjoint", "D")):
            fn = cls.__dict__.get(method)
            if fn is not None and not getattr(fn, "_projbench_checked", False):
                setattr(cls, method, _checked(fn, method, size_attr))

    def forward(self, theta: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """θ ↦ Pθ, shape (..., d) -> (..., D)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """y ↦ Pᵀy, shape (..., D) -> (..., d)."""
        raise NotImplementedError(f"{type(self).__name__} must implement adjoint()")

    @property
    def device(self) -> torch.device:
        """Device of the projection's state (follows ``.to()``)."""
        return self._reference_tensor().device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the projection's state (follows ``.to()``)."""
        return self._reference_tensor().dtype

    # -- derived operations ---------------------------------------------------------------
    def sketch(self, x: torch.Tensor) -> torch.Tensor:
        """The JL sketch S x = √(D/d)·Pᵀx, shape (..., D) -> (..., d); E‖Sx‖² = ‖x‖²."""
        return self.adjoint(x) * math.sqrt(self.D / self.d)

    def memory_bytes(self) -> int:
        """Bytes of state held in buffers and parameters (sparse tensors: indices + values)."""
        total = 0
        for t in list(self.buffers()) + list(self.parameters()):
            total += tensor_bytes(t)
        return total

    @torch.no_grad()
    def to_dense(self) -> torch.Tensor:
        """The (D, d) matrix P, computed as the forward of the identity; for small sizes."""
        ref = self._reference_tensor()
        eye = torch.eye(self.d, dtype=ref.dtype, device=ref.device)
        return self.forward(eye).T.contiguous()

    def _reference_tensor(self) -> torch.Tensor:
        """The first floating tensor of ``buffers()`` then ``parameters()`` (its dtype and device
        are the projection's). Every forward and adjoint asks (input checks), so the module's own
        buffers, which come first in that order, are looked at directly: walking the module tree
        cost ~25 µs a call."""
        for t in self._buffers.values():
            if t is not None and t.is_floating_point():
                return t
        for t in list(self.buffers()) + list(self.parameters()):
            if t.is_floating_point():
                return t
        return torch.empty(0, dtype=self._init_dtype, device=self._init_device)

    @classmethod
    def option_names(cls) -> list[str]:
        """Projection-specific keyword options accepted by ``__init__`` (beyond d, D, seed…)."""
        params = inspect.signature(cls.__init__).parameters
        return [
            p.name
            for p in params.values()
            if p.name not in _BASE_ARGS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        params = inspect.signature(cls.__init__).parameters
        return {
            n: params[n].default
            for n in cls.option_names()
            if params[n].default is not inspect.Parameter.empty
        }

    def extra_repr(self) -> str:
        return f"d={self.d}, D={self.D}, seed={self.seed}"


def tensor_bytes(t: torch.Tensor) -> int:
    """Storage bytes of a dense or sparse (COO/CSR/CSC) tensor."""
    if t.layout == torch.sparse_coo:
        t = t.coalesce()
        return tensor_bytes(t.indices()) + tensor_bytes(t.values())
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return sum(
            tensor_bytes(x) for x in (t.crow_indices(), t.col_indices(), t.values())
        )
    if t.layout in (torch.sparse_csc, torch.sparse_bsc):
        return sum(
            tensor_bytes(x) for x in (t.ccol_indices(), t.row_indices(), t.values())
        )
    return t.numel() * t.element_size()


def _checked(fn: Callable[..., torch.Tensor], method: str, size_attr: str) -> Callable[..., torch.Tensor]:
    @functools.wraps(fn)
    def wrapper(self: Projection, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        _check_input(x, self, method, getattr(self, size_attr))
        return fn(self, x, *args, **kwargs)

    wrapper._projbench_checked = True  # type: ignore[attr-defined]
    return wrapper


class _LinearMap(torch.autograd.Function):
    """y = A(x) for a fixed linear map A whose transpose Aᵀ is known: the backward is Aᵀ(g),
    computed by the projection's own (fast) transpose instead of autograd through every
    gather, pad and crop of A. Differentiable twice (the backward is the same Function)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: torch.Tensor, apply: Callable[[torch.Tensor], torch.Tensor],
        transpose: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        ctx.map_fn, ctx.map_t = apply, transpose
        return apply(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        return _LinearMap.apply(grad.contiguous(), ctx.map_t, ctx.map_fn), None, None


def linear_map(
    x: torch.Tensor,
    apply: Callable[[torch.Tensor], torch.Tensor],
    transpose: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``apply(x)`` whose gradient is ``transpose(grad)`` (both must be exact transposes).

    Structured projections use it so that the backward of P θ costs one adjoint Pᵀ g — the
    same passes as the forward — instead of autograd's index_select backward (an atomic
    scatter-add on CUDA) and the saved intermediates of every step.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return _LinearMap.apply(x, apply, transpose)
    return apply(x)


def column_condition_number(p: Projection, k: int, seed: int = 0) -> float:
    """Condition number σ_max/σ_min of P restricted to k random columns: P·E_S, S ⊂ {0…d−1}.

    S is a uniform random k-subset (CPU generator seeded with ``seed``); P·E_S is formed as
    the forward of the k selected unit vectors (a (D, k) matrix, so D·k must fit in memory) and
    its singular values are computed in float64. For i.i.d. Gaussian columns with D ≫ k it is
    about (1 + √(k/D))/(1 − √(k/D)); a badly scaled or degenerate construction shows up as a
    much larger value (∞ when the columns are linearly dependent).
    """
    d = p.d
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d:
        raise InvalidArgumentError(f"k must be an integer in [1, d={d}], got {k!r}")
    check_seed(seed)
    g = torch.Generator().manual_seed(seed)
    cols = torch.randperm(d, generator=g)[:k].sort().values
    ref = p._reference_tensor()
    e = torch.zeros(k, d, dtype=ref.dtype, device=ref.device)
    e[torch.arange(k), cols.to(ref.device)] = 1
    with torch.no_grad():
        sub = p(e).T.to(device="cpu", dtype=torch.float64)  # (D, k) = P·E_S
    sv = torch.linalg.svdvals(sub)
    smin, smax = float(sv.min()), float(sv.max())
    return math.inf if smin <= smax * torch.finfo(torch.float64).eps * max(sub.shape) else smax / smin


def jl_min_dim(n_points: int, eps: float) -> int:
    """Smallest k of the JL lemma (Dasgupta–Gupta): k ≥ 4 ln n / (ε²/2 − ε³/3).

    For ``n_points`` points, a Gaussian sketch to k dimensions preserves all pairwise squared
    distances within 1 ± ε with positive probability.
    """
    if n_points < 1:
        raise InvalidArgumentError(f"n_points must be >= 1, got {n_points}")
    if not 0 < eps < 1:
        raise InvalidArgumentError(f"eps must lie in (0, 1), got {eps}")
    return max(1, math.ceil(4 * math.log(max(n_points, 2)) / (eps**2 / 2 - eps**3 / 3)))


def make_projection(
    name: str,
    d: int,
    D: int,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> Projection:
    """Build the registered projection ``name`` as a (D, d) map on ``device``.

    ``options`` are the projection's own keyword options (see ``projbench list projections``);
    an unknown option raises :class:`InvalidArgumentError` listing the accepted ones.
    """
    from projbench.manager import get_registry

    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"projection name must be a string such as 'fastjl', got {name!r} "
            "(see projbench.list_plugins('projections'))"
        )
    cls = get_registry("projections").get(name)
    accepted = cls.option_names()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(f"{k}={v!r}" for k, v in cls.option_defaults().items()) or "no options"
        raise InvalidArgumentError(
            f"projection {name!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}"
        )
    proj = cls(d, D, seed=seed, device=device, dtype=dtype, **options)
    return proj.to(device) if device is not None else proj
