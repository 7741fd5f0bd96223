"""Reading a file that may be hostile: regular files under the cap only, nothing that blocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from projbench.safe_files import UnsafeFileError, read_regular_file


def test_a_regular_file_within_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    assert read_regular_file(path, 5) == b"12345"


def test_a_file_over_the_cap_is_refused_with_its_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"123456")
    with pytest.raises(UnsafeFileError) as info:
        read_regular_file(path, 5)
    assert not info.value.not_regular and info.value.size == 6 and info.value.limit == 5


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_what_is_no_regular_file_is_refused_without_blocking(tmp_path: Path, kind: str, deadline) -> None:
    path = tmp_path / "x"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block until a writer comes
    elif kind == "folder":
        path.mkdir()
    else:
        path = Path("/dev/zero")  # endless
    with deadline(20), pytest.raises(UnsafeFileError) as info:
        read_regular_file(path, 1 << 20)
    assert info.value.not_regular and info.value.size is None


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", 10)
