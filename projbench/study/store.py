"""A study folder: ``DIR/study.jsonl``, append-only JSON lines.

Line 1 is the header ``{"type": "study", "schema", "study_id", "time", "spec", "env"}`` with the
fully resolved spec (:meth:`projbench.study.spec.StudySpec.to_dict`) and the versions, machine
and git commit that produced it. Then, as runs finish, one ``{"type": "run", "run_id",
"identity", "status", "stats", "samples", "error", "worker", "time"}`` line each (flushed and
fsync'ed: a ``kill -9`` loses at most the run in flight), a ``{"type": "resume"}`` line per
later invocation, and ``{"type": "end", "summary"}`` when a study completes.

Opening a folder that already holds a study resumes it: the stored spec must equal the new
one (else :class:`StudyMismatchError` lists what differs), finished runs (``ok``/``diverged``)
are reused by run id, ``failed`` ones are run again; of several records of one run id the
latest wins. A torn line (a crash mid-write, possibly resumed since) is ignored; any other
unreadable line — not JSON, or a run record whose fields have the wrong type (an accuracy that
is a string or a boolean, stats that are not an object) — is counted and reported, never
silently used. A file whose header line is empty or cut off (a start that died while writing
it) holds no study yet and is started anew. Non-finite floats are stored as
``{"float": "nan"}`` (``"inf"``, ``"-inf"``). Lines are written and read by
:mod:`projbench.jsonl`.

A line the device refuses (a full disk, a quota, a read-only file system) is cut back, so
the file stays as it was before that line, and the error is one line saying what to do: free
space and run the same command again, which resumes the study. A new file whose header could
not be written is removed (it holds no study).

One driver at a time: :class:`StudyStore` holds an exclusive lock
(:class:`projbench.locking.FileLock`) on ``study.jsonl`` until :meth:`StudyStore.close`; a
second driver gets one line naming the holder.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.jsonl import (
    abandon_file,
    append_record,
    is_nonfinite_tag,
    open_append,
    read_lines,
    restore_nonfinite,
    to_json,
    write_failure,
)
from projbench.locking import FileLock
from projbench.study.spec_files import spec_differences

SCHEMA = 1
FILE_NAME = "study.jsonl"
FINISHED = ("ok", "diverged")


class StudyMismatchError(InvalidArgumentError):
    """The folder holds a study with a different spec."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StudyFile:
    """A parsed study folder."""

    path: Path
    header: dict[str, Any]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run_id -> latest record
    resumes: int = 0
    ended: bool = False
    torn: bool = False
    bad_lines: int = 0

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.header.get("spec") or {})


#: stats fields that must be JSON numbers (or null) in a run record
NUMERIC_STATS = ("test_accuracy", "test_loss", "train_loss", "run_wall_s", "wall_s", "epochs", "steps", "D")


def _valid_run(rec: dict[str, Any]) -> bool:
    """A run record whose fields have the types the engine relies on."""
    if not (
        isinstance(rec.get("run_id"), str)
        and isinstance(rec.get("identity"), dict)
        and rec.get("status") in (*FINISHED, "failed")
    ):
        return False
    stats, samples = rec.get("stats", {}), rec.get("samples", {})
    if not isinstance(stats, dict) or not isinstance(samples, dict):
        return False
    for key in NUMERIC_STATS:
        value = stats.get(key)
        if value is None or is_nonfinite_tag(value):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
    curve = samples.get("curve")
    if curve is not None and not (
        isinstance(curve, list) and all(isinstance(p, dict) for p in curve)
    ):
        return False
    return rec.get("provenance") is None or isinstance(rec.get("provenance"), dict)


class EmptyStudyFileError(InvalidArgumentError):
    """A study file with no header: a start that died before its first line was complete."""


def study_file(folder: str | os.PathLike[str]) -> Path:
    return Path(folder) / FILE_NAME


def is_study(path: str | os.PathLike[str]) -> bool:
    """True for a study folder (or its study.jsonl)."""
    p = Path(path)
    return (p.is_dir() and (p / FILE_NAME).is_file()) or (p.is_file() and p.name == FILE_NAME)


def read_study(path: str | os.PathLike[str]) -> StudyFile:
    """Parse a study folder (or its ``study.jsonl``)."""
    p = Path(path)
    file = p if p.is_file() else p / FILE_NAME
    if not file.is_file():
        raise InvalidArgumentError(f"{path} holds no study ({FILE_NAME} missing)")
    try:
        parsed = read_lines(file)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {file}: {exc.strerror}") from None
    header: dict[str, Any] | None = None
    bad = 0
    records: list[dict[str, Any]] = []
    resumes = 0
    ended = False
    for line in parsed.lines:
        rec = line.record
        if rec is None:
            bad += 1
            continue
        kind = rec.get("type")
        if kind == "study" and header is None:
            header = rec
        elif kind == "run" and _valid_run(rec):
            records.append(restore_nonfinite(rec))
        elif kind == "resume":
            resumes += 1
        elif kind == "end":
            ended = True
        else:
            bad += 1
    # a start that died writing the header leaves nothing or a cut-off line; a file that holds
    # one complete line that is not JSON is not that, and is refused below rather than replaced
    died_at_start = not parsed.lines and (not parsed.torn or parsed.ends_mid_line)
    if died_at_start:
        raise EmptyStudyFileError(f"{file} holds no study yet (its header was never completed)")
    if header is None or not isinstance(header.get("spec"), dict):
        raise InvalidArgumentError(f"{file} is not a projbench study file (no valid 'study' header line)")
    if header.get("schema") != SCHEMA:
        raise InvalidArgumentError(
            f"{file} has study schema {header.get('schema')!r}; this projbench reads "
            f"schema {SCHEMA}: use the projbench version that wrote it"
        )
    out = StudyFile(file, header, resumes=resumes, ended=ended, torn=parsed.torn, bad_lines=bad)
    for rec in records:  # the latest record of a run wins (e.g. a failed run retried later)
        out.runs[rec["run_id"]] = rec
    return out


