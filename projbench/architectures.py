"""Architecture specs, :func:`make_model` and size search (:func:`size_for_parameters`).

An :class:`Architecture` is registered by a plugin (hook ``projbench_register_architectures``)
and builds an ``nn.Module`` for a dataset's input shape (C, H, W) and number of classes.

**Size options.** An architecture may declare keyword options of its ``build`` (``options``:
name → default), e.g. ``fc`` has ``width`` (hidden units per layer) and ``lenet`` has ``scale``
(a factor on every channel count and dense width). The defaults reproduce the reference
architecture exactly (Li et al.'s parameter counts). ``size_option`` names the option that
grows the model; the number of parameters D must be non-decreasing in it, which is what
:func:`size_for_parameters` relies on to find the option value whose D is closest to a target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from projbench.errors import InvalidArgumentError, closest_match

#: the inclusive range torch's generators accept as a seed
_SEED_MIN, _SEED_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True)
class Architecture:
    """``build(input_shape, num_classes, **options)`` -> a fresh, randomly initialised module.

    ``input_shape`` is (C, H, W). ``build`` raises :class:`InvalidArgumentError` for input
    shapes it does not support (e.g. a CIFAR-only ResNet on 1×28×28 input); ``supports``
    (optional) answers that question without building.

    ``options`` maps each keyword option ``build`` accepts to its default; the type of the
    default is the option's type (int, float, bool or str), and :func:`make_model` converts and
    checks values against it before calling ``build`` (which checks ranges, e.g. width ≥ 1).
    ``size_option`` is the option that sets the model's size (D non-decreasing in it), used by
    :func:`size_for_parameters`; ``None`` when the architecture has no size knob.
    """

    name: str
    build: Callable[..., nn.Module]
    description: str = ""
    supports: Callable[[tuple[int, int, int]], bool] | None = None
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    size_option: str | None = None


def count_parameters(model: nn.Module) -> int:
    """D: the number of trainable parameters (what a subspace projection must cover)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _options_text(spec: Architecture) -> str:
    if not spec.options:
        return f"architecture {spec.name!r} accepts no options"
    accepted = ", ".join(f"{k}={v!r}" for k, v in spec.options.items())
    return f"accepted options of {spec.name!r} (defaults): {accepted}"


def _convert(spec: Architecture, key: str, value: Any) -> Any:
    """``value`` converted to the type of ``spec.options[key]``'s default, or a one-line error."""
    default = spec.options[key]
    kind = type(default)
    bad = InvalidArgumentError(
        f"architecture {spec.name!r}: option {key}={value!r} must be {kind.__name__} "
        f"(default {default!r}); {_options_text(spec)}"
    )
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise bad
    if kind is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if kind is float:
        if isinstance(value, bool):
            raise bad
        try:
            out = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(out):
            raise bad
        return out
    if kind is str:
        if isinstance(value, str):
            return value
        raise bad
    return value


