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

  The files are parsed here (IDX headers, pickled CIFAR batches) without torchvision's md5 check,
  so a copy in the right layout is enough. When files are missing, torchvision's downloader
  fetches them if ``$PROJBENCH_DOWNLOAD`` allows: ``1``/``true`` always try, ``0``/``false`` never,
  unset: try only if the download host answers within a few seconds. Missing files that cannot be
  downloaded raise :class:`~projbench.errors.DataNotFoundError` naming the folder searched, the
  exact files expected and how to get them.

Loaded splits are cached in-process (LRU of :data:`CACHE_SIZE` entries keyed by dataset, split
and resolved folder); the cached tensors are shared, so treat them as read-only.
:func:`clear_cache` empties the cache.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
import os
import pickle
import socket
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from projbench.datasets import DatasetSpec, default_data_dir
from projbench.errors import DataNotFoundError, InvalidArgumentError
from projbench.safe_files import UnsafeFileError, read_regular_file

__all__ = [
    "CACHE_SIZE",
    "DATASETS",
    "DEFAULT_DATA_DIR",
    "DOWNLOAD_ENV",
    "MAX_CIFAR_BATCH_BYTES",
    "MAX_IDX_BYTES",
    "NORMALISATION",
    "clear_cache",
    "expected_files",
    "read_cifar_batch",
    "read_idx",
]

DOWNLOAD_ENV = "PROJBENCH_DOWNLOAD"
DEFAULT_DATA_DIR = Path.home() / ".cache" / "projbench" / "data"
CACHE_SIZE = 8
DIGITS_TEST_SIZE = 360
DIGITS_SEED = 0
#: largest CIFAR-10 batch file read (a real one is 30.7 MB); checked before opening
MAX_CIFAR_BATCH_BYTES = 64 * 1024**2
#: largest IDX file read, after gunzip (MNIST's training images are 47 MB)
MAX_IDX_BYTES = 256 * 1024**2

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
# file readers


def _bad_file(path: Path, what: str, exc: BaseException | str) -> InvalidArgumentError:
    """One-line error for a data file that exists but cannot be read: what it should be, why it
    failed and what to do (delete it and download again, or put the right files there)."""
    why = exc if isinstance(exc, str) else f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}"
    why = why.splitlines()[0] if why else why
    return InvalidArgumentError(
        f"{path} is not a readable {what} ({why}); the file is truncated or corrupt: delete it and "
        "download the dataset again, or put an intact copy there"
    )


