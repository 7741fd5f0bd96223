"""Ship a subspace-trained model as the few numbers that rebuild it (issue 10, item 3).

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
import sys
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from projbench.errors import InvalidArgumentError, ProjbenchError

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


class SubspaceFileError(ProjbenchError, ValueError):
    """A file is not a readable projbench subspace export (wrong format, truncated, damaged)."""


class IncompatibleSubspaceFileError(SubspaceFileError):
    """A subspace export that this projbench/torch (or device) would not rebuild identically."""


@dataclass(frozen=True)
class ModelOrigin:
    """How the wrapped model's θ₀ was made: ``make_model(architecture, dataset,
    seed=model_seed, **options)``, then, if ``theta0_recipe`` is set, the registered recipe
    ``theta0_recipe["kind"]`` applied to it (see the module docstring)."""

    architecture: str
    dataset: str
    model_seed: int
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    theta0_recipe: Mapping[str, Any] | None = field(default=None, hash=False)

    def build(self) -> nn.Module:
        """The freshly initialised model (before any θ₀ recipe), on the CPU in float32."""
        from projbench.architectures import make_model

        return make_model(self.architecture, self.dataset, seed=self.model_seed, **dict(self.options))


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

    Raises :class:`InvalidArgumentError` when ``sm`` has no :class:`ModelOrigin` (build it with
    :meth:`SubspaceModel.from_names` or set ``sm.origin``), or when θ₀ is not reproducible from
    the origin and neither ``include_theta0`` nor a ``theta0_recipe`` is given.
    """
    from projbench import __version__

    origin: ModelOrigin | None = sm.origin
    if origin is None:
        raise InvalidArgumentError(
            "this SubspaceModel does not know which architecture, dataset and seed built its "
            "model: create it with SubspaceModel.from_names(...) or set .origin = ModelOrigin(...)"
        )
    recipe = theta0_recipe if theta0_recipe is not None else origin.theta0_recipe
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
# load


