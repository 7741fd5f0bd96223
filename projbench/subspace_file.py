"""Reading a ``.pjsub`` file as untrusted data: its bytes, header fields and tensor table, each
checked and bounded before anything is allocated.

The format (written by :mod:`projbench.export`, which states it in full) is ``magic | header
length (uint32 LE) | UTF-8 JSON header | tensors' raw bytes | CRC-32 (uint32 LE)``; the header
names the model (architecture, dataset, seeds, options, projection, d, D, dtype, device type),
the SHA-256 fingerprints of θ₀, P and θ, and a table of tensors (name, dtype, shape, offset,
nbytes) into the raw bytes.

**Threat model**: a file is data from elsewhere, possibly truncated, damaged or written to
make the reader allocate, block or compute without end. Nothing in it is executed (no pickle)
and nothing is trusted: the path must be a regular file of at most a size cap (``os.stat``
first, so a FIFO or ``/dev/zero`` never blocks); the magic and the CRC-32 must match; the header
is bounded in size (:data:`MAX_HEADER_BYTES`) and nesting (:data:`MAX_HEADER_DEPTH`) before it
is parsed, holds finite numbers only, and every field has its type and range checked (short
printable strings, 1 ≤ d ≤ D ≤ a parameter cap, seeds in torch's range, a known dtype, device
type, θ₀ mode and scaling); every tensor's shape is non-negative, bounded by the file, at most
:data:`MAX_TENSOR_DIMS` dimensions, its bytes equal to numel × itemsize and inside the file; a
stored θ_d or θ₀ must be finite. Every failure is one line: a :class:`SubspaceFileError`, or an
:class:`IncompatibleSubspaceFileError` for a format version this projbench does not read.

What the header's names then build, and whether it reproduces the exporter's fingerprints, is
checked by :func:`projbench.load_subspace` (:mod:`projbench.subspace_loading`).
"""

from __future__ import annotations

import json
import math
import re
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from projbench.architectures import ModelOrigin
from projbench.errors import InvalidArgumentError
from projbench.export import _DTYPES, _U32, FORMAT, FORMAT_VERSION, MAGIC
from projbench.safe_files import UnsafeFileError, read_regular_file


class SubspaceFileError(InvalidArgumentError):
    """A file is not a readable projbench subspace export (wrong format, truncated, damaged, or
    over one of :func:`load_subspace`'s limits)."""


class IncompatibleSubspaceFileError(SubspaceFileError):
    """A subspace export that this projbench/torch (or device) would not rebuild identically."""


# ----------------------------------------------------------------------------------------------
# limits: every field is checked, and every size bounded, before anything is allocated

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

