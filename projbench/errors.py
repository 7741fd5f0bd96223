"""Exceptions a user can act on.

Every error projbench raises on purpose derives from :class:`ProjbenchError`; the CLI prints
such errors as one line (``Error: ...``, no traceback) and exits with status 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ProjbenchError(Exception):
    """Base class of every deliberate projbench error."""


class InvalidArgumentError(ProjbenchError, ValueError):
    """An argument has the wrong value, type or shape; the message says what to pass instead."""


class UnknownNameError(ProjbenchError, LookupError):
    """A name (projection, architecture, dataset, backend, suite) is not registered."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(ProjbenchError):
    """Two plugins registered the same name in one registry."""


class ResourceLimitError(ProjbenchError):
    """A requested object would exceed a memory (or other) budget."""


class DataNotFoundError(ProjbenchError, FileNotFoundError):
    """A dataset's files are missing and cannot be downloaded."""


def closest_match(name: str, candidates: Iterable[str]) -> str | None:
    """The registered name most similar to ``name`` (difflib ratio >= 0.5), or None."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None
