"""Append-only JSON-lines files: the one writer, reader and float spelling behind run files
(:mod:`projbench.results`) and study folders (:mod:`projbench.study.store`).

Writing. :func:`open_append` opens a file for appending — a new one exclusively, an existing
one after ending a torn last line (a crash mid-write) with a newline, so the next record starts
a line of its own. :func:`append_record` writes one record as one line and fsyncs it, all or
nothing (:func:`append_line`). After a refused write (:func:`write_failure` words the error)
:func:`abandon_file` closes the file and, for a new file without a complete first line,
removes it.

Non-finite floats. JSON has no NaN or infinity: :func:`to_json` writes them as
``{"float": "nan"}``, ``{"float": "inf"}``, ``{"float": "-inf"}`` — tagged, so no string
value is ever mistaken for a number on reading. :func:`restore_nonfinite` reads them back, and
with ``bare_strings=True`` also the plain strings ``"nan"``, ``"inf"``, ``"-inf"`` that run
files used to hold in their statistics.

Reading. :func:`parse_lines` splits a file into numbered lines and parses each on its own: a
line that is not UTF-8, not JSON, nested deeper than :data:`MAX_DEPTH` or not an object is
reported with the reason, never used; a line cut off by a crash — not JSON, and the last line
of the file or followed by a ``resume`` record (a writer that reopened the file started a fresh
line) — is dropped and only flagged (``torn``). What a record must hold is each format's own
check.
"""

from __future__ import annotations

import errno
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the plain strings that run files used for non-finite floats (``str(float)``)
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: deepest nesting of objects and lists a line may have (records of both formats stay under 8);
#: deeper lines are refused so that nothing that walks a record recursively can overflow the stack
MAX_DEPTH = 64
#: JSON's names for the types :func:`json.loads` returns, for messages
JSON_TYPE_NAMES: dict[type, str] = {
    dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number",
    bool: "a boolean", type(None): "null",
}

#: what to do when a device refuses bytes: a full disk, an exhausted quota, a read-only mount
DEVICE_FULL_ADVICE = {
    errno.ENOSPC: "free space on its device",
    errno.EDQUOT: "free space within your disk quota",
    errno.EROFS: "make that file system writable or choose a folder on another one",
}


