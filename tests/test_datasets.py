"""Datasets: digits, real MNIST (when PROJBENCH_DATA is set), fake Fashion-MNIST/CIFAR-10 files
written here in torchvision's on-disk layout, the missing-data error and the in-process cache."""

from __future__ import annotations

import builtins
import gzip
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from projbench.builtin import dataset_files as F
from projbench.builtin import datasets as D
from projbench.datasets import load_dataset
from projbench.errors import DataNotFoundError, InvalidArgumentError, ProjbenchError
from projbench.manager import get_registry


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PROJBENCH_DOWNLOAD", "0")
    D.clear_cache()
    yield
    D.clear_cache()


# --- writers of the on-disk formats (independent of the readers under test) ----------------


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def make_fake_idx_dataset(root: Path, folder: str, n_train: int, n_test: int, compress: bool = False):
    rng = np.random.default_rng(0)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", labels, compress)
        out[split] = (images, labels)
    return out


def make_fake_cifar(root: Path, per_batch: int = 4, n_test: int = 3):
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out: dict[str, list[tuple[np.ndarray, list[int]]]] = {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        files = [f"{i}.png" for i in range(n)]
        entry = {"batch_label": name, "labels": labels, "data": data, "filenames": files}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        out["test" if name == "test_batch" else "train"].append((data, labels))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}, f, protocol=2)
    return out


# --- digits --------------------------------------------------------------------------------


def test_digits_splits_shapes_and_normalisation() -> None:
    from sklearn.datasets import load_digits

    x_tr, y_tr = load_dataset("digits", "train")
    x_te, y_te = load_dataset("digits", "test")
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert abs(x_tr.mean().item()) < 1e-5 and abs(x_tr.std(unbiased=False).item() - 1) < 1e-5
    # stratified: each class's share of the test split matches its share of the whole set
    full = load_digits()
    counts = np.bincount(full.target, minlength=10)
    assert np.all(np.abs(np.bincount(y_te.numpy(), minlength=10) - counts * 360 / 1797) <= 1)
    # the union of both splits, de-normalised with the training pixels' mean/std, is exactly
    # sklearn's data with its labels (as a multiset of rows)
    raw = full.data.astype(np.float64)
    mean, std = _raw_train_stats(raw, full.target)
    x_all = torch.cat([x_tr.reshape(1437, 64), x_te.reshape(360, 64)]).double().numpy()
    y_all = np.concatenate([y_tr.numpy(), y_te.numpy()])
    back = np.round(x_all * std + mean, 4)
    assert sorted(map(tuple, np.c_[back, y_all])) == sorted(map(tuple, np.c_[raw, full.target]))


