"""Built-in plugin: the datasets ``digits``, ``mnist``, ``fashion-mnist`` and ``cifar10``.

Every split is returned whole, in memory: images float32 (N, C, H, W) normalised per channel as
x = (pixel/255 − mean_c) / std_c with the dataset's standard constants (:data:`NORMALISATION`),
labels int64 (N,) in [0, 10).

- ``digits``: scikit-learn's ``load_digits`` (1,797 real 8×8 greyscale digits, pixel values
  0…16, ships with scikit-learn, no files needed). A stratified split with a fixed seed
  (``random_state=0``) gives 1,437 train / 360 test images; both splits are normalised with the
  mean and std of all *training* pixels (one channel).
- ``mnist``, ``fashion-mnist``, ``cifar10``: the torchvision on-disk layouts under a data folder
  (argument ``data_dir``, else ``$PROJBENCH_DATA``, else ``~/.cache/projbench/data``):

  - ``<dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (IDX files, optionally
    ``.gz``), likewise ``<dir>/FashionMNIST/raw/...``;
  - ``<dir>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (the extracted
    python version of CIFAR-10).

  The files are parsed by :mod:`projbench.builtin.dataset_files` (IDX headers, pickled CIFAR
  batches, with no general unpickling and size bounds checked before anything is allocated)
  without torchvision's md5 check, so a copy in the right layout is enough. When files are
  missing, torchvision's downloader fetches them if ``$PROJBENCH_DOWNLOAD`` allows: ``1``/``true``
  always try, ``0``/``false`` never, unset: try only if the download host answers within a few
  seconds. Missing files that cannot be downloaded raise
  :class:`~projbench.errors.DataNotFoundError` naming the folder searched, the exact files
  expected and how to get them.

Loaded splits are cached in-process (LRU of :data:`CACHE_SIZE` entries keyed by dataset, split
and resolved folder); the cached tensors are shared, so treat them as read-only.
:func:`clear_cache` empties the cache.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from projbench.builtin.dataset_files import read_cifar_batch, read_idx
from projbench.datasets import DatasetSpec, default_data_dir
from projbench.errors import DataNotFoundError, InvalidArgumentError

__all__ = [
    "CACHE_SIZE",
    "DATASETS",
    "DEFAULT_DATA_DIR",
    "DOWNLOAD_ENV",
    "NORMALISATION",
    "clear_cache",
    "expected_files",
]

DOWNLOAD_ENV = "PROJBENCH_DOWNLOAD"
DEFAULT_DATA_DIR = Path.home() / ".cache" / "projbench" / "data"
CACHE_SIZE = 8
DIGITS_TEST_SIZE = 360
DIGITS_SEED = 0

#: per-channel (mean, std) of pixel/255 on the training split (the standard constants)
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

#: dataset -> (folder under the data dir, torchvision class name, source URL, host to probe)
_SOURCES = {
    "mnist": ("MNIST/raw", "MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/",
              "ossci-datasets.s3.amazonaws.com"),
    "fashion-mnist": ("FashionMNIST/raw", "FashionMNIST",
                      "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
    "cifar10": (_CIFAR_FOLDER, "CIFAR10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "www.cs.toronto.edu"),
}


# --------------------------------------------------------------------------------------------
# locating, downloading, error messages


def expected_files(name: str, split: str, root: Path) -> list[Path]:
    """The files dataset ``name`` needs for ``split`` under data folder ``root``."""
    if name == "cifar10":
        return [root / _CIFAR_FOLDER / f for f in _CIFAR_FILES[split]]
    folder = _SOURCES[name][0]
    return [root / folder / f for f in _IDX_FILES[split]]


def _existing(path: Path, allow_gz: bool) -> Path | None:
    """``path`` if it exists, else ``path.gz`` if ``allow_gz`` and that exists, else None."""
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
    return gz if allow_gz and gz.is_file() else None


def _download_mode() -> str:
    raw = os.environ.get(DOWNLOAD_ENV, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return "always"
    if raw in ("0", "false", "no", "off"):
        return "never"
    return "auto"


def _host_reachable(host: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _torchvision_download(name: str, root: Path) -> None:
    """Fetch dataset ``name`` into ``root`` with torchvision's downloader (raises on failure)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, _SOURCES[name][1])
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(str(root), train=train, download=True)


def _missing_message(name: str, split: str, root: Path, missing: list[Path], why: str) -> str:
    folder, _, url, _ = _SOURCES[name]
    how = (
        f"download {url} and extract it into {root}"
        if name == "cifar10"
        else f"download the four files from {url} into {root / folder} (gunzip optional)"
    )
    return (
        f"dataset {name!r} ({split} split) not found in data folder {root}: missing "
        + ", ".join(str(p) for p in missing)
        + f" (expected layout, as torchvision's: {expected_layout(name, root)}). {why} To fix: {how}; or set "
        f"{DOWNLOAD_ENV}=1 on a machine with internet access; or point --data-dir / "
        f"PROJBENCH_DATA at a folder that already has these files."
    )