# --------------------------------------------------------------------------------------------
# Non-finite floats
# --------------------------------------------------------------------------------------------
def to_json(value: Any) -> Any:
    """JSON-safe copy: tensors/arrays to lists, NaN and infinities as ``{"float": "nan"}`` (and
    ``"inf"``, ``"-inf"``), dict keys as strings, anything else unknown as its ``str``."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": str(value)}
    if hasattr(value, "tolist"):  # torch / numpy scalars and arrays
        return to_json(value.tolist())
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def is_nonfinite_tag(value: Any) -> bool:
    """True for ``{"float": "nan"}``, ``{"float": "inf"}`` or ``{"float": "-inf"}``."""
    return isinstance(value, dict) and len(value) == 1 and value.get("float") in NONFINITE


def restore_nonfinite(value: Any, *, bare_strings: bool = False) -> Any:
    """Inverse of :func:`to_json` for non-finite floats, recursively through dicts and lists;
    with ``bare_strings`` the strings ``"nan"``, ``"inf"``, ``"-inf"`` become floats too (the
    older spelling of run files' statistics). Everything else is unchanged."""
    if isinstance(value, str):
        return NONFINITE.get(value, value) if bare_strings else value
    if isinstance(value, dict):
        if is_nonfinite_tag(value):
            return NONFINITE[value["float"]]
        return {k: restore_nonfinite(v, bare_strings=bare_strings) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_nonfinite(v, bare_strings=bare_strings) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def write_failure(what: str, exc: OSError, then: str) -> str:
    """One line for an ``OSError`` met while writing ``what`` (e.g. ``"study file PATH"``):
    ``cannot write WHAT: REASON; ADVICE, then THEN`` where ADVICE says what to do about a full
    disk, a quota or a read-only file system (:data:`DEVICE_FULL_ADVICE`); other errors get
    the reason and ``then`` alone."""
    reason = exc.strerror or type(exc).__name__
    advice = DEVICE_FULL_ADVICE.get(exc.errno or 0)
    return f"cannot write {what}: {reason}; " + (f"{advice}, then {then}" if advice else then)


def append_line(fh: Any, data: bytes) -> None:
    """Append ``data`` (one complete line) to the file ``fh`` (opened for append) and fsync it,
    all or nothing. The bytes go straight to its descriptor, never through ``fh``'s buffer.

    When the device takes only part of it or none (a full disk, a quota, a read-only file
    system, a failing ``fsync``), the file is cut back to the length it had before and the
    ``OSError`` propagates: no torn line is left, and nothing is held in a buffer that a later
    ``close`` would try (and fail) to write again. An interrupt mid-write also cuts back.
    """
    fd = fh.fileno()
    start = os.lseek(fd, 0, os.SEEK_END)
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException as exc:
        if view or isinstance(exc, OSError):
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass  # a torn last line is tolerated by the reader; the resume starts a new one
        raise


def append_record(fh: Any, record: dict[str, Any]) -> None:
    """Append ``record`` (through :func:`to_json`) as one fsync'ed line, all or nothing."""
    append_line(fh, (json.dumps(to_json(record)) + "\n").encode("utf-8"))


def _ends_mid_line(path: Path) -> bool:
    """True when ``path`` is not empty and its last byte is not a newline."""
    with path.open("rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"


def open_append(path: Path, *, new: bool = False) -> Any:
    """``path`` opened for appending text. ``new``: create it, ``FileExistsError`` if it exists
    (nothing that exists is ever overwritten); otherwise create it if missing, and when its last
    line is torn end that line first, so that the next record starts a line of its own."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | (os.O_EXCL if new else 0), 0o644)
    fh = os.fdopen(fd, "a", encoding="utf-8")
    try:
        if not new and _ends_mid_line(path):
            append_line(fh, b"\n")
    except BaseException:
        fh.close()
        raise
    return fh


def abandon_file(fh: Any, path: Path, *, remove: bool = False) -> None:
    """Close ``fh`` (if open) after a refused write; ``remove`` deletes ``path`` as well (a new
    file that holds no complete first line, hence nothing to resume)."""
    if fh is not None and not fh.closed:
        fh.close()
    if remove:
        try:
            path.unlink()
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One non-blank line: its 1-based ``number`` and either the parsed ``record`` (an object)
    or the ``problem`` that makes it none."""

    number: int
    record: dict[str, Any] | None
    problem: str | None = None


@dataclass
class ParsedLines:
    """A file's lines in order (:func:`parse_lines`); ``torn`` when a cut-off line was dropped."""

    lines: list[Line] = field(default_factory=list)
    torn: bool = False
    #: the file does not end with a newline (a write was cut off, or is under way)
    ends_mid_line: bool = False


def _too_deep(value: Any) -> bool:
    """True when objects and lists nest more than :data:`MAX_DEPTH` levels (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def _parse(number: int, blob: bytes) -> Line:
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Line(number, None, f"not UTF-8 text (byte 0x{blob[exc.start]:02x} at column {exc.start + 1})")
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return Line(number, None, "not valid JSON")
    if not isinstance(record, dict):
        return Line(number, None, f"{JSON_TYPE_NAMES.get(type(record), type(record).__name__)}, "
                                  "not a record object")
    if _too_deep(record):
        return Line(number, None, f"nested deeper than {MAX_DEPTH} levels")
    return Line(number, record)


def parse_lines(raw: bytes) -> ParsedLines:
    """The non-blank lines of ``raw``, each parsed on its own (see the module docstring)."""
    parsed = [_parse(i + 1, blob) for i, blob in enumerate(raw.split(b"\n")) if blob.strip()]
    out = ParsedLines(ends_mid_line=bool(raw) and not raw.endswith(b"\n"))
    for n, line in enumerate(parsed):
        if line.problem == "not valid JSON":
            after = parsed[n + 1].record if n + 1 < len(parsed) else None
            if n == len(parsed) - 1 or (after is not None and after.get("type") == "resume"):
                out.torn = True  # a write cut off by a crash (then possibly resumed)
                continue
        out.lines.append(line)
    return out


def read_lines(path: str | os.PathLike[str]) -> ParsedLines:
    """:func:`parse_lines` of the file at ``path``; ``OSError`` when it cannot be read."""
    return parse_lines(Path(path).read_bytes())


__all__ = [
    "DEVICE_FULL_ADVICE",
    "JSON_TYPE_NAMES",
    "MAX_DEPTH",
    "NONFINITE",
    "Line",
    "ParsedLines",
    "abandon_file",
    "append_line",
    "append_record",
    "is_nonfinite_tag",
    "open_append",
    "parse_lines",
    "read_lines",
    "restore_nonfinite",
    "to_json",
    "write_failure",
]