def _raw_train_stats(raw: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean/std of the training pixels, recomputed from sklearn's own stratified split."""
    from sklearn.model_selection import train_test_split

    tr, _ = train_test_split(raw, test_size=360, stratify=target, random_state=0)
    return float(tr.mean()), float(tr.std())


def test_digits_deterministic_and_cached() -> None:
    a = load_dataset("digits", "train")
    assert load_dataset("digits", "train")[0] is a[0]  # served from the cache
    D.clear_cache()
    b = load_dataset("digits", "train")
    assert b[0] is not a[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    spec = get_registry("datasets").get("digits")
    assert spec.needs_files is False and spec.input_shape == (1, 8, 8) and spec.num_classes == 10


def test_bad_split() -> None:
    with pytest.raises(InvalidArgumentError):
        load_dataset("digits", "validation")
    with pytest.raises(InvalidArgumentError):
        get_registry("datasets").get("mnist").load("val", None)


# --- Fashion-MNIST / MNIST IDX layout --------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_fake_fashion_mnist(tmp_path: Path, compress: bool) -> None:
    raw = make_fake_idx_dataset(tmp_path, "FashionMNIST", 12, 5, compress)
    mean, std = 0.2860, 0.3530
    for split, n in (("train", 12), ("test", 5)):
        x, y = load_dataset("fashion-mnist", split, tmp_path)
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        images, labels = raw[split]
        assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
        pixels = (x[:, 0].double() * std + mean) * 255
        np.testing.assert_allclose(pixels.numpy(), images, atol=1e-3)


def test_fake_mnist_uses_mnist_folder_and_constants(tmp_path: Path) -> None:
    raw = make_fake_idx_dataset(tmp_path, "MNIST", 3, 2)
    x, _ = load_dataset("mnist", "test", tmp_path)
    expected = (raw["test"][0] / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(DataNotFoundError):  # the Fashion-MNIST folder is a different one
        load_dataset("fashion-mnist", "test", tmp_path)


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_idx_dataset(tmp_path, "FashionMNIST", 4, 2)
    monkeypatch.setenv("PROJBENCH_DATA", str(tmp_path))
    x, _ = load_dataset("fashion-mnist", "test")
    assert x.shape == (2, 1, 28, 28)


def test_corrupt_idx_is_reported(tmp_path: Path) -> None:
    make_fake_idx_dataset(tmp_path, "FashionMNIST", 4, 2)
    path = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InvalidArgumentError, match="truncated"):
        load_dataset("fashion-mnist", "test", tmp_path)
    path.write_bytes(b"not an idx file")
    with pytest.raises(InvalidArgumentError, match="not an IDX"):
        F.read_idx(path)


def test_cache_avoids_reparsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_idx_dataset(tmp_path, "FashionMNIST", 4, 2)
    calls = []
    real = D.read_idx

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(D, "read_idx", counting)
    a = load_dataset("fashion-mnist", "train", tmp_path)
    b = load_dataset("fashion-mnist", "train", str(tmp_path))
    assert a[0] is b[0] and len(calls) == 2  # images + labels, parsed once
    load_dataset("fashion-mnist", "test", tmp_path)
    assert len(calls) == 4


# --- CIFAR-10 ----------------------------------------------------------------------------------


def test_fake_cifar10(tmp_path: Path) -> None:
    raw = make_fake_cifar(tmp_path)
    mean = np.array([0.4914, 0.4822, 0.4465]).reshape(1, 3, 1, 1)
    std = np.array([0.2470, 0.2435, 0.2616]).reshape(1, 3, 1, 1)
    for split, n in (("train", 20), ("test", 3)):
        x, y = load_dataset("cifar10", split, tmp_path)
        assert x.shape == (n, 3, 32, 32) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and y.shape == (n,)
        data = np.concatenate([d for d, _ in raw[split]])
        labels = np.concatenate([lab for _, lab in raw[split]])
        assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
        assert int(y.min()) >= 0 and int(y.max()) <= 9
        # pixel (c, i, j) of image k is data[k, c·1024 + i·32 + j] (red plane, green, blue)
        k, c, i, j = n - 1, 2, 5, 31
        value = (x[k, c, i, j].item() * std[0, c, 0, 0] + mean[0, c, 0, 0]) * 255
        assert abs(value - data[k, c * 1024 + i * 32 + j]) < 1e-3
        pixels = (x.double().numpy() * std + mean) * 255
        np.testing.assert_allclose(pixels.reshape(n, -1), data, atol=1e-3)


def test_cifar_missing_one_batch(tmp_path: Path) -> None:
    make_fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("cifar10", "train", tmp_path)
    msg = str(info.value)
    assert "data_batch_3" in msg and "missing" in msg
    assert load_dataset("cifar10", "test", tmp_path)[0].shape == (3, 3, 32, 32)


# --- missing data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("mnist", ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte"]),
        ("fashion-mnist", ["FashionMNIST/raw/train-images-idx3-ubyte"]),
        ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/data_batch_5"]),
    ],
)
def test_missing_data_error_text(tmp_path: Path, name: str, files: list[str]) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(name, "train", tmp_path)
    err = info.value
    assert isinstance(err, ProjbenchError) and isinstance(err, FileNotFoundError)
    msg = str(err)
    assert str(tmp_path.resolve()) in msg
    for f in files:
        assert str(tmp_path.resolve() / f) in msg
    assert "PROJBENCH_DOWNLOAD" in msg and "PROJBENCH_DATA" in msg
    assert "Download is off" in msg
    assert "Traceback" not in msg and "\n" not in msg
    if name == "cifar10":
        assert "test_batch" in msg and "batches.meta" in msg and "cifar-10-python.tar.gz" in msg


