"""Results as flat records: one dict (or DataFrame row) per case, ready for analysis.

:func:`read_results` reads results files (or folders of them) with
:func:`projbench.results.read_runs` and flattens every case record:

* identity columns first: ``run_id``, ``run_file``, ``suite``, ``projection``,
  ``architecture``, ``dataset``, ``status``, ``error``, ``key``, ``recorded_utc``;
* every parameter (``params``) as its own column (nested dicts joined with dots,
  ``recipe.lr``); for ``projbench run`` records the ``plugin`` that registered the projection,
  ``quick`` and each projection option as ``option.<name>``; then every statistic
  (``stats``), then the ``memory`` summary;
* a value recorded twice (a suite that repeats ``D`` among its stats, the record's ``seed``
  next to ``params.seed``, ``memory.state_bytes`` next to ``stats.state_bytes``) appears once;
  a name recorded twice with *different* values keeps both, the second prefixed with its
  section (``stats.seed``), so nothing is silently lost;
* unit-converted copies (``X_MiB`` next to ``X_bytes``) are dropped: sizes are in bytes;
  times keep the unit in their name (``forward_ms``, ``wall_s``);
* NaN and infinities are floats (the file spells them as strings);
* raw ``samples`` are left out unless ``samples=True`` (then ``samples.<name>`` lists).

:func:`to_dataframe` is the same as a :class:`pandas.DataFrame` (pandas is optional).
"""

from __future__ import annotations

import math
import os
from typing import Any

from projbench.errors import InvalidArgumentError

#: fields copied from each case record, in this order (renamed where the name lacks meaning)
IDENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("run_id", "run_id"),
    ("suite", "suite"),
    ("projection", "projection"),
    ("architecture", "architecture"),
    ("dataset", "dataset"),
    ("status", "status"),
    ("error", "error"),
    ("key", "key"),
    ("time", "recorded_utc"),
    ("seed", "seed"),
    ("device", "device"),
    ("wall_s", "case_wall_s"),
)
#: memory summary fields and the stats column they repeat
MEMORY_ALIASES = {"method": "peak_method"}


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def _same(a: Any, b: Any) -> bool:
    """Equal values (NaN equals NaN; True is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - exotic values: treat as different, keep both
        return False


def _merge(row: dict[str, Any], section: str, values: dict[str, Any]) -> None:
    """Add ``values`` to ``row``: equal repeats dropped, conflicting ones prefixed."""
    for name, value in values.items():
        if name not in row:
            row[name] = value
        elif not _same(row[name], value):
            row[f"{section}.{name}"] = value


def _drop_unit_copies(row: dict[str, Any]) -> None:
    """``X_MiB`` is ``X_bytes`` / 2**20: keep the bytes."""
    for name in [n for n in row if n.endswith("_MiB")]:
        if f"{name[:-4]}_bytes" in row:
            del row[name]


def flatten_case(case: dict[str, Any], *, run_file: str | None = None,
                 samples: bool = False) -> dict[str, Any]:
    """One flat record of a case record (see the module docstring)."""
    row: dict[str, Any] = {}
    for src, dst in IDENTITY_FIELDS:
        if src in ("seed", "device"):
            continue  # merged with the params below (usually a repeat)
        row[dst] = case.get(src)
        if dst == "run_id":
            row["run_file"] = run_file
    params: dict[str, Any] = {}
    _flatten(case.get("params") or {}, "", params)
    _merge(row, "params", params)
    _merge(row, "record", {k: case[k] for k in ("seed", "device") if k in case})
    identity = case.get("identity") if isinstance(case.get("identity"), dict) else {}
    if identity:  # what the case key covers beyond params (projbench run records)
        _merge(row, "identity", {"plugin": identity.get("plugin"), "quick": identity.get("quick"),
                                 **{f"option.{k}": v for k, v in (identity.get("options") or {}).items()}})
    stats: dict[str, Any] = {}
    _flatten(case.get("stats") or {}, "", stats)
    _merge(row, "stats", stats)
    memory = {MEMORY_ALIASES.get(k, k): v for k, v in (case.get("memory") or {}).items()}
    _merge(row, "memory", memory)
    _drop_unit_copies(row)
    if samples:
        for name, values in (case.get("samples") or {}).items():
            row[f"samples.{name}"] = values
    return row


def read_results(paths: str | os.PathLike[str] | list[str | os.PathLike[str]], *,
                 samples: bool = False) -> list[dict[str, Any]]:
    """Flat records of every case in ``paths`` (files or folders of ``*.jsonl``).

    ``projbench.read_results("runs/")`` → ``[{"run_id": …, "suite": "speed",
    "projection": "fastjl", "D": 4096, "d": 100, …, "forward_ms": 0.21, …}, …]``.
    Only the newest record of a case counts (a case measured again on resume supersedes
    the older one). Study folders (``study.jsonl``, from ``projbench study`` or
    ``intrinsic-dim``) found among ``paths`` are skipped — :func:`projbench.read_study` reads
    them; given only studies, this raises with that advice. Broken files raise
    :class:`~projbench.results.ResultsFileError`.
    """
    from projbench.results import find_run_files, read_runs
    from projbench.study.store import FILE_NAME, is_study

    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files = [f for f in find_run_files([p for p in items if not is_study(p)]) if f.name != FILE_NAME]
    studies = [str(p) for p in items if is_study(p)]
    if not files and (studies or any(find_run_files([p]) for p in items if not is_study(p))):
        where = ", ".join(studies or map(str, items))
        raise InvalidArgumentError(
            f"{where} holds study folders, not run files: read them with projbench.read_study(folder)"
        )
    rows: list[dict[str, Any]] = []
    for run in read_runs(files or items):
        rows.extend(flatten_case(c, run_file=str(run.path), samples=samples) for c in run.cases)
    return rows


def to_dataframe(paths: str | os.PathLike[str] | list[str | os.PathLike[str]], *,
                 samples: bool = False) -> Any:
    """:func:`read_results` as a :class:`pandas.DataFrame` (needs ``pip install pandas``)."""
    try:
        import pandas as pd
    except ImportError:
        raise InvalidArgumentError(
            "projbench.to_dataframe needs pandas: pip install pandas (or use projbench.read_results, "
            "which returns plain dicts)"
        ) from None
    return pd.DataFrame(read_results(paths, samples=samples))
