"""Ship a subspace-trained model as the few numbers that rebuild it: the ``.pjsub`` format and
its writer.

A model trained in a random subspace is θ = θ₀ + P θ_d. θ₀ is reproducible from the
architecture, dataset and seed that built it (:func:`projbench.make_model` is deterministic
given its seed), and P from the projection's name, options and seed (projections sample on a
CPU generator). What has to travel is θ_d (d numbers) plus the model's buffers (BatchNorm
running statistics), and a small header naming everything else.

**File format** (``.pjsub``; no pickle, nothing executable):

=========  ==================================================================================
bytes      content
=========  ==================================================================================
8          magic ``b"PJBSUB\\x00\\x01"``
4          header length h (uint32, little-endian)
h          UTF-8 JSON header: format version, projbench/torch versions, dtype, device type,
           architecture/dataset/model seed/architecture options, projection name/options/seed,
           per_layer, d, D, the SHA-256 fingerprints of θ₀, of P's random state and of θ, the
           optional θ₀ recipe, and a table of tensors (name, dtype, shape, offset, nbytes)
n          the tensors' raw bytes, little-endian, C order: ``theta_d``, then every buffer (and
           non-projected parameter) of the wrapped model, then ``theta0`` if it was included
4          CRC-32 of everything before it (uint32, little-endian)
=========  ==================================================================================

This module holds the format's constants, the fingerprints both sides compute
(:func:`tensor_sha256`, :func:`projection_sha256`), the θ₀ recipe registry and the writer
(:func:`subspace_payload`, :func:`export_subspace`). Reading is elsewhere and imports from here,
never the other way: :mod:`projbench.subspace_file` parses and bounds an untrusted file,
:mod:`projbench.subspace_loading` (:func:`projbench.load_subspace`) rebuilds the model and checks
that the fingerprints reproduce.

**Threat model, writing side**: the model being exported is the caller's own and trusted; what
the writer guards against is a file that could not be verified when loaded. It stores only JSON
scalars (str, int, finite float, bool, None) for options and recipes, raw tensor bytes with a
table of their dtypes and shapes, and refuses a θ₀ the reader could not rebuild.

**θ₀ that is not a fresh initialisation** (e.g. after burn-in training): ``export`` checks that
``make_model(architecture, dataset, seed=model_seed, **options)`` gives exactly θ₀ and refuses
otherwise, unless either ``include_theta0=True`` (θ₀ is stored: D more numbers) or a
``theta0_recipe`` is given: a JSON dict with a ``"kind"`` naming a function registered with
:func:`register_theta0_recipe`, which ``load_subspace`` calls on the freshly built model to
redo what was done to it (the θ₀ fingerprint then verifies that it did reproduce).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

# a model's origin lives with the architectures (make_model attaches it); re-exported here
from projbench.architectures import ORIGIN_ATTRIBUTE, ModelOrigin, attach_origin, origin_of  # noqa: F401
from projbench.errors import InvalidArgumentError

if TYPE_CHECKING:
    from projbench.subspace import SubspaceModel

MAGIC = b"PJBSUB\x00\x01"
FORMAT = "projbench-subspace"
FORMAT_VERSION = 1
_U32 = struct.Struct("<I")

#: tensors' dtypes a file may hold, by the name stored in the header
_DTYPES: dict[str, torch.dtype] = {
    name: getattr(torch, name)
    for name in ("float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
                 "uint8", "bool")
}


#: θ₀ recipes: kind -> fn(model, recipe) that changes ``model``'s parameters in place
Theta0Recipe = Callable[[nn.Module, Mapping[str, Any]], None]
_THETA0_RECIPES: dict[str, Theta0Recipe] = {}


def register_theta0_recipe(kind: str, fn: Theta0Recipe) -> None:
    """Register how to redo a θ₀ recipe of ``kind`` (e.g. ``"burn-in"``) on a fresh model.

    ``fn(model, recipe)`` receives the model from ``make_model`` already on the load device and
    dtype, and the stored recipe dict; it must change the parameters in place deterministically
    (``load_subspace`` checks the resulting θ₀ against the exported fingerprint).
    """
    if not isinstance(kind, str) or not kind:
        raise InvalidArgumentError(f"a θ₀ recipe kind must be a non-empty string, got {kind!r}")
    if not callable(fn):
        raise InvalidArgumentError(f"a θ₀ recipe needs a callable, got {fn!r}")
    _THETA0_RECIPES[kind] = fn


# ----------------------------------------------------------------------------------------------
# fingerprints


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw little-endian bytes of ``t`` (C order), from a CPU copy."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes()


def _hash_tensor(h: Any, name: str, t: torch.Tensor) -> None:
    if t.layout == torch.strided:
        parts = [t]
    elif t.layout == torch.sparse_coo:
        c = t.coalesce()
        parts = [c.indices(), c.values()]
    else:  # compressed sparse layouts
        parts = [t.crow_indices(), t.col_indices(), t.values()]
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|{t.layout}".encode())
    for part in parts:
        h.update(_tensor_bytes(part))


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (device-independent)."""
    h = hashlib.sha256()
    _hash_tensor(h, "", t)
    return h.hexdigest()