def test_download_failure_is_graceful(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets as tvd

    class Offline:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried ..., got URLError")

    monkeypatch.setattr(tvd, "MNIST", Offline)
    monkeypatch.setenv("PROJBENCH_DOWNLOAD", "1")
    with pytest.raises(DataNotFoundError, match="Downloading with torchvision failed: RuntimeError"):
        load_dataset("mnist", "test", tmp_path)


def test_auto_download_skips_when_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROJBENCH_DOWNLOAD")
    monkeypatch.setattr(D, "_host_reachable", lambda host, timeout=3.0: False)
    monkeypatch.setattr(D, "_torchvision_download", lambda *a: pytest.fail("must not download"))
    with pytest.raises(DataNotFoundError, match="unreachable"):
        load_dataset("cifar10", "test", tmp_path)


def test_download_then_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With downloads allowed, torchvision's class is called with the data folder; its files load."""
    import torchvision.datasets as tvd

    seen = []

    class FakeFashion:
        def __init__(self, root, train=True, download=False):
            seen.append((Path(root), train, download))
            if not (Path(root) / "FashionMNIST" / "raw").exists():
                make_fake_idx_dataset(Path(root), "FashionMNIST", 6, 4)

    monkeypatch.setattr(tvd, "FashionMNIST", FakeFashion)
    monkeypatch.setenv("PROJBENCH_DOWNLOAD", "1")
    x, _ = load_dataset("fashion-mnist", "test", tmp_path / "new")
    assert x.shape == (4, 1, 28, 28)
    assert seen and all(r == (tmp_path / "new").resolve() and d for r, _, d in seen)


# --- real MNIST ----------------------------------------------------------------------------------


def test_real_mnist(data_dir: Path) -> None:
    if not (data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"no MNIST under {data_dir}")
    import torchvision

    x_tr, y_tr = load_dataset("mnist", "train", data_dir)
    x_te, y_te = load_dataset("mnist", "test", data_dir)
    assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 1, 28, 28)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    # class counts published with the data (shared/data/README.md)
    assert torch.bincount(y_tr).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(y_te).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # the standard constants are the training set's mean/std of pixel/255
    assert abs(x_tr.mean().item()) < 1e-3 and abs(x_tr.std().item() - 1) < 1e-3
    # same pixels and labels as torchvision's own MNIST reader
    ref = torchvision.datasets.MNIST(str(data_dir), train=False, download=False)
    torch.testing.assert_close(x_te[:, 0], (ref.data.float() / 255 - 0.1307) / 0.3081)
    assert torch.equal(y_te, ref.targets)


# --- broken files: one-line ProjbenchError naming the file and what to do --------------------


def _assert_one_line_about(exc: BaseException, path: Path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg and "delete it" in msg


def test_truncated_gz_idx_is_a_clear_error(tmp_path: Path) -> None:
    """gzip raises EOFError on a cut-off stream, which click would print as a bare 'Aborted!'."""
    make_fake_idx_dataset(tmp_path, "FashionMNIST", 4, 2, compress=True)
    path = tmp_path / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(InvalidArgumentError) as info:
        load_dataset("fashion-mnist", "test", tmp_path)
    _assert_one_line_about(info.value, path)
    assert not isinstance(info.value, EOFError)


def test_random_bytes_in_gz_is_a_clear_error(tmp_path: Path) -> None:
    make_fake_idx_dataset(tmp_path, "MNIST", 4, 2, compress=True)
    path = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(InvalidArgumentError) as info:
        load_dataset("mnist", "train", tmp_path)
    _assert_one_line_about(info.value, path)


def test_gz_with_a_corrupt_deflate_stream_is_a_clear_error(tmp_path: Path) -> None:
    """A valid gzip header followed by garbage: zlib.error inside gzip."""
    make_fake_idx_dataset(tmp_path, "MNIST", 4, 2, compress=True)
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[12:] = b"\xff" * (len(raw) - 12)
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidArgumentError) as info:
        load_dataset("mnist", "test", tmp_path)
    _assert_one_line_about(info.value, path)