class StudyStore:
    """Opens (creates or resumes) a study folder for appending."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        spec: dict[str, Any],
        env: dict[str, Any],
        validate: Callable[[StudyFile], None] | None = None,
    ) -> None:
        """``validate(previous)`` may refuse a resume (raise) before anything is written."""
        self.folder = Path(folder)
        self.file = study_file(self.folder)
        self._check_inside()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"cannot create study folder {self.folder}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        self.previous: StudyFile | None = None
        spec = restore_nonfinite(json.loads(json.dumps(to_json(spec))))
        self._lock = FileLock(self.file, what=f"study folder {self.folder}").acquire()
        try:
            self._open(spec, env, validate)
        except BaseException:
            self._lock.release()
            raise

    def _check_inside(self) -> None:
        """Refuse a ``study.jsonl`` that is a symbolic link leading out of the folder."""
        if self.file.is_symlink():
            target = self.file.resolve()
            if target.parent != self.folder.resolve():
                raise InvalidArgumentError(
                    f"{self.file} is a symbolic link to {target}, outside the study folder; "
                    "remove it or choose another --out"
                )

    def _open(
        self, spec: dict[str, Any], env: dict[str, Any], validate: Callable[[StudyFile], None] | None
    ) -> None:
        self._failed = False
        created = False
        try:
            if self.file.exists():
                try:
                    self.previous = read_study(self.file)
                except EmptyStudyFileError:
                    self.previous = None
                    self.file.unlink()
            if self.previous is not None:
                diffs = spec_differences(self.previous.spec, spec)
                if diffs:
                    shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
                    raise StudyMismatchError(
                        f"{self.folder} holds a different study ({shown}); use another --out folder, or "
                        "rerun with the original settings to resume it"
                    )
                if validate is not None:
                    validate(self.previous)
                self.study_id = str(self.previous.header.get("study_id"))
                self._fh = open_append(self.file)  # a torn last line is ended first
                self._append({"type": "resume", "time": _now(), "env": env})
            else:
                self.study_id = uuid.uuid4().hex[:12]
                created = not self.file.exists()
                self._fh = open_append(self.file)
                self._append(
                    {
                        "type": "study",
                        "schema": SCHEMA,
                        "study_id": self.study_id,
                        "time": _now(),
                        "spec": spec,
                        "env": env,
                    }
                )
        except OSError as exc:
            self._failed = True  # the lock is kept until close() (or __init__'s cleanup)
            abandon_file(getattr(self, "_fh", None), self.file, remove=created)
            raise InvalidArgumentError(
                write_failure(f"study file {self.file}", exc, "run the same command again")
            ) from None

    @property
    def finished(self) -> dict[str, dict[str, Any]]:
        """Runs already finished in earlier invocations (run_id -> record)."""
        if self.previous is None:
            return {}
        return {k: v for k, v in self.previous.runs.items() if v.get("status") in FINISHED}

    def _append(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one fsync'ed line, all or nothing (:func:`projbench.jsonl.append_record`)."""
        append_record(self._fh, record)

    def _write(self, record: dict[str, Any]) -> None:
        """Append ``record``; a refused write closes the file and is one line
        (:class:`InvalidArgumentError`) saying how to resume the study."""
        try:
            self._append(record)
        except OSError as exc:
            self._failed = True
            abandon_file(self._fh, self.file)
            raise InvalidArgumentError(
                write_failure(
                    f"study file {self.file}",
                    exc,
                    "run the same command again to resume the study (every finished run is kept)",
                )
            ) from None

    def append_run(self, record: dict[str, Any]) -> None:
        """Append one finished run (``run_id``, ``identity``, ``status``, ``stats``, …)."""
        self._write({**record, "type": "run", "study_id": self.study_id, "time": _now()})

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Write the ``end`` line (with ``summary``; none when None or after a refused write),
        close the file and release the lock."""
        if self._fh.closed and not self._lock.held:
            return
        try:
            if summary is not None and not self._failed and not self._fh.closed:
                self._write({"type": "end", "time": _now(), "summary": summary})
        finally:
            self._fh.close()
            self._lock.release()


__all__ = [
    "FILE_NAME",
    "StudyFile",
    "StudyMismatchError",
    "StudyStore",
    "is_study",
    "read_study",
    "study_file",
]
