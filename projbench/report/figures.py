"""Writing figures so that a reader never sees half a file.

:func:`save_figure` renders a matplotlib figure to a temporary file beside the target and
renames it into place (atomic on POSIX): a full disk or a kill leaves either the previous
figure or none, never a truncated PNG, and the failure is one line
(:class:`~projbench.errors.InvalidArgumentError`) saying where and why.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError


def save_figure(fig: Any, path: str | os.PathLike[str], **savefig_kwargs: Any) -> Path:
    """Save ``fig`` to ``path`` (PNG unless the suffix says otherwise) atomically; returns it."""
    target = Path(path)
    savefig_kwargs.setdefault("dpi", 120)
    tmp_name = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; a figure is an ordinary file
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=target.suffix.lstrip(".") or "png", **savefig_kwargs)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as exc:
        import errno

        advice = {errno.ENOSPC: "free space on its device", errno.EDQUOT: "free space within your quota",
                  errno.EROFS: "its file system is read-only"}.get(exc.errno or 0, "check the folder")
        raise InvalidArgumentError(
            f"cannot write figure {target}: {exc.strerror or exc}; {advice}, or choose another folder "
            "(--figures DIR)"
        ) from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target


__all__ = ["save_figure"]