def _parse(data: bytes, where: str) -> tuple[dict[str, Any], memoryview]:
    if sys.byteorder != "little":  # pragma: no cover - no big-endian torch build to test on
        raise SubspaceFileError("subspace files are little-endian; this machine is big-endian")
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise SubspaceFileError(f"{where} is not a projbench subspace export (wrong magic bytes)")
    if len(data) < len(MAGIC) + 8:
        raise SubspaceFileError(f"{where} is truncated ({len(data)} bytes)")
    (crc,) = _U32.unpack_from(data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise SubspaceFileError(f"{where} is truncated or damaged (CRC-32 mismatch)")
    (hlen,) = _U32.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + 4
    if start + hlen > len(data) - 4:
        raise SubspaceFileError(f"{where} is truncated (header runs past the end)")
    try:
        header = json.loads(data[start : start + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SubspaceFileError(f"{where} has an unreadable header") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SubspaceFileError(f"{where} is not a projbench subspace export (header format)")
    if header.get("format_version") != FORMAT_VERSION:
        raise IncompatibleSubspaceFileError(
            f"{where} uses subspace format version {header.get('format_version')!r}; this projbench "
            f"reads version {FORMAT_VERSION} (made with projbench {header.get('projbench')!r})"
        )
    return header, memoryview(data)[start + hlen : len(data) - 4]


def _field(header: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = header.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise SubspaceFileError(f"{where}: header field {key!r} is missing or malformed")
    return value


def _read_tensors(header: dict[str, Any], body: memoryview, where: str) -> dict[str, torch.Tensor]:
    table = _field(header, "tensors", list, where)
    out: dict[str, torch.Tensor] = {}
    for entry in table:
        try:
            name, dtype = str(entry["name"]), _DTYPES[entry["dtype"]]
            shape = [int(s) for s in entry["shape"]]
            offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
        except (KeyError, TypeError, ValueError):
            raise SubspaceFileError(f"{where}: malformed tensor table") from None
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if offset < 0 or nbytes != math.prod(shape) * itemsize or offset + nbytes > len(body):
            raise SubspaceFileError(f"{where}: tensor {name!r} does not fit the file")
        raw = torch.frombuffer(bytearray(body[offset : offset + nbytes]), dtype=torch.uint8)
        out[name] = raw.view(torch.uint8 if dtype == torch.bool else dtype).reshape(shape).clone()
        if dtype == torch.bool:
            out[name] = out[name].to(torch.bool)
    return out


def _versions_line(header: dict[str, Any]) -> str:
    from projbench import __version__

    return (f"made with projbench {header.get('projbench')} and torch {header.get('torch')} "
            f"on {header.get('device_type')}; this is projbench {__version__} and torch "
            f"{torch.__version__}")


def _same_versions(header: dict[str, Any]) -> bool:
    from projbench import __version__

    return header.get("projbench") == __version__ and header.get("torch") == torch.__version__


def load_subspace(path: str | Path, *, device: torch.device | str | None = None) -> SubspaceModel:
    """Rebuild the :class:`~projbench.subspace.SubspaceModel` exported to ``path``.

    ``device`` defaults to the device type the file was made on. The model comes back in eval
    mode, with its :class:`ModelOrigin` set (so it can be exported again). Outputs are
    bit-identical to the exporter's on the same device type and dtype with the same torch
    version; on another device they agree to rounding. Every failure is one line: a
    :class:`SubspaceFileError` (not an export, truncated, damaged), an
    :class:`IncompatibleSubspaceFileError` (another version or device would not rebuild the same
    θ₀ or P), or the usual errors for an architecture, dataset or projection that is not
    installed here.
    """
    from projbench.subspace import SubspaceModel

    where = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SubspaceFileError(f"cannot read {where}: {err.strerror or err}") from None
    header, body = _parse(data, where)
    tensors = _read_tensors(header, body, where)
    dtype_name = _field(header, "dtype", str, where)
    if dtype_name not in _DTYPES:
        raise SubspaceFileError(f"{where}: unknown dtype {dtype_name!r}")
    dtype = _DTYPES[dtype_name]
    made_on = _field(header, "device_type", str, where)
    dev = torch.device(device if device is not None else made_on)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            f"{where} was made on {made_on} and CUDA is not available here: pass device='cpu' "
            "(outputs then agree to rounding, not bit for bit)"
        )
    origin = ModelOrigin(
        _field(header, "architecture", str, where),
        _field(header, "dataset", str, where),
        _field(header, "model_seed", int, where),
        _field(header, "architecture_options", dict, where),
        header.get("theta0_recipe"),
    )
    model = origin.build().to(device=dev, dtype=dtype)
    mode = _field(header, "theta0", str, where)
    if mode == "stored":
        if "theta0" not in tensors:
            raise SubspaceFileError(f"{where}: header says θ₀ is stored but it is not")
        flat = tensors["theta0"].to(dev)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if flat.numel() != sum(p.numel() for p in trainable):
            raise SubspaceFileError(f"{where}: stored θ₀ has {flat.numel()} values, the model needs more")
        with torch.no_grad():
            for p, piece in zip(trainable, torch.split(flat, [p.numel() for p in trainable]), strict=True):
                p.copy_(piece.view_as(p))
    elif mode == "recipe":
        recipe = origin.theta0_recipe
        kind = recipe.get("kind") if isinstance(recipe, dict) else None
        if not isinstance(kind, str) or kind not in _THETA0_RECIPES:
            raise InvalidArgumentError(
                f"{where}: θ₀ comes from recipe {kind!r}, which nothing registered here (import the "
                "module that calls projbench.export.register_theta0_recipe for it)"
            )
        _THETA0_RECIPES[kind](model, dict(recipe))  # type: ignore[arg-type]
    elif mode != "seed":
        raise SubspaceFileError(f"{where}: unknown θ₀ mode {mode!r}")

    options = _field(header, "projection_options", dict, where)
    sm = SubspaceModel(
        model, _field(header, "projection", str, where), d=_field(header, "d", int, where),
        seed=_field(header, "seed", int, where), per_layer=_field(header, "per_layer", bool, where),
        **options,
    )
    if sm.D != _field(header, "D", int, where):
        raise IncompatibleSubspaceFileError(
            f"{where}: the rebuilt model has D={sm.D}, the file D={header['D']}; {_versions_line(header)}"
        )
    sums = _field(header, "sha256", dict, where)
    for what, got in (("θ₀", tensor_sha256(sm.theta0)), ("P", projection_sha256(sm.projections))):
        want = sums.get("theta0" if what == "θ₀" else "projection")
        if got == want:
            continue
        if dev.type != made_on and what == "P":
            raise IncompatibleSubspaceFileError(
                f"{where}: the projection {sm.projection_name!r} rebuilt on {dev.type} differs from "
                f"the one made on {made_on}: load it on {made_on}"
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
                      stacklevel=2)

    theta_d = tensors.get("theta_d")
    if theta_d is None or theta_d.shape != sm.theta_d.shape or theta_d.dtype != dtype:
        raise SubspaceFileError(f"{where}: θ_d is missing or does not match d={sm.d}, {dtype_name}")
    extra = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    expected = _extra_tensors(sm)
    if set(extra) != set(expected):
        raise IncompatibleSubspaceFileError(
            f"{where}: the model's buffers differ from the file's ({sorted(set(extra) ^ set(expected))}); "
            f"{_versions_line(header)}"
        )
    with torch.no_grad():
        sm.theta_d.copy_(theta_d.to(dev))
        for name, value in extra.items():
            target = expected[name]
            if target.shape != value.shape or target.dtype != value.dtype:
                raise SubspaceFileError(f"{where}: buffer {name!r} has the wrong shape or dtype")
            target.copy_(value.to(dev))
        theta = sm.flat_parameters()
    if dev.type == made_on and tensor_sha256(theta) != sums.get("theta"):
        warnings.warn(
            f"{where}: θ = θ₀ + P θ_d computed here differs in the last bits from the exporter's "
            "(non-deterministic or changed kernels): outputs agree to rounding, not bit for bit",
            stacklevel=2,
        )
    sm.origin = origin
    return sm.eval()
