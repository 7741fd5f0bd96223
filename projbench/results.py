"""Versioned, append-only JSON-lines result files.

One file per run. Line 1 is the header ``{"type": "run", "schema": 1, "run_id", "time",
"projbench", "git_commit", "machine", "torch", "cuda", "plugins", "config"}``; then one
``{"type": "case", "key", "suite", "projection", "architecture", "dataset", "params",
"status", "error", "stats", "samples", "memory", "time"}`` line per finished case; finally
``{"type": "end", "time", "summary"}``. Each line is flushed and fsync'ed when written, so a
crash keeps every finished case; a torn last line is ignored on reading. A new file is created
exclusively and opened for append (nothing that exists is ever overwritten). A run stopped by
an interrupt (Ctrl-C, SIGTERM: ``KeyboardInterrupt``) gets no ``end`` line: a file without one
is an interrupted run, to be continued with ``projbench run --resume``. A run resumes by
reopening its file: a ``resume`` header line is appended and cases whose ``key`` is already
recorded (status ``ok`` or ``diverged``) are skipped by the caller
(:meth:`ResultsWriter.completed_keys`); ``failed`` and ``skipped`` cases are measured again and
the newer record of a key supersedes the older one when the file is read.

Every case line carries the ``run_id`` of its file. JSON has no NaN or infinity: non-finite
floats are written as ``{"float": "nan"}`` (and ``"inf"``, ``"-inf"``) and read back as floats,
as are the plain strings ``"nan"``, ``"inf"``, ``"-inf"`` that older files hold in a case's
``stats``, ``samples`` and ``memory``. Lines are written and read by :mod:`projbench.jsonl`.

Reading is defensive: a file that is not a results file (no header, a header whose ``schema``
is not an integer, undecodable bytes) raises :class:`ResultsFileError`, one line; a line that is
not a valid record (not JSON, not an object, a case without ``status``, ``stats`` that is not
an object, …) is skipped, counted in :attr:`Run.bad_lines` and reported as a warning — and
refused outright when the file is to be resumed (``strict=True``), before anything is appended.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from projbench.allocator import allocator_info
from projbench.errors import InvalidArgumentError
from projbench.jsonl import (
    JSON_TYPE_NAMES,
    abandon_file,
    append_record,
    open_append,
    read_lines,
    restore_nonfinite,
    write_failure,
)

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "diverged", "skipped")
#: statuses of a finished case: resuming skips these; ``failed`` and ``skipped`` run again
DONE_STATUSES = ("ok", "diverged")


class ResultsFileError(InvalidArgumentError):
    """A results file cannot be read, resumed or written; the message says which and why."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """Commit of the projbench checkout (suffix ``-dirty`` with local changes), or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def environment_info() -> dict[str, Any]:
    """Versions, machine and device facts recorded in every run header."""
    import torch

    from projbench import __version__

    cuda: dict[str, Any] = {"available": torch.cuda.is_available(), "version": torch.version.cuda}
    if torch.cuda.is_available():
        cuda["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "projbench": __version__,
        "git_commit": git_commit(),
        "machine": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu": cpu,
            # torch's CPU kernels differ in rounding between vector units (AVX2, AVX512, ...)
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(),
            "load_avg": _load_avg(),
            "torch_threads": torch.get_num_threads(),
        },
        "torch": torch.__version__,
        "cuda": cuda,
        "cpu_allocator": allocator_info(),
        "plugins": plugin_versions(),
    }


