"""Subspace training: θ = θ₀ + P θ_d over any ``nn.Module`` (Li et al. 2018).

:class:`SubspaceModel` wraps a model whose trainable parameters, flattened in
``named_parameters()`` order, form θ ∈ R^D. At construction it

* copies the initial trainable parameters into a flat, frozen buffer θ₀ ∈ R^D (``theta0``);
  the wrapped model's own parameters are frozen (``requires_grad=False``) and re-pointed to
  views of θ₀, so θ₀ costs no extra memory and the model's state_dict entries alias it;
* creates θ_d ∈ R^d (``theta_d``), zeros, the **only** trainable parameter;
* builds the projection P ∈ R^{D×d} with :func:`projbench.make_projection` (name, d, D, seed,
  options), on the model's device and in its dtype.

``forward(*args, **kwargs)`` computes θ = θ₀ + P θ_d once (one projection, one add), splits the
flat vector into per-parameter views and calls the model through
:func:`torch.func.functional_call` — no attribute is deleted or replaced. At θ_d = 0 the output
equals the original model's bit for bit (P·0 = 0 exactly for a linear map). Buffers (BatchNorm
running statistics) are not projected: the model's own buffers are used and update as usual in
train mode. ``train()``/``eval()``/``to()`` propagate to the model and the projection.

The gradient reaches θ_d through a custom autograd function whose backward is the projection's
exact adjoint, ∂L/∂θ_d = Pᵀ ∂L/∂θ (``adjoint`` is the exact transpose), so autograd
does not record the projection's internal graph (e.g. the FWHT stages of Fastfood).

**Per-layer projection** (``per_layer=True``): one projection P_i ∈ R^{n_i×d} per trainable
tensor i (seeds derived from ``seed`` and i with :class:`numpy.random.SeedSequence`), each
mapping the *whole* θ_d into that tensor: θ_i = θ₀_i + P_i θ_d / √k for k tensors. θ_d is never
cropped, also for tensors with n_i < d. The 1/√k keeps the stacked map's columns at unit expected
norm, E‖P e_j‖² = 1, like the global projection, so learning rates transfer.

**Structure-aware scaling** (``scaling="said"``; Aghajanyan et al. 2020, "Intrinsic
dimensionality explains the effectiveness of language model fine-tuning"): one trainable scale
λ_i per parameter tensor i, θ_i = θ₀_i + λ_i (P θ'_d)_i. As in the paper the n scales are
counted in d: θ_d ∈ R^d holds θ'_d ∈ R^{d−n} (its first d − n entries, what P maps, so P has
d − n columns) and s ∈ R^n (its last n entries), with λ = 1 + s; the model still trains d
numbers in all, and d ≤ n is refused. θ_d starts at zero, so **λ starts at 1**: θ = θ₀ at the
start as always, and the first step is exactly the unscaled projection's (∂L/∂θ'_d = Σ_i λ_i
P_iᵀ g_i = Pᵀ g at λ = 1), so SAID departs from the plain method only as the scales learn.
λ = 0 would be a stationary point — ∂L/∂θ'_d = 0 and ∂L/∂λ_i = ⟨(P θ'_d)_i, g_i⟩ = 0 at
θ'_d = 0 — and nothing would ever train. Writing λ = 1 + s keeps the whole trainable vector at
zero initially (one vector to save, export and regularise), and L2 weight decay on θ_d pulls
the scales towards 1, the unscaled projection, not towards 0. ∂L/∂s_i = ⟨(P θ'_d)_i, g_i⟩ is
zero at the very first step (θ'_d = 0) and the scales move from the second step on. With
``per_layer`` the same holds with (P θ'_d)_i = P_i θ'_d / √k. The default ``scaling="none"``
leaves the model exactly as without this option.

**State dict.** Saved: ``theta_d``, ``theta0``, the model's parameters (views of θ₀; a
``torch.save`` stores the shared storage once) and buffers, and an ``_extra_state`` entry with
the projection's *recipe* — name, seed, per_layer, options, d, D. The projection's tensors are
**not** saved (they are non-persistent buffers): they are random, reproducible from the recipe,
and can be large (dense: D·d floats). ``load_state_dict`` rebuilds the projection from the
stored recipe when it differs from the current one. θ₀ is stored even though it is reproducible
from the model's seed: D floats are cheap, and a checkpoint is then self-contained.

**Shipping** (:meth:`SubspaceModel.export`, :func:`projbench.load_subspace`): a model built by
:meth:`SubspaceModel.from_names`, or wrapping one from ``make_model(..., seed=N)``, knows its
:class:`~projbench.architectures.ModelOrigin` (architecture, dataset, model seed, options), so θ₀ and P
need not travel: the file holds names, seeds, θ_d and
the buffers, :meth:`ship_bytes` bytes against :func:`state_dict_bytes` for the full model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from projbench.architectures import ModelOrigin, origin_of
from projbench.errors import InvalidArgumentError
from projbench.projection import Projection, make_projection

STATE_VERSION = 1


#: per-tensor scalings of the projected update (module docstring)
SCALINGS = ("none", "said")


def _summed_adjoint(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The backward both projection functions share: ∂θ_d = scale·Σ_i P_iᵀ g_i over the output
    slices saved on ``ctx`` (no gradient for θ₀, the projections, slices or scale)."""
    if not ctx.needs_input_grad[0]:
        return None, None, None, None, None
    grad = grad.contiguous()
    total: torch.Tensor | None = None
    for proj, (start, stop) in zip(ctx.projections, ctx.slices):
        g = proj.adjoint(grad[start:stop])
        total = g if total is None else total + g
    assert total is not None
    if ctx.scale != 1.0:
        total = total * ctx.scale
    return total, None, None, None, None


