"""Exclusive ownership of a results file while one driver writes it.

A study folder or a run file is written by one driver at a time. :class:`FileLock` takes an
exclusive, non-blocking ``fcntl.flock`` on a sidecar ``<file>.lock`` and writes the holder's
``pid`` and host into it; a second driver gets :class:`LockedError` with one line naming the
holder. The kernel drops the lock when the holder's process dies (even by ``kill -9``), so a
stale ``.lock`` file never blocks anyone: only a live holder does.

On systems without ``fcntl`` (Windows) locking is a no-op.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from types import TracebackType

from projbench.errors import InvalidArgumentError

try:  # pragma: no cover - platform dependent
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class LockedError(InvalidArgumentError):
    """Another live process holds the file."""


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar lock file of ``path``: ``path`` + ``.lock`` in the same folder."""
    p = Path(path)
    return p.with_name(p.name + ".lock")


def _holder(file: Path) -> str:
    try:
        info = json.loads(file.read_text(encoding="utf-8")[:4096])
        return f"pid {int(info['pid'])} on {str(info['host'])[:100]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class FileLock:
    """``with FileLock(path, what="study folder runs/x"):`` — exclusive while the block runs.

    :meth:`acquire` raises :class:`LockedError` at once when another process holds the lock
    (it never waits). The lock is released by :meth:`release`, at the end of the ``with``
    block, or by the death of the process.
    """

    def __init__(self, path: str | os.PathLike[str], what: str | None = None) -> None:
        self.path = lock_path(path)
        self.what = what or str(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FileLock:
        if self._fd is not None or fcntl is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            reason = exc.strerror or exc
            raise InvalidArgumentError(f"cannot create lock file {self.path}: {reason}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LockedError(
                f"{self.what} is in use by {_holder(self.path)}; wait for it to finish or stop it, "
                "then rerun (two drivers on one file would mix their results)"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        except OSError:
            pass  # the lock itself is held; the holder's name is only informative
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


__all__ = ["FileLock", "LockedError", "lock_path"]
