"""Readers of the dataset file formats the built-in datasets ship in: IDX and pickled CIFAR-10.

- **IDX** (LeCun's MNIST format, optionally gzipped): two zero bytes, type code 0x08 (unsigned
  bytes), the number of dimensions n (1…4), n big-endian uint32 sizes, then the data in C order;
  :func:`read_idx` returns the uint8 array and checks that the data has exactly ∏ sizes bytes.
- **CIFAR-10 python batch**: a pickle of a dict with ``data``, an (N, 3072) uint8 array (each
  row the 1024 red, then green, then blue values of a 32×32 image in row-major order), and
  ``labels``, N integers; :func:`read_cifar_batch` returns images (N, 3, 32, 32) and labels.

Threat model: a data folder may hold files that are corrupt, truncated or crafted. So

- no general unpickling: the CIFAR pickle is read by :class:`_CifarUnpickler`, which resolves
  only the handful of numpy/codecs globals a real batch names, each mapped to a harmless stand-in
  that builds integer arrays from byte strings; any other global (``os.system``, ``eval``…) or
  persistent id is refused before anything is called;
- bounds before allocation: a file must be a regular file (not a FIFO, device or folder, which
  could block or never end) of at most :data:`MAX_CIFAR_BATCH_BYTES` / :data:`MAX_IDX_BYTES`
  bytes, checked before it is opened; a ``.gz`` is unpacked to at most :data:`MAX_IDX_BYTES` + 1
  bytes; an array's shape is checked against its byte count before numpy sees it;
- every failure is one :class:`~projbench.errors.InvalidArgumentError` naming the file and what
  to do (never ``EOFError``, which click would take for a user abort, nor a raw pickle error).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import zlib
from pathlib import Path

import numpy as np

from projbench.errors import InvalidArgumentError
from projbench.safe_files import UnsafeFileError, read_regular_file

__all__ = [
    "MAX_CIFAR_BATCH_BYTES",
    "MAX_IDX_BYTES",
    "read_cifar_batch",
    "read_idx",
]

#: largest CIFAR-10 batch file read (a real one is 30.7 MB); checked before opening
MAX_CIFAR_BATCH_BYTES = 64 * 1024**2
#: largest IDX file read, after gunzip (MNIST's training images are 47 MB)
MAX_IDX_BYTES = 256 * 1024**2


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