def resolve_options(arch: str | Architecture, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full option dict of ``arch``: its defaults updated by ``options``, each converted to
    the default's type. Unknown option or badly typed value -> :class:`InvalidArgumentError`
    naming the accepted options."""
    spec = _spec(arch)
    given = dict(options or {})
    resolved = dict(spec.options)
    for key, value in given.items():
        if key not in spec.options:
            near = closest_match(str(key), spec.options)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise InvalidArgumentError(f"architecture {spec.name!r} has no option {key!r}{hint}; "
                                       f"{_options_text(spec)}")
        resolved[key] = _convert(spec, key, value)
    return resolved


def describe_options(arch: str | Architecture) -> dict[str, dict[str, Any]]:
    """Option name -> ``{"default": value, "type": "int"|"float"|…, "size": bool}`` of ``arch``
    (``size`` marks the :attr:`Architecture.size_option`); for ``list`` displays and JSON."""
    spec = _spec(arch)
    return {k: {"default": v, "type": type(v).__name__, "size": k == spec.size_option}
            for k, v in spec.options.items()}


def _spec(arch: str | Architecture) -> Architecture:
    if isinstance(arch, Architecture):
        return arch
    from projbench.manager import get_registry

    spec: Architecture = get_registry("architectures").get(arch)
    return spec


def _dataset_shape(dataset: str) -> tuple[tuple[int, int, int], int]:
    from projbench.manager import get_registry

    ds = get_registry("datasets").get(dataset)
    c, h, w = (int(v) for v in ds.input_shape)
    return (c, h, w), int(ds.num_classes)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"seed must be an integer, got {seed!r}")
    if not _SEED_MIN <= seed <= _SEED_MAX:
        raise InvalidArgumentError(f"seed must lie in [-2**63, 2**64 - 1], got {seed}")
    return seed


def _check_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InvalidArgumentError(f"num_classes must be a positive integer, got {num_classes!r}")
    return num_classes


def _build(
    spec: Architecture, dataset: str, options: dict[str, Any], num_classes: int | None = None
) -> nn.Module:
    shape, classes = _dataset_shape(dataset)
    if num_classes is not None:
        classes = num_classes
    if spec.supports is not None and not spec.supports(shape):
        raise InvalidArgumentError(
            f"architecture {spec.name!r} does not support dataset {dataset!r} (input {shape})"
        )
    if not options:
        return spec.build(shape, classes)
    try:
        return spec.build(shape, classes, **options)
    except InvalidArgumentError as err:  # a bad option value: say which options exist
        if options == dict(spec.options):
            raise
        raise InvalidArgumentError(f"architecture {spec.name!r}: {err}; {_options_text(spec)}") from None


def make_model(
    arch: str, dataset: str, *, seed: int | None = None, num_classes: int | None = None, **options: Any
) -> nn.Module:
    """Build architecture ``arch`` for the input shape and classes of dataset ``dataset``.

    ``num_classes`` (default: the dataset's) sets the number of outputs instead, for a task
    that keeps k of the dataset's classes (:func:`projbench.datasets.select_classes`).

    ``options`` are the architecture's declared options (``Architecture.options``, e.g.
    ``width=100`` for ``fc``, ``scale=0.5`` for ``lenet``); unknown names or bad values raise
    :class:`InvalidArgumentError` naming the accepted options.

    With ``seed`` the initialisation is reproducible: the build runs with the CPU generator (and,
    if CUDA is initialised, every CUDA generator) seeded with ``seed`` inside
    ``torch.random.fork_rng``, so the caller's CPU and CUDA random states are restored
    afterwards. (``torch.manual_seed`` is not used: it would also queue a reseed of every CUDA
    generator, applied at CUDA's lazy initialisation and never undone.) The built-ins create
    their tensors on the CPU, so the same seed gives the same θ₀ on every machine with the same
    torch version.

    A model built with a ``seed`` (``arch`` given by name) carries its origin, a
    :class:`ModelOrigin` (arch, dataset, seed, the options with their
    defaults), so that ``SubspaceModel(make_model(...), ...)`` can be exported as names, seeds
    and θ_d (:func:`origin_of` reads it). Without a seed the initialisation is
    not reproducible and the model carries none.
    """
    import torch

    spec = _spec(arch)
    resolved = resolve_options(spec, options)
    num_classes = _check_num_classes(num_classes)
    if seed is None:
        return _build(spec, dataset, resolved, num_classes)
    seed = _check_seed(seed)
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        model = _build(spec, dataset, resolved, num_classes)
    return _with_origin(model, arch, dataset, seed, resolved, num_classes)


def _with_origin(
    model: nn.Module, arch: str | Architecture, dataset: str, seed: int, options: dict[str, Any],
    num_classes: int | None = None,
) -> nn.Module:
    """``model`` with its :class:`ModelOrigin` attached when ``arch`` is a
    registry name (an :class:`Architecture` object need not be rebuildable by name)."""
    if not isinstance(arch, str):
        return model
    return attach_origin(model, ModelOrigin(arch, dataset, seed, dict(options), num_classes=num_classes))


def count_parameters_for(arch: str, dataset: str, *, num_classes: int | None = None, **options: Any) -> int:
    """D of ``make_model(arch, dataset, num_classes=num_classes, **options)``, built on the
    meta device (no memory)."""
    import torch

    spec = _spec(arch)
    resolved = resolve_options(spec, options)
    with torch.device("meta"):
        return count_parameters(_build(spec, dataset, resolved, _check_num_classes(num_classes)))


def size_for_parameters(
    arch: str, dataset: str, target_D: int, option: str | None = None, **fixed: Any
) -> dict[str, Any]:
    """The option dict (``{option: value}`` plus ``fixed``) whose model has D closest to ``target_D``.

    ``option`` defaults to the architecture's ``size_option``. D(v) must be non-decreasing in
    the option's value v (true of every built-in size option). Integer options (e.g. ``width``):
    an exponential search for the first v with D(v) ≥ target_D, then bisection on the integers,
    so the answer is exact: the closer of v* and v* − 1 (ties go to the smaller model).
    Float options (e.g. ``scale``, where channel counts are rounded so D is a step function):
    the same bracketing and bisection on reals to a relative width of 1e-9, then the value is
    shortened to the fewest significant digits that give the same D. Models are built on the
    meta device, so no memory is allocated and each count costs a few milliseconds.
    """
    spec = _spec(arch)
    if isinstance(target_D, bool) or not isinstance(target_D, int) or target_D < 1:
        raise InvalidArgumentError(f"target_D must be a positive integer, got {target_D!r}")
    name = option if option is not None else spec.size_option
    if name is None:
        raise InvalidArgumentError(f"architecture {spec.name!r} has no size option; {_options_text(spec)}")
    if name not in spec.options:
        raise InvalidArgumentError(
            f"architecture {spec.name!r} has no option {name!r}; {_options_text(spec)}"
        )
    kind = type(spec.options[name])
    if kind not in (int, float):
        raise InvalidArgumentError(f"option {name!r} of {spec.name!r} is not numeric; cannot search a size")
    fixed = resolve_options(spec, fixed)
    fixed.pop(name)

    def count(v: float) -> int:
        return count_parameters_for(spec.name, dataset, **{**fixed, name: v})

    if kind is int:
        lo, hi = 1, 1
        if count(lo) >= target_D:
            best: float = lo
        else:
            while count(hi) < target_D:
                lo, hi = hi, hi * 2
                if hi > 2**40:
                    raise InvalidArgumentError(f"{spec.name}: no {name} up to 2**40 reaches D={target_D}")
            while hi - lo > 1:  # invariant: count(lo) < target <= count(hi)
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if count(mid) < target_D else (lo, mid)
            best = lo if target_D - count(lo) <= count(hi) - target_D else hi
        return {**fixed, name: int(best)}

    lo_f, hi_f = 0.0, 1.0
    while count(hi_f) < target_D:
        lo_f, hi_f = hi_f, hi_f * 2
        if hi_f > 2.0**30:
            raise InvalidArgumentError(f"{spec.name}: no {name} up to 2**30 reaches D={target_D}")
    if lo_f == 0.0:  # shrink towards zero until below the target or at the smallest model
        lo_f = hi_f / 2
        while count(lo_f) >= target_D and lo_f > 1e-9:
            hi_f, lo_f = lo_f, lo_f / 2
    while hi_f - lo_f > 1e-9 * hi_f:
        mid_f = (lo_f + hi_f) / 2
        lo_f, hi_f = (mid_f, hi_f) if count(mid_f) < target_D else (lo_f, mid_f)
    c_lo, c_hi = count(lo_f), count(hi_f)
    take_lo = c_lo < target_D and target_D - c_lo <= c_hi - target_D
    value, target_count = (lo_f, c_lo) if take_lo else (hi_f, c_hi)
    for digits in range(1, 17):  # the shortest decimal with the same D
        short = float(f"{value:.{digits}g}")
        if short > 0 and count(short) == target_count:
            value = short
            break
    return {**fixed, name: value}


# ------------------------------------------------------------------------------------------
# where a model came from: what .pjsub export needs to rebuild θ₀ from names and seeds
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelOrigin:
    """How the wrapped model's θ₀ was made: ``make_model(architecture, dataset,
    seed=model_seed, num_classes=num_classes, **options)``, then, if ``theta0_recipe`` is set,
    the registered recipe ``theta0_recipe["kind"]`` applied to it (see the module docstring).

    ``num_classes`` is None for the dataset's own classes (a class-filtered task sets it).
    ``include_theta0`` says that θ₀ cannot be rebuilt from names and recipes (e.g. it was read
    from a checkpoint file): :meth:`SubspaceModel.export <projbench.SubspaceModel.export>` then
    stores θ₀ in the file.
    """

    architecture: str
    dataset: str
    model_seed: int
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    theta0_recipe: Mapping[str, Any] | None = field(default=None, hash=False)
    num_classes: int | None = None
    include_theta0: bool = False

    def build(self) -> nn.Module:
        """The freshly initialised model (before any θ₀ recipe), on the CPU in float32."""
        return make_model(self.architecture, self.dataset, seed=self.model_seed,
                          num_classes=self.num_classes, **dict(self.options))


#: the attribute under which :func:`projbench.make_model` leaves a model's :class:`ModelOrigin`
ORIGIN_ATTRIBUTE = "projbench_origin"


def attach_origin(model: nn.Module, origin: ModelOrigin) -> nn.Module:
    """Record on ``model`` that θ₀ = the parameters ``origin.build()`` gives; returns ``model``.

    A plain attribute (not a parameter or buffer): it survives ``.to()``, ``.double()`` and
    ``copy.deepcopy`` and never enters the state_dict. Whether the parameters are still θ₀ when
    the model is exported is checked then (the θ₀ fingerprint), not here.
    """
    object.__setattr__(model, ORIGIN_ATTRIBUTE, origin)
    return model


def origin_of(model: nn.Module) -> ModelOrigin | None:
    """The :class:`ModelOrigin` that :func:`attach_origin` left on ``model``, else None."""
    origin = model.__dict__.get(ORIGIN_ATTRIBUTE)
    return origin if isinstance(origin, ModelOrigin) else None
