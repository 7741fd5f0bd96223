"""Dataset specs and :func:`load_dataset`.

A :class:`DatasetSpec` is registered by a plugin (hook ``projbench_register_datasets``). Its
``load`` returns whole splits as in-memory tensors, already normalised with the dataset's
per-channel mean and std: images float32 of shape (N, C, H, W), labels int64 of shape (N,).

:func:`select_classes` keeps the examples of some classes only, for split tasks built from one
dataset (MNIST digits 0–4 then 5–9, CIFAR-10 animals then vehicles): the label ``classes[j]``
becomes ``j``, so a k-class subset is an ordinary k-class task.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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


def check_classes(classes: Sequence[int], num_classes: int, where: str = "classes") -> tuple[int, ...]:
    """``classes`` as a tuple after checking it: at least two distinct integer labels, each in
    0..``num_classes``−1; else one :class:`~projbench.errors.InvalidArgumentError` naming
    ``where``."""
    from projbench.errors import InvalidArgumentError

    ok = (
        isinstance(classes, list | tuple)
        and len(classes) >= 2
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes for c in classes)
    )
    if not ok:
        raise InvalidArgumentError(
            f"{where}: give a list of at least two labels in 0..{num_classes - 1}, not {classes!r}"
        )
    if len(set(classes)) != len(classes):
        raise InvalidArgumentError(f"{where} lists a label twice: {list(classes)}; list each once")
    return tuple(int(c) for c in classes)


def select_classes(
    data: tuple[torch.Tensor, torch.Tensor], classes: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples of ``data`` whose label is in ``classes``, in their original order, with
    label ``classes[j]`` replaced by ``j`` (so labels run over 0..k−1 for k classes).

    E.g. ``classes=[5, 6, 7, 8, 9]`` on MNIST keeps the digits 5–9 as labels 0–4. The inputs are
    indexed (a copy); the dataset's cached tensors are untouched.
    """
    x, y = data
    wanted = torch.as_tensor(list(classes), dtype=y.dtype)
    mapping = torch.full((int(max(int(y.max()), int(wanted.max()))) + 1,), -1, dtype=torch.int64)
    mapping[wanted] = torch.arange(len(wanted), dtype=torch.int64)
    keep = mapping[y] >= 0
    return x[keep], mapping[y[keep]]