class _Project(torch.autograd.Function):
    """u = scale·[P_1 θ_d; …; P_k θ_d] ∈ R^D with backward ∂θ_d = scale·Σ_i P_iᵀ g_i (the
    projection alone, for ``scaling="said"``, which multiplies u by the per-tensor scales)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        theta_d: torch.Tensor,
        projections: tuple[Projection, ...],
        slices: tuple[tuple[int, int], ...],
        scale: float,
        D: int,
    ) -> torch.Tensor:
        ctx.projections = projections
        ctx.slices = slices
        ctx.scale = scale
        if len(projections) == 1:
            out = projections[0](theta_d).reshape(D)
        else:
            out = torch.empty(D, dtype=theta_d.dtype, device=theta_d.device)
            for proj, (start, stop) in zip(projections, slices):
                out[start:stop] = proj(theta_d)
        return out * scale if scale != 1.0 else out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        return _summed_adjoint(ctx, grad)


class _ProjectAdd(torch.autograd.Function):
    """θ = θ₀ + scale·[P_1 θ_d; …; P_k θ_d] with backward ∂θ_d = scale·Σ_i P_iᵀ g_i.

    ``slices`` are the (start, stop) ranges of each projection's output in the flat vector.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        theta_d: torch.Tensor,
        theta0: torch.Tensor,
        projections: tuple[Projection, ...],
        slices: tuple[tuple[int, int], ...],
        scale: float,
    ) -> torch.Tensor:
        ctx.projections = projections
        ctx.slices = slices
        ctx.scale = scale
        if len(projections) == 1:
            out = projections[0](theta_d)
            if scale != 1.0:
                out = out * scale
            return torch.add(theta0, out.reshape(theta0.shape))
        out = torch.empty_like(theta0)
        for proj, (start, stop) in zip(projections, slices):
            out[start:stop] = proj(theta_d)
        if scale != 1.0:
            out.mul_(scale)
        return out.add_(theta0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        return _summed_adjoint(ctx, grad)


#: spawn key that marks a negative root seed in :func:`_derived_seeds`
_NEGATIVE_SEED_KEY = 0x6E656761  # "nega"
_SEED_MIN, _SEED_MAX = -(2**63), 2**64 - 1


def _derived_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent 31-bit seeds derived from ``seed`` by hashing (numpy SeedSequence).

    SeedSequence hashes its entropy words (32-bit pieces of a non-negative integer) with a
    spawn key into a pool, and ``generate_state`` draws from that pool. A seed s >= 0 is hashed
    as entropy s (as before); s < 0 as entropy |s| with spawn key (0x6E656761,), which the
    hash mixes in as a fifth word after padding |s| to four, so that no seed in
    [-2**63, 2**64 - 1] (at most two words) shares its words with another: s and -s differ.
    """
    entropy, key = (seed, ()) if seed >= 0 else (-seed, (_NEGATIVE_SEED_KEY,))
    state = np.random.SeedSequence(entropy, spawn_key=key).generate_state(count, dtype=np.uint32)
    return [int(s) & 0x7FFFFFFF for s in state]


def _unique_storage_bytes(tensors: Any) -> int:
    """Bytes of ``tensors`` counting memory shared by views (e.g. parameters aliasing θ₀) once:
    the union of each tensor's byte range [offset, offset + numel·element_size) per storage."""
    ranges: dict[tuple[str, int], list[tuple[int, int]]] = {}
    total = 0
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            continue
        nbytes = t.numel() * t.element_size()
        if t.layout != torch.strided or t.device.type == "meta":
            total += nbytes
            continue
        key = (str(t.device), t.untyped_storage().data_ptr())
        start = int(t.storage_offset()) * t.element_size()
        ranges.setdefault(key, []).append((start, start + nbytes))
    for spans in ranges.values():
        end = -1
        for lo, hi in sorted(spans):
            if hi <= end:
                continue
            total += hi - max(lo, end)
            end = hi
    return total


def state_dict_bytes(model: nn.Module, *, serialized: bool = False) -> int:
    """Size of ``model.state_dict()`` in bytes: the sum of numel·element_size over its tensors
    (each storage range counted once), or with ``serialized=True`` the length of its
    ``torch.save`` file. For an ordinary model this is what shipping it fully costs; compare
    with :meth:`SubspaceModel.ship_bytes`."""
    state = model.state_dict()
    if serialized:
        import io

        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getbuffer().nbytes
    return _unique_storage_bytes(state.values())


class SubspaceModel(nn.Module):
    """Train ``model`` in a random d-dimensional subspace: θ = θ₀ + P θ_d (module docstring).

    Args:
        model: any ``nn.Module``; its parameters with ``requires_grad=True`` are projected
            (others, and all buffers, pass through unchanged). It is moved to ``device``.
        projection: a registered projection name (``projbench.list_plugins("projections")``).
        d: subspace dimension, the number of trainable parameters.
        seed: seed of the projection (per-layer: the root of the per-tensor seeds).
        per_layer: one projection per parameter tensor instead of one global P.
        device: where the model, θ₀, θ_d and P live (default: the model's device).
        scaling: ``"none"`` (θ = θ₀ + P θ_d) or ``"said"`` (a trainable scale per parameter
            tensor, counted in d; see the module docstring).
        **projection_options: the projection's own keyword options.
    """

    theta0: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        projection: str = "fastfood",
        d: int = 500,
        seed: int = 0,
        per_layer: bool = False,
        device: torch.device | str | None = None,
        scaling: str = "none",
        **projection_options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise InvalidArgumentError(f"SubspaceModel wraps an nn.Module, got {type(model).__name__}")
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise InvalidArgumentError(f"d (subspace dimension) must be a positive integer, got {d!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidArgumentError(f"seed must be an integer, got {seed!r}")
        if not _SEED_MIN <= seed <= _SEED_MAX:
            raise InvalidArgumentError(f"seed must lie in [-2**63, 2**64 - 1], got {seed}")
        if scaling not in SCALINGS:
            raise InvalidArgumentError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
        if device is not None:
            model = model.to(device)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise InvalidArgumentError(
                f"{type(model).__name__} has no trainable parameters (requires_grad=True) to project"
            )
        dtypes = {p.dtype for _, p in named}
        devices = {p.device for _, p in named}
        if len(dtypes) > 1 or len(devices) > 1:
            raise InvalidArgumentError(
                "all trainable parameters must share one dtype and device; got dtypes "
                f"{sorted(map(str, dtypes))} on {sorted(map(str, devices))}: convert the model first"
            )
        dtype = named[0][1].dtype
        if not dtype.is_floating_point:
            raise InvalidArgumentError(f"trainable parameters must be floating point, got {dtype}")
        dev = named[0][1].device
        if scaling == "said" and d <= len(named):
            raise InvalidArgumentError(
                f"scaling='said' counts one scale per parameter tensor in d: {type(model).__name__} has "
                f"{len(named)} tensors, so d must exceed {len(named)} (got d={d})"
            )

        self.model = model
        self._scaling = scaling
        self._names: tuple[str, ...] = tuple(n for n, _ in named)
        self._shapes: tuple[torch.Size, ...] = tuple(p.shape for _, p in named)
        self._numels: tuple[int, ...] = tuple(p.numel() for _, p in named)
        offsets = np.cumsum((0, *self._numels)).tolist()
        self._slices: tuple[tuple[int, int], ...] = tuple(
            (int(a), int(b)) for a, b in itertools.pairwise(offsets)
        )
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()
        self.register_buffer("theta0", flat)
        for _, p in named:
            p.requires_grad_(False)
        self._tie_model_to_theta0()
        self.theta_d = nn.Parameter(torch.zeros(d, dtype=dtype, device=dev))
        if scaling == "said":  # coordinate j of θ belongs to tensor i: λ expands by these counts
            self.register_buffer(
                "said_repeats", torch.tensor(self._numels, dtype=torch.long, device=dev), persistent=False
            )
        self._recipe: dict[str, Any] = {}
        self._build_projections(projection, seed, per_layer, dict(projection_options))
        #: how θ₀ was made (architecture, dataset, model seed…); needed by :meth:`export`. A
        #: model from ``make_model(..., seed=N)`` brings its own (:func:`origin_of`)
        self.origin: ModelOrigin | None = origin_of(model)

    @classmethod
    def from_names(
        cls,
        architecture: str,
        dataset: str,
        projection: str = "fastfood",
        d: int = 500,
        seed: int = 0,
        *,
        model_seed: int = 0,
        per_layer: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        architecture_options: dict[str, Any] | None = None,
        scaling: str = "none",
        num_classes: int | None = None,
        **projection_options: Any,
    ) -> SubspaceModel:
        """``SubspaceModel(make_model(architecture, dataset, seed=model_seed,
        num_classes=num_classes, **architecture_options).to(device, dtype), projection, d, seed,
        …)`` that remembers its :class:`~projbench.architectures.ModelOrigin`, so that :meth:`export`
        can ship it as names, seeds and θ_d."""
        from projbench.architectures import make_model, resolve_options

        options = resolve_options(architecture, architecture_options)  # converted, with defaults
        origin = ModelOrigin(architecture, dataset, model_seed, options, num_classes=num_classes)
        model = make_model(architecture, dataset, seed=model_seed, num_classes=num_classes,
                           **dict(origin.options))
        if dtype is not None:
            if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
                raise InvalidArgumentError(f"dtype must be a floating torch.dtype, got {dtype!r}")
            model = model.to(dtype=dtype)
        sm = cls(model, projection, d=d, seed=seed, per_layer=per_layer, device=device, scaling=scaling,
                 **projection_options)
        sm.origin = origin
        return sm

    # -- projection management ------------------------------------------------------------
    def _build_projections(
        self, name: str, seed: int, per_layer: bool, options: dict[str, Any]
    ) -> None:
        d, D = self.projected_d, self.D
        dtype, dev = self.theta0.dtype, self.theta0.device
        if per_layer:
            seeds = _derived_seeds(seed, len(self._numels))
            projs = [
                make_projection(name, d, n, seed=s, device=dev, dtype=dtype, **options)
                for n, s in zip(self._numels, seeds)
            ]
            self._scale = 1.0 / math.sqrt(len(projs))
            self._proj_slices = self._slices
        else:
            projs = [make_projection(name, d, D, seed=seed, device=dev, dtype=dtype, **options)]
            self._scale = 1.0
            self._proj_slices = ((0, D),)
        for proj in projs:
            for p in proj.parameters():  # random state belongs in buffers; never train it
                p.requires_grad_(False)
            for m in proj.modules():  # rebuilt from the recipe on load, never saved
                m._non_persistent_buffers_set.update(m._buffers.keys())
        self.projections = nn.ModuleList(projs)
        self._recipe = {
            "projection": name, "seed": seed, "per_layer": per_layer, "options": options,
        }

    def _tie_model_to_theta0(self) -> None:
        """Re-point the model's (frozen) parameters to views of θ₀ (shared storage)."""
        with torch.no_grad():
            for name, shape, (start, stop) in zip(self._names, self._shapes, self._slices):
                param = self.model.get_parameter(name)
                param.data = self.theta0[start:stop].view(shape)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> SubspaceModel:
        out = super()._apply(fn, recurse)  # type: ignore[arg-type]
        self._tie_model_to_theta0()  # .to()/.double() copy tensors separately: share them again
        return out

    # -- properties --------------------------------------------------------------------------
    @property
    def d(self) -> int:
        """Subspace dimension (number of trainable parameters)."""
        return int(self.theta_d.numel())

    @property
    def projected_d(self) -> int:
        """Columns of P: d, or d − n with ``scaling="said"`` (n parameter tensors)."""
        return self.d - (len(self._numels) if self._scaling == "said" else 0)

    @property
    def scaling(self) -> str:
        """``"none"`` or ``"said"`` (one trainable scale per parameter tensor, counted in d)."""
        return self._scaling

    @property
    def said_scales(self) -> torch.Tensor | None:
        """λ ∈ R^n, the per-tensor scales (1 + the last n entries of θ_d; detached), or None
        without ``scaling="said"``."""
        if self._scaling != "said":
            return None
        return (1 + self.theta_d[self.projected_d:]).detach()

    @property
    def D(self) -> int:
        """Number of projected (originally trainable) parameters of the wrapped model."""
        return int(self.theta0.numel())

    @property
    def projection(self) -> Projection | nn.ModuleList:
        """The global projection P (D×d); with ``per_layer`` the ModuleList of per-tensor P_i."""
        if self.per_layer:
            return self.projections
        proj = self.projections[0]
        assert isinstance(proj, Projection)
        return proj

    @property
    def projection_name(self) -> str:
        return str(self._recipe["projection"])

    @property
    def seed(self) -> int:
        return int(self._recipe["seed"])

    @property
    def per_layer(self) -> bool:
        return bool(self._recipe["per_layer"])

    @property
    def projection_options(self) -> dict[str, Any]:
        return dict(self._recipe["options"])

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the projected parameters, in the order of the flat vector θ."""
        return self._names

    # -- the map -------------------------------------------------------------------------------
    def flat_parameters(self) -> torch.Tensor:
        """θ = θ₀ + P θ_d, shape (D,), differentiable w.r.t. θ_d; with ``scaling="said"``
        θ_i = θ₀_i + λ_i (P θ'_d)_i per tensor i (module docstring)."""
        if self._scaling == "none":
            return _ProjectAdd.apply(
                self.theta_d, self.theta0, tuple(self.projections), self._proj_slices, self._scale
            )
        m = self.projected_d
        update = _Project.apply(
            self.theta_d[:m], tuple(self.projections), self._proj_slices, self._scale, self.D
        )
        repeats = self.get_buffer("said_repeats")
        scales = torch.repeat_interleave(1 + self.theta_d[m:], repeats, output_size=self.D)
        return torch.addcmul(self.theta0, scales, update)

    def parameter_dict(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Name -> view of θ (or of ``flat``) shaped like that parameter."""
        flat = self.flat_parameters() if flat is None else flat
        # one split (backward: one cat) rather than k slices (backward: k zero-filled D-vectors)
        pieces = torch.split(flat, list(self._numels))
        return {name: piece.view(shape) for name, shape, piece in zip(self._names, self._shapes, pieces)}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's forward with parameters θ₀ + P θ_d (buffers: the model's own)."""
        return functional_call(self.model, self.parameter_dict(), args, kwargs)

    @torch.no_grad()
    def materialize(self) -> nn.Module:
        """A deep copy of the wrapped model with θ₀ + P θ_d written into ordinary parameters."""
        import copy

        clone = copy.deepcopy(self.model)
        for name, value in self.parameter_dict().items():
            param = clone.get_parameter(name)
            param.data = value.detach().clone()
            param.requires_grad_(True)
        return clone

    # -- shipping ---------------------------------------------------------------------------------
    def export(
        self,
        path: str | Path,
        *,
        include_theta0: bool = False,
        theta0_recipe: dict[str, Any] | None = None,
    ) -> int:
        """Write the few numbers that rebuild this model to ``path`` (:mod:`projbench.export`):
        names, options and seeds, θ_d and the wrapped model's buffers. Returns the bytes written.

        Needs :attr:`origin` (:meth:`from_names` sets it; a model from
        ``make_model(..., seed=N)`` brings it). θ₀ must be what the origin builds,
        unless ``include_theta0=True`` (θ₀ stored too: D more numbers) or a ``theta0_recipe``
        (see :func:`projbench.export.register_theta0_recipe`) says how to redo it. Reload with
        :func:`projbench.load_subspace`.
        """
        from projbench.export import export_subspace

        return export_subspace(self, path, include_theta0=include_theta0, theta0_recipe=theta0_recipe)

    def ship_bytes(self, *, include_theta0: bool = False, d: int | None = None) -> int:
        """Size in bytes of what :meth:`export` writes (header, θ_d, buffers, checksum).

        ``d``: the size the same model (architecture, projection name, options and seeds) would
        write with ``d`` trainable coordinates, exact without building that projection
        (:func:`projbench.export.payload_size`). Compare with :func:`state_dict_bytes` of the
        materialised model, the cost of shipping every parameter."""
        from projbench.export import payload_size

        return payload_size(self, d=d, include_theta0=include_theta0)

    # -- state dict ------------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        """The projection recipe saved in ``state_dict()`` (the projection's tensors are not);
        ``scaling`` only when it is not ``"none"``."""
        extra = {"scaling": self._scaling} if self._scaling != "none" else {}
        return {"version": STATE_VERSION, "d": self.d, "D": self.D, **self._recipe,
                "options": dict(self._recipe["options"]), **extra}

    def set_extra_state(self, state: Any) -> None:
        """Check d and D, and rebuild the projection if the saved recipe differs from ours."""
        if not isinstance(state, dict) or "projection" not in state:
            raise InvalidArgumentError(
                "not a SubspaceModel state: its _extra_state lacks the projection recipe"
            )
        if int(state["d"]) != self.d or int(state["D"]) != self.D:
            raise InvalidArgumentError(
                f"saved SubspaceModel has d={state['d']}, D={state['D']}; this one has d={self.d}, "
                f"D={self.D}: build it with the same model and d before loading"
            )
        saved_scaling = state.get("scaling", "none")
        if saved_scaling != self._scaling:
            raise InvalidArgumentError(
                f"saved SubspaceModel has scaling={saved_scaling!r}, this one scaling={self._scaling!r}: "
                "build it with the same scaling before loading"
            )
        recipe = {k: state[k] for k in ("projection", "seed", "per_layer", "options")}
        if recipe != self._recipe:
            self._build_projections(
                str(recipe["projection"]), int(recipe["seed"]), bool(recipe["per_layer"]),
                dict(recipe["options"]),
            )

    def extra_repr(self) -> str:
        said = ", scaling='said'" if self._scaling != "none" else ""
        return (f"projection={self.projection_name!r}, d={self.d}, D={self.D}, seed={self.seed}, "
                f"per_layer={self.per_layer}{said}")