def projection_sha256(module: nn.Module) -> str:
    """SHA-256 over every buffer and parameter (name, dtype, shape, bytes) of the projection(s)."""
    h = hashlib.sha256()
    for name, t in module.named_buffers():
        _hash_tensor(h, "b:" + name, t)
    for name, t in module.named_parameters():
        _hash_tensor(h, "p:" + name, t)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# export


def _json_scalar_dict(what: str, value: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(value)
    for k, v in out.items():
        ok = v is None or isinstance(v, bool | int | str) or (isinstance(v, float) and math.isfinite(v))
        if not isinstance(k, str) or not ok:
            raise InvalidArgumentError(
                f"cannot export {what} {k!r}={v!r}: only str, int, finite float, bool and None "
                "values can be stored"
            )
    return out


def _dtype_name(dtype: torch.dtype) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise InvalidArgumentError(f"cannot export tensors of dtype {dtype}")
    return name


def _extra_tensors(sm: SubspaceModel) -> dict[str, torch.Tensor]:
    """The wrapped model's state outside θ: buffers and parameters that are not projected."""
    projected = set(sm.parameter_names)
    return {k: v for k, v in sm.model.state_dict().items() if k not in projected}


def _check_theta0_reproducible(sm: SubspaceModel, origin: ModelOrigin) -> None:
    rebuilt = origin.build()
    named = [(n, p) for n, p in rebuilt.named_parameters() if p.requires_grad]
    if tuple(n for n, _ in named) != tuple(sm.parameter_names):
        raise InvalidArgumentError(
            f"make_model({origin.architecture!r}, {origin.dataset!r}, …) builds parameters "
            "other than the ones this SubspaceModel projects: its origin is wrong"
        )
    flat = torch.cat([p.detach().reshape(-1) for _, p in named]).to(sm.theta0.dtype)
    if not torch.equal(flat, sm.theta0.detach().cpu()):
        raise InvalidArgumentError(
            f"θ₀ is not make_model({origin.architecture!r}, {origin.dataset!r}, "
            f"seed={origin.model_seed}) (was the model trained or changed before wrapping?): "
            "export with include_theta0=True, or with a theta0_recipe that redoes the change"
        )


def subspace_payload(
    sm: SubspaceModel,
    *,
    include_theta0: bool = False,
    theta0_recipe: Mapping[str, Any] | None = None,
) -> bytes:
    """The bytes :meth:`SubspaceModel.export` writes (see the module docstring for the format).

    Raises :class:`InvalidArgumentError` when ``sm`` has no :class:`ModelOrigin` (wrap a model
    from ``make_model(..., seed=N)``, build it with :meth:`SubspaceModel.from_names` or set
    ``sm.origin``), or when θ₀ is not reproducible from the origin and neither
    ``include_theta0`` nor a ``theta0_recipe`` is given.
    """
    return _payload(sm, include_theta0=include_theta0, theta0_recipe=theta0_recipe, d=sm.d)


def payload_size(sm: SubspaceModel, *, d: int | None = None, include_theta0: bool = False) -> int:
    """``len(subspace_payload(...))`` of ``sm``, or of the same model with ``d`` trainable
    coordinates instead of ``sm.d`` (same architecture, projection name, options and seeds).

    Exact without building the projection at ``d``: P enters the file only through SHA-256
    fingerprints, whose hex digests have a fixed length, so the payload written with a
    θ_d of ``d`` zeros in place of ``sm.theta_d`` has the size the model at ``d`` would write.
    Building P is what costs (a fastjl P at D = 2·10⁵ and d = 10⁴ takes about a second, a dense
    one 8 GB), so a table of sizes at many d builds one small model and calls this.
    """
    scales = sm.d - sm.projected_d  # with scaling="said": one trained scale per tensor
    if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d <= scales):
        least = (f"an integer above the {scales} scales the model trains besides P" if scales
                 else "a positive integer")
        raise InvalidArgumentError(f"d must be {least}, got {d!r}")
    return len(_payload(sm, include_theta0=include_theta0, theta0_recipe=None, d=sm.d if d is None else d))


