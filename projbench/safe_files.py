"""Reading a file that may be hostile: a regular file under a size cap, or nothing.

:func:`read_regular_file` is how projbench reads data and model files it did not write (dataset
files, ``.pjsub`` models): it checks with ``os.stat`` *before* opening that the path is a
regular file of at most ``limit`` bytes — opening a FIFO blocks, reading ``/dev/zero`` never
ends, a folder is no file — then opens it non-blocking and checks again with ``fstat``, in case
the path was swapped meanwhile, and never reads more than ``limit`` bytes. A path that fails
the checks raises :class:`UnsafeFileError`; what the error tells the user is the caller's.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafeFileError(Exception):
    """``path`` is not a regular file (``size`` None) or holds more than ``limit`` bytes."""

    def __init__(self, path: Path, size: int | None, limit: int) -> None:
        what = "not a regular file" if size is None else f"{size:,} bytes, over the limit of {limit:,}"
        super().__init__(f"{path}: {what}")
        self.path, self.size, self.limit = path, size, limit

    @property
    def not_regular(self) -> bool:
        """True for a folder, FIFO, device or socket (rather than a file too large)."""
        return self.size is None


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes (see the module
    docstring); :class:`UnsafeFileError` if not, ``OSError`` if it cannot be read."""
    path = Path(path)
    st = os.stat(path)
    if stat.S_ISREG(st.st_mode) and st.st_size <= limit:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size <= limit:
                data = f.read(limit + 1)
                if len(data) <= limit:
                    return data
                raise UnsafeFileError(path, len(data), limit)  # it grew since fstat
    raise UnsafeFileError(path, None if not stat.S_ISREG(st.st_mode) else st.st_size, limit)


__all__ = ["UnsafeFileError", "read_regular_file"]
