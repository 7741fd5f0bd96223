"""Where a training run's inputs came from: the settings that change a result but are chosen
outside the run's spec — the data files actually loaded, the FWHT backend in force and the
plugin behind each name.

:func:`run_provenance` gives ``{"data": fingerprint, "fwht": backend or None, "plugins":
{kind: owner}}`` for a run, and ``"theta0_data"`` for a run whose θ₀ was pretrained (the
fingerprint of the pretraining's dataset). A worker records it with every run; a driver computes it before
anything runs and refuses to reuse a stored run whose provenance differs
(:func:`provenance_differences`). Records written before provenance existed have none and are
accepted as they are.

* **data**: SHA-256 (first 16 hex digits) of the loaded train and test tensors — inputs'
  dtype, shape and bytes, then labels' — of the *full* splits (subsetting is part of the run's
  identity). Computed once per process per (dataset, data folder): hashing MNIST takes ~0.1 s.
* **fwht**: the backend name that :func:`projbench.hadamard.selected_backend` resolves to
  (``backend=`` of the run, else ``$PROJBENCH_FWHT_BACKEND``, else ``torch``) for subspace
  runs; ``None`` for full training, which never calls it.
* **plugins**: for the architecture, dataset and projection names, ``builtin`` or the owning
  third-party plugin as ``name==version``.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import Any


def _tensor_digest(h: Any, t: Any) -> None:
    import torch

    t = t.detach().to("cpu").contiguous()
    h.update(f"{t.dtype}:{tuple(t.shape)};".encode())
    if t.dtype == torch.bfloat16:
        t = t.to(torch.float32)
    h.update(t.numpy().tobytes())


@lru_cache(maxsize=16)
def _fingerprint(dataset: str, data_dir: str | None) -> str:
    from projbench.datasets import load_dataset

    h = hashlib.sha256()
    for split in ("train", "test"):
        x, y = load_dataset(dataset, split, data_dir)
        _tensor_digest(h, x)
        _tensor_digest(h, y)
    return h.hexdigest()[:16]


def data_fingerprint(dataset: str, data_dir: str | os.PathLike[str] | None) -> str:
    """The fingerprint of ``dataset``'s train and test splits as loaded from ``data_dir``."""
    from projbench.datasets import default_data_dir

    folder = default_data_dir(data_dir)
    return _fingerprint(dataset, None if folder is None else str(folder))


def plugin_owner(kind: str, name: str) -> str:
    """``builtin``, or ``plugin==version`` of the third-party plugin that ``name`` resolves to."""
    from projbench.manager import get_registry, plugin_infos

    owner = get_registry(kind).owner(name)
    info = next((p for p in plugin_infos() if p.name == owner), None)
    if info is None or info.builtin:
        return "builtin"
    return f"{info.name}=={info.version}"


def run_provenance(
    architecture: str,
    dataset: str,
    projection: str | None,
    data_dir: str | os.PathLike[str] | None,
    fwht_backend: str | None = None,
    theta0_dataset: str | None = None,
) -> dict[str, Any]:
    """The provenance of one run (see the module docstring); ``theta0_dataset`` names the
    dataset its θ₀ was pretrained on, if any."""
    from projbench.hadamard import selected_backend

    plugins = {"architectures": plugin_owner("architectures", architecture),
               "datasets": plugin_owner("datasets", dataset)}
    fwht = None
    if projection is not None:
        plugins["projections"] = plugin_owner("projections", projection)
        fwht = fwht_backend or selected_backend()
    out = {"data": data_fingerprint(dataset, data_dir), "fwht": fwht, "plugins": plugins}
    if theta0_dataset is not None:
        out["theta0_data"] = data_fingerprint(theta0_dataset, data_dir)
    return out


def provenance_differences(stored: Any, current: dict[str, Any]) -> list[str]:
    """``field: stored -> current`` for each differing field; a record without provenance
    (written before it existed) differs in nothing."""
    if not isinstance(stored, dict):
        return []
    out = []
    for key in ("data", "fwht", "theta0_data"):
        if key in stored and stored.get(key) != current.get(key):
            out.append(f"{key}: {stored.get(key)!r} -> {current.get(key)!r}")
    raw = stored.get("plugins")
    old_plugins: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for kind, owner in (current.get("plugins") or {}).items():
        if kind in old_plugins and old_plugins[kind] != owner:
            out.append(f"{kind} plugin: {old_plugins[kind]!r} -> {owner!r}")
    return out


__all__ = ["data_fingerprint", "plugin_owner", "provenance_differences", "run_provenance"]