def _load_avg() -> list[float] | None:
    """1, 5 and 15-minute load averages when the header is written (None where unknown)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def plugin_versions() -> dict[str, str]:
    from projbench.manager import plugin_infos

    return {p.name: p.version for p in plugin_infos() if p.error is None}


class ResultsWriter:
    """Append-only writer of one run file.

    ``ResultsWriter(path, config)`` starts a new file (or, with ``resume=True`` and an existing
    file, continues it). Use as a context manager or call :meth:`close`.

    A line the device refuses (full disk, quota, read-only: :func:`projbench.jsonl.append_line`)
    leaves the file as it was before that line and raises :class:`ResultsFileError`, one line saying
    what to do; a new file whose header could not be written is removed. After such an error
    the writer only closes: no ``end`` line is attempted, so the run can be resumed.
    """

    def __init__(self, path: str | os.PathLike[str], config: dict[str, Any], *, resume: bool = True) -> None:
        self.path = Path(path)
        # validated in full before a byte is appended (a broken file is refused, one line)
        existing = read_run(self.path, strict=True) if (resume and self.path.exists()) else None
        self._completed: set[str] = set()
        env = environment_info()
        self._failed = False
        created = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if existing is not None and existing.header is not None:
                self.run_id = str(existing.header.get("run_id"))
                self._completed = {c["key"] for c in existing.cases if c["status"] in DONE_STATUSES}
                self._fh = open_append(self.path)  # a torn last line is ended first
                self._append({"type": "resume", "time": _now(), "config": config, **env})
            else:
                self.run_id = uuid.uuid4().hex[:12]
                self._fh = open_append(self.path, new=True)
                created = True
                self._append(
                    {"type": "run", "schema": SCHEMA_VERSION, "run_id": self.run_id, "time": _now(),
                     **env, "config": config}
                )
        except FileExistsError:
            raise ResultsFileError(f"{self.path} exists already; resume it with --resume {self.path} "
                                   "or choose another path") from None
        except OSError as exc:
            self._failed = True
            abandon_file(getattr(self, "_fh", None), self.path, remove=created)
            raise ResultsFileError(write_failure(
                f"results file {self.path}", exc,
                "run the same command again" if existing is None
                else f"resume it with --resume {self.path} (its recorded cases are kept)",
            )) from None
        self.cases_written = 0

    def _append(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one fsync'ed line, all or nothing (:func:`projbench.jsonl.append_record`)."""
        append_record(self._fh, record)

    def _write(self, record: dict[str, Any]) -> None:
        """Append ``record``; a refused write closes the writer and is one line
        (:class:`ResultsFileError`) saying how to resume the run."""
        try:
            self._append(record)
        except OSError as exc:
            self._failed = True
            abandon_file(self._fh, self.path)
            raise ResultsFileError(write_failure(
                f"results file {self.path}", exc,
                f"resume the run with --resume {self.path} (every case recorded before is kept)",
            )) from None

    def completed_keys(self) -> set[str]:
        """Keys of cases already finished (``ok`` or ``diverged``): skip them when resuming.
        ``failed`` and ``skipped`` cases (no CUDA, over a budget) are measured again."""
        return set(self._completed)

    def write_case(self, record: dict[str, Any]) -> None:
        """Append one ``case`` line; ``record`` needs ``key``, ``suite`` and ``status``."""
        for required in ("key", "suite", "status"):
            if required not in record:
                raise ValueError(f"case record lacks {required!r}: {sorted(record)}")
        if record["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {record['status']!r}")
        self._write({"type": "case", "time": _now(), "run_id": self.run_id, **record})
        self._completed.add(str(record["key"]))
        self.cases_written += 1

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Write the ``end`` line and close the file (only close it after a refused write)."""
        if self._fh.closed or self._failed:
            self._fh.close()
            return
        self._write({"type": "end", "time": _now(), "summary": summary or {}})
        self._fh.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def abandon(self) -> None:
        """Close the file without an ``end`` line: the run was interrupted and can be resumed."""
        if not self._fh.closed:
            self._fh.close()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        elif isinstance(exc, KeyboardInterrupt):  # Ctrl-C / SIGTERM: interrupted, no end line
            self.abandon()
        else:  # keep every finished case; mark the run as not ended cleanly
            self.close({"interrupted": True, "error": repr(exc)})


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@dataclass
class Run:
    """One parsed run file.

    ``cases`` holds the newest record of every case key, in file order (a case measured again
    on resume supersedes its older record; ``superseded`` counts those). ``torn`` is True when
    a line was cut off by a crash (the last line, or a line right before a ``resume`` line).
    ``bad_lines`` counts the other lines that are not valid records; ``problems`` says why,
    one ``line N: reason`` each.
    """

    path: Path
    header: dict[str, Any] | None
    cases: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    resumes: list[dict[str, Any]] = field(default_factory=list)
    torn: bool = False
    bad_lines: int = 0
    problems: list[str] = field(default_factory=list)
    superseded: int = 0

    @property
    def complete(self) -> bool:
        return self.end is not None

    @property
    def interrupted(self) -> bool:
        """Stopped before its end: no ``end`` line (Ctrl-C, SIGTERM, a kill), or an ``end`` line
        that says the run was cut short by an error."""
        return self.end is None or bool((self.end.get("summary") or {}).get("interrupted"))

    @property
    def run_id(self) -> str | None:
        rid = (self.header or {}).get("run_id")
        return str(rid) if rid is not None else None


_CASE_FIELDS: tuple[tuple[str, tuple[type, ...], bool], ...] = (
    # (field, allowed types, required)
    ("key", (str,), True),
    ("suite", (str,), True),
    ("status", (str,), True),
    ("projection", (str, type(None)), False),
    ("architecture", (str, type(None)), False),
    ("dataset", (str, type(None)), False),
    ("params", (dict, type(None)), False),
    ("stats", (dict, type(None)), False),
    ("samples", (dict, type(None)), False),
    ("memory", (dict, type(None)), False),
    ("error", (str, type(None)), False),
    ("run_id", (str, type(None)), False),
)


def _case_problem(record: dict[str, Any]) -> str | None:
    """Why ``record`` (a ``case`` line) is not a valid case record, or None."""
    for name, types, required in _CASE_FIELDS:
        if name not in record:
            if required:
                return f"case record without {name!r}"
            continue
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(dict.fromkeys(JSON_TYPE_NAMES[t] for t in types))
            found = JSON_TYPE_NAMES.get(type(value), type(value).__name__)
            return f"case {name!r} is {found}, expected {want}"
    if record["status"] not in STATUSES:
        return f"case status {record['status']!r} is not one of {', '.join(STATUSES)}"
    return None


def _check_header(path: Path, header: dict[str, Any], *, strict: bool) -> None:
    schema = header.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise ResultsFileError(
            f"{path} has an invalid results schema {schema!r} (expected an integer version; "
            f"this projbench writes {SCHEMA_VERSION}); it is not a results file projbench can read"
        )
    if not isinstance(header.get("run_id", ""), str):
        raise ResultsFileError(f"{path}: header 'run_id' is {header.get('run_id')!r}, expected a string")
    if not isinstance(header.get("config", {}), dict):
        raise ResultsFileError(f"{path}: header 'config' is not an object")
    if schema > SCHEMA_VERSION:
        message = (f"{path} has schema {schema}, newer than this projbench ({SCHEMA_VERSION}); "
                   "upgrade projbench to read it fully")
        if strict:
            raise ResultsFileError(f"cannot resume {message}")
        warnings.warn(message, stacklevel=3)


def read_run(path: str | os.PathLike[str], *, strict: bool = False) -> Run:
    """Parse a run file, keeping every valid line (see the module docstring).

    Raises :class:`ResultsFileError` when the file cannot be read or has no valid ``run``
    header. Invalid lines are skipped with a warning that counts them and says why; with
    ``strict=True`` (before resuming) they raise instead. A torn line (crash) is not an error.
    """
    path = Path(path)
    try:
        parsed = read_lines(path)
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {_os_reason(exc)}") from None
    run = Run(path=path, header=None, torn=parsed.torn)
    by_key: dict[str, dict[str, Any]] = {}
    for line in parsed.lines:
        record = line.record
        if record is None:
            run.problems.append(f"line {line.number}: {line.problem}")
            continue
        kind = record.get("type")
        if kind == "run":
            if run.header is not None:
                run.problems.append(f"line {line.number}: a second 'run' header")
                continue
            _check_header(path, record, strict=strict)
            run.header = record
        elif kind == "case":
            reason = _case_problem(record)
            if reason is not None:
                run.problems.append(f"line {line.number}: {reason}")
                continue
            for name in ("stats", "samples", "memory"):
                if record.get(name) is not None:
                    record[name] = restore_nonfinite(record[name], bare_strings=True)
            if record.get("key") in by_key:
                run.superseded += 1
                del by_key[record["key"]]  # re-insert: the newer record takes the later position
            by_key[record["key"]] = record
        elif kind == "end":
            run.end = record
        elif kind == "resume":
            run.resumes.append(record)
        else:
            run.problems.append(f"line {line.number}: unknown record type {kind!r}")
    if run.header is None:
        raise ResultsFileError(f"{path} is not a projbench results file (no valid 'run' header line)")
    run.cases = list(by_key.values())
    for c in run.cases:
        c.setdefault("run_id", run.run_id)
    run.bad_lines = len(run.problems)
    if run.problems:
        shown = "; ".join(run.problems[:3]) + ("; …" if len(run.problems) > 3 else "")
        if strict:
            raise ResultsFileError(
                f"cannot resume {path}: {run.bad_lines} bad line(s) ({shown}); nothing was appended. "
                "Repair or remove those lines, or start a new results file"
            )
        warnings.warn(f"{path}: {run.bad_lines} bad line(s) skipped ({shown})", stacklevel=2)
    return run


def find_run_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories to the ``*.jsonl`` files inside them (recursively), sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.rglob("*.jsonl")))
        else:
            found.append(p)
    return found


def read_runs(paths: Sequence[str | os.PathLike[str]]) -> list[Run]:
    """Read several runs (files or directories of ``*.jsonl``); a file given twice is read once."""
    files = list(dict.fromkeys(find_run_files(paths)))
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ResultsFileError(f"no such results file: {', '.join(missing)}")
    if not files:
        raise ResultsFileError(f"no *.jsonl results files found in {', '.join(map(str, paths))}")
    return [read_run(f) for f in files]
