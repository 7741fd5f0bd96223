"""Ship a subspace-trained model as the few numbers that rebuild it.

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

**Loading** (:func:`load_subspace`) rebuilds the model with ``make_model``, casts it to the
stored dtype on the requested device, re-creates the :class:`~projbench.subspace.SubspaceModel`
and then *checks* that it reproduces: the SHA-256 of the rebuilt θ₀ and of the rebuilt
projection's buffers must equal the stored ones. This is what decides whether a file made by
another projbench or torch version is accepted: if both fingerprints agree the model is the same
bit for bit and the file loads (with a warning naming the versions); if either differs, the file
is refused with a one-line :class:`IncompatibleSubspaceFileError` naming both versions. With the
same versions, a differing fingerprint means a damaged or edited file (:class:`SubspaceFileError`).
Finally, on the device type and dtype the file was made with, the SHA-256 of θ = θ₀ + P θ_d is
compared too: equal means the outputs are bit-identical to the exporter's; if not (a
non-deterministic kernel), a warning says the outputs agree only to rounding.

A file is untrusted data: before anything is allocated, :func:`load_subspace` checks that it is a
regular file under a size cap (stat first, so a FIFO or ``/dev/zero`` never blocks), bounds the
header's size and nesting, every field's type and range (d ≤ D ≤ a parameter cap, shapes,
offsets, dtype, device type), counts the model's parameters on the meta device, refuses
non-finite θ_d and lets a file's ``max_bytes`` only narrow the projection's memory budget.

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
import re
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

# a model's origin lives with the architectures (make_model attaches it); re-exported here
from projbench.architectures import ORIGIN_ATTRIBUTE, ModelOrigin, attach_origin, origin_of  # noqa: F401
from projbench.errors import InvalidArgumentError
from projbench.safe_files import UnsafeFileError, read_regular_file

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


class SubspaceFileError(InvalidArgumentError):
    """A file is not a readable projbench subspace export (wrong format, truncated, damaged, or
    over one of :func:`load_subspace`'s limits)."""


class IncompatibleSubspaceFileError(SubspaceFileError):
    """A subspace export that this projbench/torch (or device) would not rebuild identically."""


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

    tensors: list[tuple[str, torch.Tensor]] = [("theta_d", sm.theta_d.detach())]
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
        "d": sm.d,
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


# ----------------------------------------------------------------------------------------------
# load: every field is checked, and every size bounded, before anything is allocated

#: largest file :func:`load_subspace` reads (checked with ``os.stat`` before opening)
MAX_FILE_BYTES = 2 * 1024**3
#: largest JSON header (a real one is a few kB)
MAX_HEADER_BYTES = 1024**2
#: deepest nesting of lists/objects in the header (a real one has 4)
MAX_HEADER_DEPTH = 8
#: most trainable parameters D of a model rebuilt from a file (counted on the meta device first)
MAX_PARAMETERS = 2**28
#: a numeric architecture option from a file may be at most this many times its default
MAX_OPTION_FACTOR = 1024
#: most dimensions of a stored tensor
MAX_TENSOR_DIMS = 8
#: longest name, version or other string field of the header
MAX_TEXT_CHARS = 200

#: the model dtypes the format stores (SubspaceModel needs a floating dtype)
_MODEL_DTYPES = ("float64", "float32", "float16", "bfloat16")
#: the device types a file may name (those projbench runs on)
_DEVICE_TYPES = ("cpu", "cuda", "mps")
#: projection options that are memory budgets: a file may lower them, never raise them
_BUDGET_OPTIONS = ("max_bytes",)
_THETA0_MODES = ("seed", "stored", "recipe")
#: the per-tensor scalings a file may name (:class:`~projbench.subspace.SubspaceModel`)
_SCALINGS = ("none", "said")
#: most classes a file's model may have (a class-filtered task names its number)
MAX_CLASSES = 1_000_000
#: the inclusive range torch's generators accept as a seed
_SEED_MIN, _SEED_MAX = -(2**63), 2**64 - 1
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS_ONLY = bytes(c for c in range(256) if c not in b"[]{}")


def _short(value: object) -> str:
    """``repr(value)`` cut to 60 characters: a file's values quoted in one-line messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_regular_file(path: Path, where: str, limit: int) -> bytes:
    """The bytes of ``path``, checked to be a regular file of at most ``limit`` bytes with
    ``os.stat`` before opening (a FIFO would block ``open``, ``/dev/zero`` never ends), then
    opened non-blocking and checked again with ``fstat`` in case the path was swapped
    (:func:`projbench.safe_files.read_regular_file`)."""
    try:
        return read_regular_file(path, limit)
    except UnsafeFileError as err:
        if err.not_regular:
            raise SubspaceFileError(
                f"cannot read {where}: not a regular file (a folder, FIFO or device)") from None
        raise SubspaceFileError(
            f"{where} has {err.size:,} bytes, over the limit of {limit:,}: if you trust the file, "
            "pass load_subspace(..., max_file_bytes=N)"
        ) from None
    except OSError as err:
        raise SubspaceFileError(f"cannot read {where}: {err.strerror or err}") from None


def _nesting_depth(text: bytes) -> int:
    """Deepest nesting of JSON arrays/objects in ``text`` (brackets inside strings ignored)."""
    depth = deepest = 0
    for c in _JSON_STRING.sub(b"", text).translate(None, _BRACKETS_ONLY):
        depth += 1 if c in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _parse(data: bytes, where: str) -> tuple[dict[str, Any], memoryview]:
    """Magic, CRC-32, header length (≤ :data:`MAX_HEADER_BYTES`), nesting (≤
    :data:`MAX_HEADER_DEPTH`) and JSON with finite numbers only; returns (header, tensor bytes)."""
    if sys.byteorder != "little":  # pragma: no cover - no big-endian torch build to test on
        raise SubspaceFileError("subspace files are little-endian; this computer is big-endian")
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise SubspaceFileError(f"{where} is not a projbench subspace export (wrong magic bytes)")
    if len(data) < len(MAGIC) + 8:
        raise SubspaceFileError(f"{where} is truncated ({len(data)} bytes)")
    (crc,) = _U32.unpack_from(data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise SubspaceFileError(f"{where} is truncated or damaged (CRC-32 mismatch)")
    (hlen,) = _U32.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + 4
    if start + hlen > len(data) - 4:
        raise SubspaceFileError(f"{where} is truncated (header runs past the end)")
    if hlen > MAX_HEADER_BYTES:
        raise SubspaceFileError(f"{where} has a {hlen:,}-byte header, over the limit of {MAX_HEADER_BYTES:,}")
    raw = data[start : start + hlen]
    if _nesting_depth(raw) > MAX_HEADER_DEPTH:
        raise SubspaceFileError(f"{where} has a header nested deeper than {MAX_HEADER_DEPTH} levels")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise SubspaceFileError(f"{where} has a non-finite number ({text[:20]}) in its header")
        return value

    def no_constant(text: str) -> float:
        raise SubspaceFileError(f"{where} has a non-finite number ({text}) in its header")

    try:
        header = json.loads(raw.decode("utf-8"), parse_float=finite, parse_constant=no_constant)
    except SubspaceFileError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SubspaceFileError(f"{where} has an unreadable header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SubspaceFileError(f"{where} is not a projbench subspace export (header format)")
    if header.get("format_version") != FORMAT_VERSION:
        raise IncompatibleSubspaceFileError(
            f"{where} uses subspace format version {_short(header.get('format_version'))}; this "
            f"projbench reads version {FORMAT_VERSION} "
            f"(made with projbench {_short(header.get('projbench'))})"
        )
    return header, memoryview(data)[start + hlen : len(data) - 4]


def _field(header: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = header.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise SubspaceFileError(f"{where}: header field {key!r} is missing or malformed")
    return value


def _text(header: dict[str, Any], key: str, where: str) -> str:
    """A string field of at most :data:`MAX_TEXT_CHARS` printable characters."""
    value = _field(header, key, str, where)
    if not value or len(value) > MAX_TEXT_CHARS or not value.isprintable():
        raise SubspaceFileError(f"{where}: header field {key!r} is not a short printable string")
    return value


def _scalars(header: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An options dict of the header: short string keys, JSON scalar values (the finite ones
    :func:`_json_scalar_dict` lets an export write)."""
    value = _field(header, key, dict, where)
    for k, v in value.items():
        short_text = isinstance(v, str) and len(v) <= MAX_TEXT_CHARS
        if len(k) > MAX_TEXT_CHARS or not (v is None or isinstance(v, bool | int | float) or short_text):
            raise SubspaceFileError(f"{where}: header field {key!r} has a malformed entry {_short(k)}")
    return value


def _bounded_int(header: dict[str, Any], key: str, where: str, low: int, high: int, why: str) -> int:
    """Integer field ``key`` in [low, high]; else one line ending with ``why``."""
    value = _field(header, key, int, where)
    if not low <= value <= high:
        raise SubspaceFileError(
            f"{where}: header field {key!r}={_short(value)} is not in [{low:,}, {high:,}] ({why})"
        )
    return value


@dataclass(frozen=True)
class _TensorEntry:
    """One checked row of the tensor table: it fits the file and its bytes match its shape."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int


def _tensor_table(header: dict[str, Any], nbody: int, where: str) -> dict[str, _TensorEntry]:
    """The tensor table, each entry checked against the file before anything is read: a known
    dtype, at most :data:`MAX_TENSOR_DIMS` dimensions, each in [0, bytes of the file], nbytes =
    numel × itemsize, the range inside the file, names unique."""
    out: dict[str, _TensorEntry] = {}
    for entry in _field(header, "tensors", list, where):
        try:
            name, dtype_name, shape = entry["name"], entry["dtype"], entry["shape"]
            offset, nbytes = entry["offset"], entry["nbytes"]
            ok = (isinstance(name, str) and 0 < len(name) <= MAX_TEXT_CHARS and name.isprintable()
                  and isinstance(dtype_name, str) and dtype_name in _DTYPES and isinstance(shape, list)
                  and all(type(v) is int for v in (*shape, offset, nbytes)))
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise SubspaceFileError(f"{where}: malformed tensor table")
        if len(shape) > MAX_TENSOR_DIMS or not all(0 <= s <= max(nbody, 1) for s in shape):
            raise SubspaceFileError(
                f"{where}: tensor {name!r} has shape {_short(shape)}: at most {MAX_TENSOR_DIMS} dimensions, "
                "each between 0 and the size of the file"
            )
        dtype = _DTYPES[dtype_name]
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if offset < 0 or nbytes != math.prod(shape) * itemsize or offset + nbytes > nbody:
            raise SubspaceFileError(f"{where}: tensor {name!r} does not fit the file")
        if name in out:
            raise SubspaceFileError(f"{where}: tensor {name!r} is stored twice")
        out[name] = _TensorEntry(name, dtype, tuple(shape), offset, nbytes)
    return out


def _read_tensor(entry: _TensorEntry, body: memoryview) -> torch.Tensor:
    """The tensor of a checked table entry (one copy of its bytes)."""
    raw = bytearray(body[entry.offset : entry.offset + entry.nbytes])
    flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    if entry.dtype == torch.bool:
        return flat.reshape(entry.shape).to(torch.bool)
    return flat.view(entry.dtype).reshape(entry.shape)


def _checked_flat(entries: dict[str, _TensorEntry], body: memoryview, name: str, n: int,
                  dtype_name: str, where: str) -> torch.Tensor | None:
    """Stored vector ``name`` (θ_d or θ₀) if present: shape (n,), the model's dtype, all finite."""
    entry = entries.get(name)
    if entry is None:
        return None
    if entry.shape != (n,) or entry.dtype != _DTYPES[dtype_name]:
        raise SubspaceFileError(
            f"{where}: {name} has shape {list(entry.shape)} and dtype {entry.dtype}, the header "
            f"says ({n},) {dtype_name}"
        )
    t = _read_tensor(entry, body)
    if not bool(torch.isfinite(t).all()):
        raise SubspaceFileError(f"{where}: {name} holds NaN or infinite values")
    return t


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


@dataclass(frozen=True)
class _HeaderFields:
    """What a ``.pjsub`` header says, each field checked (types, bounds) by :func:`_read_header`."""

    dtype_name: str
    dtype: torch.dtype
    made_on: str
    D: int
    d: int
    mode: str
    recipe: dict[str, Any] | None
    sums: dict[str, Any]
    num_classes: int | None
    scaling: str
    origin: ModelOrigin
    projection: str
    seed: int
    per_layer: bool
    options: dict[str, Any]
    entries: dict[str, _TensorEntry]


def _read_header(header: dict[str, Any], nbody: int, where: str, max_parameters: int) -> _HeaderFields:
    """Every header field checked, before anything is allocated (see :func:`load_subspace`)."""
    for key in ("projbench", "torch"):
        _text(header, key, where)
    dtype_name = _text(header, "dtype", where)
    if dtype_name not in _MODEL_DTYPES:
        raise SubspaceFileError(
            f"{where}: unknown dtype {dtype_name!r} (a file stores one of {', '.join(_MODEL_DTYPES)})"
        )
    made_on = _text(header, "device_type", where)
    if made_on not in _DEVICE_TYPES:
        raise SubspaceFileError(
            f"{where}: unknown device_type {made_on!r} (one of {', '.join(_DEVICE_TYPES)})"
        )
    D = _bounded_int(header, "D", where, 1, max_parameters,
                     "if you trust the file, pass load_subspace(..., max_parameters=N)")
    d = _bounded_int(header, "d", where, 1, D, "d cannot exceed D")
    mode = _text(header, "theta0", where)
    if mode not in _THETA0_MODES:
        raise SubspaceFileError(f"{where}: unknown θ₀ mode {mode!r}")
    recipe = header.get("theta0_recipe")
    if recipe is not None:
        recipe = _scalars(header, "theta0_recipe", where)
    sums = _field(header, "sha256", dict, where)
    if not all(isinstance(sums.get(k), str) for k in ("theta0", "projection", "theta")):
        raise SubspaceFileError(f"{where}: header field 'sha256' is missing or malformed")
    num_classes = None
    if "num_classes" in header:
        num_classes = _bounded_int(header, "num_classes", where, 1, MAX_CLASSES, "a number of classes")
    scaling = header.get("scaling", "none")
    if scaling not in _SCALINGS:
        raise SubspaceFileError(f"{where}: unknown scaling {_short(scaling)} (one of {', '.join(_SCALINGS)})")
    origin = ModelOrigin(
        _text(header, "architecture", where),
        _text(header, "dataset", where),
        _bounded_int(header, "model_seed", where, _SEED_MIN, _SEED_MAX, "a torch seed"),
        _scalars(header, "architecture_options", where),
        recipe,
        num_classes=num_classes,
        include_theta0=mode == "stored",
    )
    return _HeaderFields(
        dtype_name=dtype_name, dtype=_DTYPES[dtype_name], made_on=made_on, D=D, d=d, mode=mode,
        recipe=recipe, sums=sums, num_classes=num_classes, scaling=scaling, origin=origin,
        projection=_text(header, "projection", where),
        seed=_bounded_int(header, "seed", where, _SEED_MIN, _SEED_MAX, "a torch seed"),
        per_layer=_field(header, "per_layer", bool, where),
        options=_scalars(header, "projection_options", where),
        entries=_tensor_table(header, nbody, where),
    )


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