def expected_layout(name: str, root: Path) -> str:
    """One line listing every file of dataset ``name`` (both splits) under ``root``."""
    if name == "cifar10":
        names = [*_CIFAR_FILES["train"], *_CIFAR_FILES["test"], "batches.meta"]
        return f"{root / _CIFAR_FOLDER}/{{{', '.join(names)}}}"
    names = [*_IDX_FILES["train"], *_IDX_FILES["test"]]
    return f"{root / _SOURCES[name][0]}/{{{', '.join(names)}}}"


def _locate(name: str, split: str, root: Path) -> list[Path]:
    """Paths of the split's files, downloading them first if they are missing and allowed."""
    wanted = expected_files(name, split, root)
    allow_gz = name != "cifar10"
    found = [_existing(p, allow_gz) for p in wanted]
    if all(p is not None for p in found):
        return [p for p in found if p is not None]
    mode = _download_mode()
    if mode == "never":
        why = f"Download is off ({DOWNLOAD_ENV}=0)."
    elif mode == "auto" and not _host_reachable(_SOURCES[name][3]):
        why = f"The download host {_SOURCES[name][3]} is unreachable (offline?)."
    else:
        try:
            _torchvision_download(name, root)
        except Exception as exc:  # noqa: BLE001 - network/IO/integrity errors all mean "not here"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = f"Downloading with torchvision failed: {type(exc).__name__}: {first}."
        else:
            found = [_existing(p, allow_gz) for p in wanted]
            if all(p is not None for p in found):
                return [p for p in found if p is not None]
            why = "torchvision's download finished but the files are still missing."
    missing = [p for p, f in zip(wanted, found) if f is None]
    raise DataNotFoundError(_missing_message(name, split, root, missing, why))


# --------------------------------------------------------------------------------------------
# loaders


def _normalise(images: np.ndarray, name: str) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (pixel/255 − mean_c) / std_c."""
    mean, std = NORMALISATION[name]
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def _check_labels(labels: np.ndarray, n_images: int, where: Path) -> torch.Tensor:
    if labels.shape != (n_images,):
        raise InvalidArgumentError(
            f"{where}: {labels.shape[0]} labels for {n_images} images; the files do not belong together"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise InvalidArgumentError(f"{where}: labels outside 0..9; the file is corrupt")
    return torch.from_numpy(labels.astype(np.int64))


def _load_idx_dataset(name: str, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    img_path, lbl_path = _locate(name, split, root)
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise InvalidArgumentError(f"{img_path}: expected images of shape (N, 28, 28), got {images.shape}")
    y = _check_labels(labels.reshape(-1).astype(np.int64), images.shape[0], lbl_path)
    return _normalise(images[:, None], name), y


def _load_cifar(name: str, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [read_cifar_batch(p) for p in _locate(name, split, root)]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    y = _check_labels(labels, images.shape[0], root / _CIFAR_FOLDER)
    return _normalise(images, name), y


def _load_digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SEED
    )
    mean, std = x_tr.mean(), x_tr.std()
    xs, ys = (x_tr, y_tr) if split == "train" else (x_te, y_te)
    images = torch.from_numpy(((xs - mean) / std).astype(np.float32)).reshape(-1, 1, 8, 8)
    return images, torch.from_numpy(ys)


_FILE_LOADERS: dict[str, Callable[[str, str, Path], tuple[torch.Tensor, torch.Tensor]]] = {
    "mnist": _load_idx_dataset,
    "fashion-mnist": _load_idx_dataset,
    "cifar10": _load_cifar,
}


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached(name: str, split: str, root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "digits":
        return _load_digits_split(split)
    assert root is not None
    return _FILE_LOADERS[name](name, split, Path(root))


def clear_cache() -> None:
    """Forget every split loaded so far in this process."""
    _cached.cache_clear()


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise InvalidArgumentError(f"split must be 'train' or 'test', got {split!r}")


def _resolve_root(data_dir: str | os.PathLike[str] | None) -> Path:
    root = default_data_dir(data_dir)
    return (root if root is not None else DEFAULT_DATA_DIR).expanduser().resolve()


def _file_loader(name: str) -> Callable[[str, Path | None], tuple[torch.Tensor, torch.Tensor]]:
    def load(split: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_split(split)
        return _cached(name, split, str(_resolve_root(data_dir)))

    load.__doc__ = f"Load split 'train' or 'test' of {name} from the data folder (see module docs)."
    return load


def _load_digits(split: str, data_dir: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The scikit-learn digits split (``data_dir`` is ignored: the data ships with sklearn)."""
    _check_split(split)
    return _cached("digits", split, None)


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "digits", (1, 8, 8), 10, _load_digits,
        "scikit-learn digits: 1,797 real 8×8 images, stratified 1,437/360 split (offline)",
        needs_files=False,
    ),
    DatasetSpec("mnist", (1, 28, 28), 10, _file_loader("mnist"), "MNIST handwritten digits, 60k/10k"),
    DatasetSpec(
        "fashion-mnist", (1, 28, 28), 10, _file_loader("fashion-mnist"), "Fashion-MNIST clothing, 60k/10k"
    ),
    DatasetSpec("cifar10", (3, 32, 32), 10, _file_loader("cifar10"), "CIFAR-10 colour images, 50k/10k"),
)