@pytest.mark.parametrize("keep", [0, 3, 9, 100])
def test_truncated_raw_idx_is_a_clear_error(tmp_path: Path, keep: int) -> None:
    """Cut inside the magic number, inside the size fields and inside the data."""
    make_fake_idx_dataset(tmp_path, "MNIST", 4, 2)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(InvalidArgumentError) as info:
        load_dataset("mnist", "train", tmp_path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert "download the dataset again" in str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "list", "no-data", "bad-data"])
def test_broken_cifar_batch_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    make_fake_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01garbage" * 10)
    else:
        payload = {
            "list": [1, 2, 3],
            "no-data": {"labels": [1]},
            "bad-data": {"data": "not pixels", "labels": [1, 2]},
        }[damage]
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(InvalidArgumentError) as info:
        load_dataset("cifar10", "test", tmp_path)
    _assert_one_line_about(info.value, path)


# --- hostile CIFAR-10 batches: only numpy's own globals are resolved, nothing else runs --------


class _RunsCommand:
    """Pickles as a call of ``callable_(argument)``: what a planted batch would run on load."""

    def __init__(self, callable_: object, argument: str) -> None:
        self.callable_, self.argument = callable_, argument

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (self.callable_, (self.argument,))


def _plant_batch(path: Path, payload: object, protocol: int) -> None:
    with open(path, "wb") as f:
        pickle.dump(payload, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("where", ["data", "labels"])
@pytest.mark.parametrize("how", ["os.system", "builtins.exec"])
def test_planted_batch_is_refused_without_running_its_code(
    tmp_path: Path, protocol: int, where: str, how: str
) -> None:
    make_fake_cifar(tmp_path)
    marker = tmp_path / "marker"
    evil = (_RunsCommand(os.system, f"touch {marker}") if how == "os.system"
            else _RunsCommand(builtins.exec, f"open({str(marker)!r}, 'w').close()"))
    entry: dict[str, object] = {"data": np.zeros((1, 3072), np.uint8), "labels": [1]}
    entry[where] = evil if where == "data" else [evil]
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    _plant_batch(path, entry, protocol)
    with pytest.raises(InvalidArgumentError) as info:
        load_dataset("cifar10", "test", tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "delete it" in msg
    assert ("system'" if how == "os.system" else "exec'") in msg  # the global, as the pickle names it
    assert not marker.exists()


def test_planted_batch_through_the_cli_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    make_fake_cifar(tmp_path)
    marker = tmp_path / "marker"
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    _plant_batch(path, {"data": _RunsCommand(os.system, f"touch {marker}"), "labels": [1]}, 4)
    env = {**os.environ, "PROJBENCH_DOWNLOAD": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "projbench", "intrinsic-dim", "--arch", "lenet", "--dataset", "cifar10",
         "--proj", "fastfood", "--seeds", "1", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(path) in errors[0] and "'posix.system'" in errors[0]
    assert not marker.exists()


def test_numpy1_protocol2_python2_and_protocol5_batches_still_load(tmp_path: Path) -> None:
    """The forms a genuine batch can take: numpy 1's module names, Python 2 byte strings (read
    as latin-1 text), protocol 5's _frombuffer, labels as a list or an integer array."""
    data = np.random.default_rng(2).integers(0, 256, size=(3, 3072), dtype=np.uint8)
    path = tmp_path / "batch"
    numpy1 = pickle.dumps({b"data": data, b"labels": [0, 9, 4]}, protocol=2)
    path.write_bytes(numpy1.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    images, labels = F.read_cifar_batch(path)
    assert np.array_equal(images.reshape(3, -1), data) and labels.tolist() == [0, 9, 4]

    class Python2Array:  # the state of a Python 2 ndarray pickle: raw data as a (latin-1) str
        def __reduce__(self):  # type: ignore[no-untyped-def]
            from numpy._core.multiarray import _reconstruct

            state = (1, (3, 3072), np.dtype("u1"), False, data.tobytes().decode("latin1"))
            return (_reconstruct, (np.ndarray, (0,), b"b"), state)

    _plant_batch(path, {"data": Python2Array(), "labels": [1, 2, 3]}, 2)
    assert np.array_equal(F.read_cifar_batch(path)[0].reshape(3, -1), data)
    _plant_batch(path, {"data": data, "labels": np.array([5, 6, 7])}, 5)
    images, labels = F.read_cifar_batch(path)
    assert np.array_equal(images.reshape(3, -1), data) and labels.tolist() == [5, 6, 7]


@pytest.mark.parametrize(
    "damage", ["huge-shape", "object-dtype", "float-data", "short-labels", "bool-labels"]
)
def test_batch_with_inconsistent_array_is_refused_before_allocating(tmp_path: Path, damage: str) -> None:
    from numpy._core.multiarray import _reconstruct

    class Array:
        def __init__(self, shape: tuple[int, ...], dtype: np.dtype, raw: object) -> None:
            self.state = (1, shape, dtype, False, raw)

        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (_reconstruct, (np.ndarray, (0,), b"b"), self.state)

    data: object = np.zeros((2, 3072), np.uint8)
    labels: object = [1, 2]
    if damage == "huge-shape":  # 2**40 rows announced, 3072 bytes present
        data = Array((2**40, 3072), np.dtype("u1"), b"\0" * 3072)
    elif damage == "object-dtype":
        data = Array((1,), np.dtype("O"), [1])
    elif damage == "float-data":
        data = np.zeros((2, 3072), np.float32)
    elif damage == "short-labels":
        labels = [1]
    else:
        labels = [True, False]
    path = tmp_path / "batch"
    _plant_batch(path, {"data": data, "labels": labels}, 2)
    with pytest.raises(InvalidArgumentError) as info:
        F.read_cifar_batch(path)
    _assert_one_line_about(info.value, path)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_batch_that_is_not_a_regular_file_is_refused_without_blocking(
    tmp_path: Path, kind: str, deadline
) -> None:
    path = tmp_path / "data_batch_1"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path.mkdir()
    with deadline(20), pytest.raises(InvalidArgumentError, match="not a regular file") as info:
        F.read_cifar_batch(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_oversized_batch_and_idx_bomb_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_fake_cifar(tmp_path)
    monkeypatch.setattr(F, "MAX_CIFAR_BATCH_BYTES", 1000)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with pytest.raises(InvalidArgumentError, match="over the 1,000 read at most") as info:
        F.read_cifar_batch(path)
    _assert_one_line_about(info.value, path)
    # a small .gz that unpacks past the cap is cut off after MAX_IDX_BYTES + 1 bytes
    monkeypatch.setattr(F, "MAX_IDX_BYTES", 10_000)
    bomb = tmp_path / "t10k-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 10**6) + bytes(10**6)))
    with pytest.raises(InvalidArgumentError, match="unpacks to more than 10,000 bytes") as info:
        F.read_idx(bomb)
    _assert_one_line_about(info.value, bomb)


def test_real_cifar10_loads_with_the_restricted_reader(data_dir: Path) -> None:
    folder = data_dir / "cifar-10-batches-py"
    if not (folder / "test_batch").exists():
        pytest.skip(f"no CIFAR-10 under {data_dir}")
    images, labels = F.read_cifar_batch(folder / "data_batch_1")
    assert images.shape == (10_000, 3, 32, 32) and images.dtype == np.uint8 and labels.shape == (10_000,)
    x, y = load_dataset("cifar10", "test", data_dir)
    assert x.shape == (10_000, 3, 32, 32) and x.dtype == torch.float32
    # facts published with the data (shared/data/README.md)
    assert y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.bincount(y).tolist() == [1000] * 10
