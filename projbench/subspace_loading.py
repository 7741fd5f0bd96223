"""Verified loading of a ``.pjsub`` file: :func:`load_subspace` rebuilds the subspace-trained
model from the names and seeds in its header and checks that it reproduces the exporter's.

The format is stated in :mod:`projbench.export`; its bytes, header fields and tensor table are
read and bounded by :mod:`projbench.subspace_file`. The steps here: the architecture's options
and parameter count are checked on the meta device before the model is built (numeric options
within :data:`~projbench.subspace_file.MAX_OPTION_FACTOR` times their default, D within
``max_parameters``); a projection's ``max_bytes`` may only narrow the memory budget; the model is
built with ``make_model``, cast to the stored dtype on the requested device, θ₀ set from the
file or redone by its registered recipe, and the :class:`~projbench.subspace.SubspaceModel`
re-created; then θ_d and the buffers are copied in.

**Verification**: the SHA-256 of the rebuilt θ₀ and of the rebuilt projection's buffers must
equal the stored ones. This is what decides whether a file made by another projbench or torch
version is accepted: if both fingerprints agree the model is the same bit for bit and the file
loads (with a warning naming the versions); if either differs, the file is refused with a
one-line :class:`~projbench.subspace_file.IncompatibleSubspaceFileError` naming both versions.
With the same versions, a differing fingerprint means a damaged or edited file
(:class:`~projbench.subspace_file.SubspaceFileError`). Finally, on the device type and dtype the
file was made with, the SHA-256 of θ = θ₀ + P θ_d is compared too: equal means the outputs are
bit-identical to the exporter's; if not (a non-deterministic kernel), a warning says the outputs
agree only to rounding.

**Threat model**: the file is untrusted (see :mod:`projbench.subspace_file`); what it names is
looked up only among the architectures, datasets, projections and θ₀ recipes installed here, and
its limits only narrow the caller's (``max_file_bytes``, ``max_parameters``, ``max_bytes``),
which the caller raises for files it trusts.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from projbench.errors import InvalidArgumentError
from projbench.export import _THETA0_RECIPES, _extra_tensors, projection_sha256, tensor_sha256
from projbench.subspace_file import (
    MAX_FILE_BYTES,
    MAX_OPTION_FACTOR,
    MAX_PARAMETERS,
    IncompatibleSubspaceFileError,
    SubspaceFileError,
    _checked_flat,
    _HeaderFields,
    _parse,
    _read_header,
    _read_regular_file,
    _read_tensor,
    _short,
)

if TYPE_CHECKING:
    from projbench.subspace import SubspaceModel

#: projection options that are memory budgets: a file may lower them, never raise them
_BUDGET_OPTIONS = ("max_bytes",)


def _checked_architecture(arch: str, dataset: str, options: dict[str, Any], where: str,
                          max_parameters: int, num_classes: int | None = None) -> int:
    """D of the model, before building it: the options exist and numeric ones stay within
    :data:`MAX_OPTION_FACTOR` times their default; the model, counted on the meta device, has
    at most ``max_parameters`` parameters."""
    from projbench.architectures import count_parameters_for, resolve_options
    from projbench.manager import get_registry

    spec = get_registry("architectures").get(arch)
    for key, value in resolve_options(spec, options).items():
        default = spec.options.get(key)
        numeric = [v for v in (value, default) if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numeric) == 2 and not abs(value) <= MAX_OPTION_FACTOR * max(1.0, abs(default)):
            raise SubspaceFileError(
                f"{where}: architecture option {key}={_short(value)} is over {MAX_OPTION_FACTOR}× its "
                f"default ({default!r}); refused before building the model"
            )
    n = count_parameters_for(arch, dataset, num_classes=num_classes, **options)
    if n > max_parameters:
        raise SubspaceFileError(
            f"{where}: {arch} on {dataset} with {_short(options)} has {n:,} parameters, over the limit "
            f"of {max_parameters:,}: if you trust the file, pass load_subspace(..., max_parameters=N)"
        )
    return n


def _checked_projection_options(projection: str, options: dict[str, Any], where: str,
                                max_bytes: int | None) -> dict[str, Any]:
    """The file's projection options: each one the projection accepts (not ``seed``, ``device``
    or ``d``, which the header sets), and a budget (``max_bytes``) at most the caller's
    ``max_bytes`` or, without one, the projection's default: a file may narrow a memory budget,
    never widen it."""
    from projbench.manager import get_registry

    cls = get_registry("projections").get(projection)
    unknown = sorted(set(options) - set(cls.option_names()))
    if unknown:
        raise SubspaceFileError(
            f"{where}: projection {projection!r} has no option {_short(unknown[0])} (it accepts "
            f"{', '.join(cls.option_names()) or 'none'})"
        )
    defaults = cls.option_defaults()
    for key in _BUDGET_OPTIONS:
        if key not in options:
            continue
        value, limit = options[key], max_bytes if max_bytes is not None else defaults.get(key)
        if type(value) is not int or value < 1 or type(limit) is not int or value > limit:
            raise SubspaceFileError(
                f"{where}: projection option {key}={_short(value)} would raise the memory budget "
                f"(limit {limit!r}); a file cannot: if you trust it, pass load_subspace(..., max_bytes=N)"
            )
    return options


def _check_limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return value


def _versions_line(header: dict[str, Any]) -> str:
    from projbench import __version__

    return (f"made with projbench {header.get('projbench')} and torch {header.get('torch')} "
            f"on {header.get('device_type')}; this is projbench {__version__} and torch "
            f"{torch.__version__}")


def _same_versions(header: dict[str, Any]) -> bool:
    from projbench import __version__

    return header.get("projbench") == __version__ and header.get("torch") == torch.__version__


def _load_device(device: torch.device | str | None, made_on: str, where: str) -> torch.device:
    from projbench.projection import check_device

    if device is None and made_on == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"{where} was made on {made_on} and CUDA is not available here: pass device='cpu' "
            "(outputs then agree to rounding, not bit for bit)"
        )
    return check_device(device if device is not None else made_on)


def load_subspace(
    path: str | Path,
    *,
    device: torch.device | str | None = None,
    max_file_bytes: int = MAX_FILE_BYTES,
    max_parameters: int = MAX_PARAMETERS,
    max_bytes: int | None = None,
) -> SubspaceModel:
    """Rebuild the :class:`~projbench.subspace.SubspaceModel` exported to ``path``.

    ``device`` defaults to the device type the file was made on. The model comes back in eval
    mode, with its :class:`ModelOrigin` set (so it can be exported again). Outputs are
    bit-identical to the exporter's on the same device type and dtype with the same torch
    version; on another device they agree to rounding.

    A file is data from elsewhere, so before anything is allocated it is checked that: the path
    is a regular file of at most ``max_file_bytes`` (stat first: a FIFO or ``/dev/zero`` is
    refused, never opened blocking); the header is at most :data:`MAX_HEADER_BYTES`, nested at
    most :data:`MAX_HEADER_DEPTH` deep, with finite numbers; dtype is a floating one the format
    stores and device_type one of cpu/cuda/mps; 1 ≤ d ≤ D ≤ ``max_parameters``; every tensor's
    shape is non-negative, bounded by the file and matches its bytes; θ_d (and a stored θ₀) is
    finite; numeric architecture options are within :data:`MAX_OPTION_FACTOR` times their
    default and the model, counted on the meta device, has the file's D; a ``max_bytes``
    projection option only narrows the budget (at most ``max_bytes`` if given, else the
    projection's default). Every failure is one line: a :class:`SubspaceFileError` (not an
    export, truncated, damaged, or over a limit), an :class:`IncompatibleSubspaceFileError`
    (another version or device would not rebuild the same θ₀ or P) — both
    :class:`InvalidArgumentError` — or the usual errors for an architecture, dataset or
    projection that is not installed here.
    """
    where = str(path)
    max_file_bytes = _check_limit("max_file_bytes", max_file_bytes)
    max_parameters = _check_limit("max_parameters", max_parameters)
    if max_bytes is not None:
        max_bytes = _check_limit("max_bytes", max_bytes)
    header, body = _parse(_read_regular_file(Path(path), where, max_file_bytes), where)
    fields = _read_header(header, len(body), where, max_parameters)
    theta_d, theta0 = _stored_vectors(fields, body, where)
    dev = _load_device(device, fields.made_on, where)
    n = _checked_architecture(fields.origin.architecture, fields.origin.dataset,
                              dict(fields.origin.options), where, max_parameters, fields.num_classes)
    if n != fields.D:
        raise IncompatibleSubspaceFileError(
            f"{where}: the rebuilt model has D={n}, the file D={fields.D}; {_versions_line(header)}"
        )
    options = _checked_projection_options(fields.projection, fields.options, where, max_bytes)
    sm = _rebuild(fields, theta0, options, dev, header, where)
    _restore_trained(sm, fields, theta_d, body, dev, header, where)
    sm.origin = fields.origin
    return sm.eval()



def _stored_vectors(fields: _HeaderFields, body: memoryview, where: str
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """θ_d and, when the file stores it, θ₀ (shapes and finiteness checked); a θ₀ recipe must
    be one registered here."""
    theta_d = _checked_flat(fields.entries, body, "theta_d", fields.d, fields.dtype_name, where)
    if theta_d is None:
        raise SubspaceFileError(f"{where}: θ_d is missing")
    theta0 = None
    if fields.mode == "stored":
        theta0 = _checked_flat(fields.entries, body, "theta0", fields.D, fields.dtype_name, where)
        if theta0 is None:
            raise SubspaceFileError(f"{where}: header says θ₀ is stored but it is not")
    if fields.mode == "recipe":
        import projbench.transfer  # noqa: F401 - registers the built-in θ₀ recipes

        kind = fields.recipe.get("kind") if fields.recipe is not None else None
        if not isinstance(kind, str) or kind not in _THETA0_RECIPES:
            raise InvalidArgumentError(
                f"{where}: θ₀ comes from recipe {_short(kind)}, which nothing registered here (import "
                "the module that calls projbench.export.register_theta0_recipe for it)"
            )
    return theta_d, theta0


def _rebuild(fields: _HeaderFields, theta0: torch.Tensor | None, options: dict[str, Any],
             dev: torch.device, header: dict[str, Any], where: str) -> SubspaceModel:
    """The subspace model the names, seeds and θ₀ rebuild, its θ₀ and P checked against the
    exported fingerprints (θ_d not yet restored)."""
    from projbench.subspace import SubspaceModel

    model = fields.origin.build().to(device=dev, dtype=fields.dtype)
    if theta0 is not None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        with torch.no_grad():
            for p, piece in zip(trainable, torch.split(theta0, [p.numel() for p in trainable]), strict=True):
                p.copy_(piece.view_as(p))
    elif fields.mode == "recipe":
        assert fields.recipe is not None
        _THETA0_RECIPES[fields.recipe["kind"]](model, dict(fields.recipe))

    sm = SubspaceModel(model, fields.projection, d=fields.d, seed=fields.seed,
                       per_layer=fields.per_layer, scaling=fields.scaling, **options)
    if sm.D != fields.D:
        raise IncompatibleSubspaceFileError(
            f"{where}: the rebuilt model has D={sm.D}, the file D={fields.D}; {_versions_line(header)}"
        )
    for what, got in (("θ₀", tensor_sha256(sm.theta0)), ("P", projection_sha256(sm.projections))):
        want = fields.sums.get("theta0" if what == "θ₀" else "projection")
        if got == want:
            continue
        if dev.type != fields.made_on and what == "P":
            raise IncompatibleSubspaceFileError(
                f"{where}: the projection {sm.projection_name!r} rebuilt on {dev.type} differs from "
                f"the one made on {fields.made_on}: load it on {fields.made_on}"
            )
        if not _same_versions(header):
            raise IncompatibleSubspaceFileError(
                f"{where} would not reproduce: the rebuilt {what} differs; {_versions_line(header)}"
            )
        raise SubspaceFileError(
            f"{where} is damaged or edited: the rebuilt {what} differs from the exported one "
            "(same projbench and torch versions)"
        )
    if not _same_versions(header):
        warnings.warn(f"{where}: {_versions_line(header)}; θ₀ and P rebuild bit for bit",
                      stacklevel=3)
    return sm


def _restore_trained(sm: SubspaceModel, fields: _HeaderFields, theta_d: torch.Tensor, body: memoryview,
                     dev: torch.device, header: dict[str, Any], where: str) -> None:
    """θ_d and the model's buffers (batch-norm statistics and the like) copied in
    from the file, each checked against what the rebuilt model expects."""
    extra = {k.removeprefix("model."): v for k, v in fields.entries.items() if k.startswith("model.")}
    expected = _extra_tensors(sm)
    if set(extra) != set(expected):
        raise IncompatibleSubspaceFileError(
            f"{where}: the model's buffers differ from the file's "
            f"({_short(sorted(set(extra) ^ set(expected)))}); {_versions_line(header)}"
        )
    for name, entry in extra.items():
        target = expected[name]
        if tuple(target.shape) != entry.shape or target.dtype != entry.dtype:
            raise SubspaceFileError(f"{where}: buffer {name!r} has the wrong shape or dtype")
    with torch.no_grad():
        sm.theta_d.copy_(theta_d.to(dev))
        for name, entry in extra.items():
            expected[name].copy_(_read_tensor(entry, body).to(dev))
        theta = sm.flat_parameters()
    if dev.type == fields.made_on and tensor_sha256(theta) != fields.sums.get("theta"):
        warnings.warn(
            f"{where}: θ = θ₀ + P θ_d computed here differs in the last bits from the exporter's "
            "(non-deterministic or changed kernels): outputs agree to rounding, not bit for bit",
            stacklevel=3,
        )
