"""Versioned, append-only JSON-lines result files (DESIGN §9).

One file per run. Line 1 is the header ``{"type": "run", "schema": 1, "run_id", "time",
"projbench", "git_commit", "machine", "torch", "cuda", "plugins", "config"}``; then one
``{"type": "case", "key", "suite", "projection", "architecture", "dataset", "params",
"status", "error", "stats", "samples", "memory", "time"}`` line per finished case; finally
``{"type": "end", "time", "summary"}``. Each line is flushed and fsync'ed when written, so a
crash keeps every finished case; a torn last line is ignored on reading. A run resumes by
reopening its file: a ``resume`` header line is appended and cases whose ``key`` is already
recorded are skipped by the caller (:meth:`ResultsWriter.completed_keys`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import subprocess
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "diverged", "skipped")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: tensors/arrays to lists, NaN/inf to strings (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "tolist"):  # torch / numpy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


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
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "torch": torch.__version__,
        "cuda": cuda,
        "plugins": plugin_versions(),
    }


def plugin_versions() -> dict[str, str]:
    from projbench.manager import plugin_infos

    return {p.name: p.version for p in plugin_infos() if p.error is None}


class ResultsWriter:
    """Append-only writer of one run file.

    ``ResultsWriter(path, config)`` starts a new file (or, with ``resume=True`` and an existing
    file, continues it). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], config: dict[str, Any], *, resume: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = read_run(self.path) if (resume and self.path.exists()) else None
        self._completed: set[str] = set()
        if existing is not None and existing.header is not None:
            self.run_id = str(existing.header.get("run_id"))
            self._completed = {c["key"] for c in existing.cases if "key" in c and c.get("status") != "failed"}
            self._fh = self.path.open("a", encoding="utf-8")
            if not self.path.read_bytes().endswith(b"\n"):  # a torn last line: start afresh
                self._fh.write("\n")
            self._write({"type": "resume", "time": _now(), "config": config, **environment_info()})
        else:
            self.run_id = uuid.uuid4().hex[:12]
            self._fh = self.path.open("w", encoding="utf-8")
            self._write(
                {"type": "run", "schema": SCHEMA_VERSION, "run_id": self.run_id, "time": _now(),
                 **environment_info(), "config": config}
            )
        self.cases_written = 0

    def _write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(_jsonable(record), sort_keys=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def completed_keys(self) -> set[str]:
        """Keys of cases already recorded (not ``failed``): skip them when resuming."""
        return set(self._completed)

    def write_case(self, record: dict[str, Any]) -> None:
        """Append one ``case`` line; ``record`` needs ``key``, ``suite`` and ``status``."""
        for required in ("key", "suite", "status"):
            if required not in record:
                raise ValueError(f"case record lacks {required!r}: {sorted(record)}")
        if record["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {record['status']!r}")
        self._write({"type": "case", "time": _now(), **record})
        self._completed.add(str(record["key"]))
        self.cases_written += 1

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Write the ``end`` line and close the file."""
        if self._fh.closed:
            return
        self._write({"type": "end", "time": _now(), "summary": summary or {}})
        self._fh.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:  # keep every finished case; mark the run as not ended cleanly
            self.close({"interrupted": True, "error": repr(exc)})


@dataclass
class Run:
    """One parsed run file. ``torn`` is True when the last line was incomplete (crash)."""

    path: Path
    header: dict[str, Any] | None
    cases: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    resumes: list[dict[str, Any]] = field(default_factory=list)
    torn: bool = False
    bad_lines: int = 0

    @property
    def complete(self) -> bool:
        return self.end is not None


def read_run(path: str | os.PathLike[str]) -> Run:
    """Parse a run file, keeping every complete line; a torn final line is skipped."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    run = Run(path=path, header=None)
    lines = text.split("\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == last:
                run.torn = True  # the final write was cut off by a crash
            else:
                run.bad_lines += 1
            continue
        kind = record.get("type")
        if kind == "run":
            run.header = record
        elif kind == "case":
            run.cases.append(record)
        elif kind == "end":
            run.end = record
        elif kind == "resume":
            run.resumes.append(record)
    if run.header is None:
        from projbench.errors import InvalidArgumentError

        raise InvalidArgumentError(f"{path} is not a projbench results file (no 'run' header line)")
    if run.header.get("schema", 0) > SCHEMA_VERSION:
        warnings.warn(
            f"{path} has schema {run.header.get('schema')}, newer than this projbench "
            f"({SCHEMA_VERSION}); upgrade projbench to read it fully",
            stacklevel=2,
        )
    return run


def find_run_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories to the ``*.jsonl`` files inside them (recursively), sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.rglob("*.jsonl")))
        else:
            found.append(p)
    return found


def read_runs(paths: list[str | os.PathLike[str]]) -> list[Run]:
    """Read several runs (files or directories of ``*.jsonl``)."""
    from projbench.errors import InvalidArgumentError

    files = find_run_files(paths)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise InvalidArgumentError(f"no such results file: {', '.join(missing)}")
    if not files:
        raise InvalidArgumentError(f"no *.jsonl results files found in {', '.join(map(str, paths))}")
    return [read_run(f) for f in files]
