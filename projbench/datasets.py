"""Dataset specs and :func:`load_dataset`.

A :class:`DatasetSpec` is registered by a plugin (hook ``projbench_register_datasets``). Its
``load`` returns whole splits as in-memory tensors, already normalised with the dataset's
per-channel mean and std: images float32 of shape (N, C, H, W), labels int64 of shape (N,).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

DATA_ENV = "PROJBENCH_DATA"


@dataclass(frozen=True)
class DatasetSpec:
    """``load(split, data_dir)`` -> (images, labels); split is ``"train"`` or ``"test"``.

    ``data_dir`` may be None for datasets that need no files. A dataset whose files are missing
    and cannot be downloaded raises :class:`projbench.errors.DataNotFoundError` saying which
    files to put where.
    """

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    load: Callable[[str, Path | None], tuple[torch.Tensor, torch.Tensor]]
    description: str = ""
    needs_files: bool = True


def default_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``data_dir`` if given, else ``$PROJBENCH_DATA``, else None."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


def load_dataset(
    name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) float32, normalised, and labels (N,) int64 of dataset ``name``."""
    from projbench.errors import InvalidArgumentError
    from projbench.manager import get_registry

    if split not in ("train", "test"):
        raise InvalidArgumentError(f"split must be 'train' or 'test', got {split!r}")
    spec: DatasetSpec = get_registry("datasets").get(name)
    return spec.load(split, default_data_dir(data_dir))