def _open_maybe_gz(path: Path) -> bytes:
    """The (decompressed) bytes of ``path``, at most :data:`MAX_IDX_BYTES` of them; a truncated
    or non-gzip ``.gz`` file, one that is not a regular file or one that cannot be read raises
    :class:`InvalidArgumentError` naming the file (never EOFError, which click would take for a
    user abort, nor ``gzip.BadGzipFile``)."""
    raw = _read_regular_file(path, MAX_IDX_BYTES, "file")
    if path.suffix != ".gz":
        return raw
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw), mode="rb") as f:
            data = f.read(MAX_IDX_BYTES + 1)
    except EOFError as exc:  # a .gz cut short ("Compressed file ended before the end-of-stream")
        raise _bad_file(path, "gzip file", exc) from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise _bad_file(path, "gzip file", exc) from None
    if len(data) > MAX_IDX_BYTES:
        raise _bad_file(path, "gzip file", f"it unpacks to more than {MAX_IDX_BYTES:,} bytes")
    return data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse an IDX file (LeCun's MNIST format; ``.gz`` allowed) of unsigned bytes.

    Header: two zero bytes, type code 0x08 (uint8), number of dimensions n, then n big-endian
    uint32 sizes; then the data in C order. Returns a uint8 array of those sizes.
    """
    path = Path(path)
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise InvalidArgumentError(
            f"{path} is not an IDX file of unsigned bytes (bad header {data[:4]!r}); "
            "delete it and download the dataset again"
        )
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = math.prod(dims)
    if len(data) - offset != expected:
        raise InvalidArgumentError(
            f"{path} is truncated or corrupt: header says {dims} = {expected} bytes of data, "
            f"the file has {len(data) - offset}; delete it and download the dataset again"
        )
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=offset).reshape(dims)


_INT_CODES = frozenset(f"{k}{n}" for k in "iu" for n in (1, 2, 4, 8))


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle names a global that no CIFAR-10 batch uses."""


class _DTypeStub:
    """``numpy.dtype(code, align, copy)`` as a batch uses it: a plain integer code (``'u1'``…),
    whose pickled state may only set the byte order. Nothing of numpy runs on the file's data."""

    __slots__ = ("code", "order")

    def __init__(self, code: object, align: object = False, copy: object = False) -> None:
        if not isinstance(code, str) or code not in _INT_CODES:
            raise pickle.UnpicklingError(f"numpy.dtype({code!r}) is not a plain integer dtype")
        self.code, self.order = code, "|"

    def __setstate__(self, state: object) -> None:
        if (not isinstance(state, tuple) or len(state) not in (8, 9) or state[1] not in ("<", ">", "|", "=")
                or any(v is not None for v in state[2:5])):
            raise pickle.UnpicklingError("numpy.dtype state is not that of a plain integer dtype")
        self.order = state[1]

    def resolve(self) -> np.dtype:
        """The numpy dtype described."""
        return np.dtype(self.code).newbyteorder("=" if self.order == "|" else self.order)  # type: ignore[arg-type]


class _ArrayStub:
    """An array under construction: ``_reconstruct(ndarray, (0,), b'b')`` followed by the state
    (version, shape, dtype, is_fortran, raw bytes), or ``_frombuffer(raw, dtype, shape, order)``.
    The shape and byte count are checked against each other before anything is allocated."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5) or self.array is not None:
            raise pickle.UnpicklingError("numpy array state is malformed")
        shape, dtype, fortran, raw = state[-4:]
        self.array = _stub_array(raw, dtype, shape, "F" if fortran is True else "C")


def _stub_array(raw: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """A read-only array over ``raw`` after checking that it holds exactly ``shape`` × dtype."""
    if isinstance(raw, str):  # a Python 2 str read with encoding="latin1"
        try:
            raw = raw.encode("latin1")
        except UnicodeEncodeError:
            raise pickle.UnpicklingError("numpy array data is not a byte string") from None
    if (not isinstance(raw, bytes | bytearray) or not isinstance(dtype, _DTypeStub)
            or not isinstance(shape, tuple) or len(shape) > 2 or order not in ("C", "F")
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise pickle.UnpicklingError("numpy array state is not a 1-D or 2-D integer array")
    dt = dtype.resolve()
    if math.prod(shape) * dt.itemsize != len(raw):
        raise pickle.UnpicklingError(f"numpy array of shape {shape} does not match its {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dt).reshape(shape, order=order)  # type: ignore[arg-type]


class _Token:
    """Stands for a class a batch may name but never call (``numpy.ndarray``)."""

    __slots__ = ()


_NDARRAY = _Token()


class _Reconstruct:
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), typecode)``: an empty array stub."""

    __slots__ = ()

    def __call__(self, subtype: object, shape: object, typecode: object) -> _ArrayStub:
        if subtype is not _NDARRAY or shape != (0,):
            raise pickle.UnpicklingError("_reconstruct is called with other arguments than numpy's")
        return _ArrayStub()


class _FromBuffer:
    """``numpy.core.numeric._frombuffer(raw, dtype, shape, order)`` (pickle protocol 5)."""

    __slots__ = ()

    def __call__(self, raw: object, dtype: object, shape: object, order: object) -> _ArrayStub:
        stub = _ArrayStub()
        stub.array = _stub_array(raw, dtype, shape, order)
        return stub


class _DType:
    """``numpy.dtype`` as a batch calls it (see :class:`_DTypeStub`)."""

    __slots__ = ()

    def __call__(self, code: object, align: object = False, copy: object = False) -> _DTypeStub:
        return _DTypeStub(code, align, copy)


class _Latin1Encode:
    """``_codecs.encode(text, 'latin1')``: how Python 3 pickles bytes at protocol 2."""

    __slots__ = ()

    def __call__(self, text: object, encoding: object = "latin1") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("_codecs.encode is called with other arguments than latin1 text")
        try:
            return text.encode("latin1")
        except UnicodeEncodeError:
            raise pickle.UnpicklingError("_codecs.encode of text that is not latin1") from None


#: every global a CIFAR-10 python batch refers to (original protocol-2 batches, re-pickled
#: protocol-4/5 ones, numpy 1 and 2 module names), each mapped to a harmless stand-in
_CIFAR_GLOBALS: dict[tuple[str, str], object] = {
    **{(m, "_reconstruct"): _Reconstruct() for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _FromBuffer() for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DType(),
    ("_codecs", "encode"): _Latin1Encode(),
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_CIFAR_GLOBALS`; any other global (``os.system``,
    ``builtins.eval``…) raises :class:`_ForbiddenGlobal` before anything is called."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise _ForbiddenGlobal("the global " + repr(f"{module}.{name}"[:200])) from None

    def persistent_load(self, pid: object) -> object:
        raise _ForbiddenGlobal("a persistent id")


def _read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of ``path`` after checking, before opening, that it is a regular file of at most
    ``limit`` bytes (a FIFO, device or directory is refused: opening or reading one could block
    or never end); opened non-blocking and checked again (:func:`projbench.safe_files.read_regular_file`)."""
    try:
        return read_regular_file(path, limit)
    except UnsafeFileError as exc:
        if exc.not_regular:
            raise _bad_file(path, what, "it is not a regular file but a folder, FIFO or device") from None
        raise _bad_file(path, what, f"it has {exc.size:,} bytes, over the {limit:,} read at most") from None
    except PermissionError as exc:
        raise InvalidArgumentError(
            f"{path} cannot be read ({exc.strerror}); fix its permissions or point --data-dir / "
            "PROJBENCH_DATA at a readable copy"
        ) from None
    except OSError as exc:
        raise _bad_file(path, what, exc) from None


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """A pickled CIFAR-10 python batch -> (images uint8 (N, 3, 32, 32), labels int64 (N,)).

    The pickle holds a dict with ``data`` (N, 3072) uint8, each row the 1024 red, then green,
    then blue values of a 32×32 image in row-major order, and ``labels`` (N integers).

    Checked, in order: the path is a regular file of at most :data:`MAX_CIFAR_BATCH_BYTES`;
    the pickle names only the numpy globals a batch uses (:class:`_CifarUnpickler`: anything
    else, e.g. a ``__reduce__`` calling ``os.system``, is refused without being called, and numpy
    only sees byte strings whose length matches their shape); the result is a dict whose
    ``data`` is a (N, 3072) uint8 array and whose ``labels`` are N integers. Each failure is one
    :class:`InvalidArgumentError` naming the file.
    """
    path = Path(path)
    what = "CIFAR-10 python batch"
    raw = _read_regular_file(path, MAX_CIFAR_BATCH_BYTES, what)
    try:
        entry = _CifarUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _ForbiddenGlobal as exc:
        raise InvalidArgumentError(
            f"{path} is not a CIFAR-10 python batch: its pickle asks for {exc}, which a batch "
            "never uses (refused; nothing in the file was run): delete it and download the "
            "dataset again"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure (EOFError included) means a bad file
        raise _bad_file(path, what, exc) from None
    if not isinstance(entry, dict):
        raise _bad_file(path, what, f"it holds a {type(entry).__name__}, not a dict")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    if "data" not in entry or "labels" not in entry:
        raise _bad_file(path, what, "no 'data'/'labels' entries")
    data, labels = entry["data"], entry["labels"]
    data = data.array if isinstance(data, _ArrayStub) else None
    if data is None or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise _bad_file(path, what, "its 'data' is not a (N, 3072) uint8 array")
    if isinstance(labels, _ArrayStub):
        labels = labels.array
    if not isinstance(labels, list | np.ndarray):
        raise _bad_file(path, what, "its 'labels' are not a list of integers")
    if len(labels) != data.shape[0]:
        raise _bad_file(path, what, f"{len(labels)} labels for {data.shape[0]} images")
    if isinstance(labels, list) and not all(type(v) is int for v in labels):
        raise _bad_file(path, what, "its 'labels' are not all integers")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _bad_file(path, what, exc) from None
    if labels.ndim != 1:
        raise _bad_file(path, what, f"expected N labels, got an array of shape {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


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