def _payload(
    sm: SubspaceModel, *, include_theta0: bool, theta0_recipe: Mapping[str, Any] | None, d: int
) -> bytes:
    """:func:`subspace_payload` with a θ_d of ``d`` entries: ``sm.theta_d`` itself when
    ``d == sm.d``, else zeros of its dtype (what :func:`payload_size` measures)."""
    from projbench import __version__

    origin: ModelOrigin | None = sm.origin
    if origin is None:
        raise InvalidArgumentError(
            "this SubspaceModel does not know which architecture, dataset and seed built its "
            "model: wrap a model from make_model(arch, dataset, seed=N), create it with "
            "SubspaceModel.from_names(...) or set .origin = ModelOrigin(...)"
        )
    recipe = theta0_recipe if theta0_recipe is not None else origin.theta0_recipe
    if origin.include_theta0 and theta0_recipe is None:  # θ₀ cannot be rebuilt: store it
        include_theta0 = True  # (the origin's recipe, if any, is kept as a record of its source)
    if recipe is not None:
        recipe = _json_scalar_dict("θ₀ recipe field", recipe)
        if not isinstance(recipe.get("kind"), str) or not recipe["kind"]:
            raise InvalidArgumentError("a theta0_recipe needs a 'kind' naming a registered recipe")
    if not include_theta0 and recipe is None:
        _check_theta0_reproducible(sm, origin)

    theta_d = sm.theta_d.detach() if d == sm.d else torch.zeros(d, dtype=sm.theta_d.dtype)
    tensors: list[tuple[str, torch.Tensor]] = [("theta_d", theta_d)]
    tensors += [("model." + k, v) for k, v in _extra_tensors(sm).items()]
    if include_theta0:
        tensors.append(("theta0", sm.theta0.detach()))
    table, blobs, offset = [], [], 0
    for name, t in tensors:
        blob = _tensor_bytes(t)
        table.append({"name": name, "dtype": _dtype_name(t.dtype), "shape": list(t.shape),
                      "offset": offset, "nbytes": len(blob)})
        blobs.append(blob)
        offset += len(blob)
    with torch.no_grad():
        theta = sm.flat_parameters()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "projbench": __version__,
        "torch": torch.__version__,
        "dtype": _dtype_name(sm.theta0.dtype),
        "device_type": sm.theta0.device.type,
        "architecture": origin.architecture,
        "dataset": origin.dataset,
        "model_seed": origin.model_seed,
        "architecture_options": _json_scalar_dict("architecture option", origin.options),
        "projection": sm.projection_name,
        "projection_options": _json_scalar_dict("projection option", sm.projection_options),
        "seed": sm.seed,
        "per_layer": sm.per_layer,
        "d": d,
        "D": sm.D,
        **({"num_classes": origin.num_classes} if origin.num_classes is not None else {}),
        **({"scaling": sm.scaling} if sm.scaling != "none" else {}),
        "theta0": "stored" if include_theta0 else ("recipe" if recipe is not None else "seed"),
        "theta0_recipe": recipe,
        "sha256": {
            "theta0": tensor_sha256(sm.theta0),
            "projection": projection_sha256(sm.projections),
            "theta": tensor_sha256(theta),
        },
        "tensors": table,
    }
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    body = MAGIC + _U32.pack(len(head)) + head + b"".join(blobs)
    return body + _U32.pack(zlib.crc32(body))


def export_subspace(
    sm: SubspaceModel,
    path: str | Path,
    *,
    include_theta0: bool = False,
    theta0_recipe: Mapping[str, Any] | None = None,
) -> int:
    """Write :func:`subspace_payload` to ``path``; returns the number of bytes written."""
    data = subspace_payload(sm, include_theta0=include_theta0, theta0_recipe=theta0_recipe)
    target = Path(path)
    try:
        target.write_bytes(data)
    except OSError as err:
        raise InvalidArgumentError(f"cannot write {target}: {err.strerror or err}") from None
    return len(data)
