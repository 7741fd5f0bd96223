"""Studies as data: :func:`read_study` gives a study folder's runs and its d_int90 table as plain
rows (or pandas DataFrames) for analysis, and :func:`compare_studies` puts two studies side by
side cell by cell.

A **run row** flattens one stored run record: ``run_id``, ``role`` (baseline, subspace,
direct), ``status``, every identity field (``architecture``, ``dataset``, ``projection``,
``d``, ``seed``, ``burn_in``, … and ``recipe.<field>``), every stat (``test_accuracy``,
``run_wall_s``, ``D``, …) and ``converged`` (see
:mod:`projbench.study.budget`). A **table row** is one cell of the study table
(:meth:`projbench.study.engine.StudyEngine.rows`): (architecture, dataset, variant,
projection) with d_int90 mean, interval, per-seed values, baseline accuracy, status.

:func:`compare_studies` matches the cells of two studies by (architecture, dataset, variant,
projection) and reports, per cell, ``ratio`` = mean d_int90 of B / mean of A, the per-seed
ratios for the seeds both reached, and a verdict:

* ``higher`` / ``lower`` — B's interval lies wholly above / below A's (the intervals cover the
  spread over seeds *and* each search's resolution), and, when at least
  :data:`MIN_PAIRED_SEEDS` seeds are paired, a Wilcoxon signed-rank test of the paired log
  ratios has p < ``alpha``;
* ``same`` — the intervals overlap;
* ``unclear`` — a cell reached in one study only, or intervals apart but too few paired seeds
  for the test to mean anything (said in ``why``).

A higher d_int90 is a **regression** for a projection (it needs more dimensions).
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError

#: fewest seeds reached in both studies for the paired test to be run at all
MIN_PAIRED_SEEDS = 6


@dataclass
class Study:
    """A study folder read back: its spec, header, runs and table (nothing is trained)."""

    folder: Path
    name: str
    spec: dict[str, Any]
    header: dict[str, Any]
    complete: bool
    runs: list[dict[str, Any]]
    table: list[dict[str, Any]]

    def to_dataframe(self, what: str = "table") -> Any:
        """``what`` = ``table`` (one row per cell) or ``runs`` (one row per run), as a
        :class:`pandas.DataFrame` (needs pandas)."""
        if what not in ("table", "runs"):
            raise InvalidArgumentError(f"what must be 'table' or 'runs', got {what!r}")
        try:
            import pandas as pd
        except ImportError:
            raise InvalidArgumentError(
                "Study.to_dataframe needs pandas: pip install pandas (or use .table / .runs, plain dicts)"
            ) from None
        return pd.DataFrame(self.table if what == "table" else self.runs)


def run_row(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row of a stored run record (see the module docstring)."""
    from projbench.study.budget import converged

    identity = record.get("identity") or {}
    row: dict[str, Any] = {"run_id": record.get("run_id"), "role": identity.get("role"),
                           "status": record.get("status"), "error": record.get("error")}
    for key, value in identity.items():
        if key == "recipe" and isinstance(value, dict):
            row.update({f"recipe.{k}": v for k, v in value.items()})
        elif key == "options" and isinstance(value, dict):
            row.update({f"option.{k}": v for k, v in value.items()})
        elif key not in ("role", "arch_options") or value:
            row[key] = value
    for key, value in (record.get("stats") or {}).items():
        row.setdefault(key, value)
    row["converged"] = converged(record)
    row["recorded_utc"] = record.get("time")
    return row


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    """A table row without the bulky nested columns (curves)."""
    return {k: v for k, v in row.items() if k not in ("curve", "direct_curve")}


def read_study(folder: str | os.PathLike[str]) -> Study:
    """Read a study folder (or its ``study.jsonl``): runs and table; see the module docstring."""
    from projbench.study.driver import replay_study

    outcome, stored = replay_study(folder)
    runs = [run_row(r) for r in stored.runs.values()]
    return Study(
        folder=Path(folder) if Path(folder).is_dir() else Path(folder).parent,
        name=outcome.spec.name,
        spec=stored.spec,
        header=stored.header,
        complete=stored.ended,
        runs=runs,
        table=[_table_row(r) for r in outcome.rows],
    )


def _cell(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (row["architecture"], row["dataset"], row.get("variant", "-"), row["projection"])


def _paired_p(a: dict[Any, Any], b: dict[Any, Any]) -> tuple[int, float | None]:
    """(seeds paired, Wilcoxon p of log(d_B/d_A)) over the seeds both reached."""
    seeds = [s for s in a if s in b and a[s] and b[s]]
    if len(seeds) < MIN_PAIRED_SEEDS:
        return len(seeds), None
    from scipy.stats import wilcoxon

    diffs = [math.log(b[s] / a[s]) for s in seeds]
    if all(x == 0 for x in diffs):
        return len(seeds), 1.0
    return len(seeds), float(wilcoxon(diffs).pvalue)


def compare_cells(a: dict[str, Any], b: dict[str, Any], alpha: float = 0.05) -> dict[str, Any]:
    """The comparison of one cell (table rows ``a`` and ``b``); see the module docstring."""
    per_a = {str(k): v for k, v in (a.get("per_seed") or {}).items()}
    per_b = {str(k): v for k, v in (b.get("per_seed") or {}).items()}
    out: dict[str, Any] = {
        "architecture": a["architecture"], "dataset": a["dataset"], "variant": a.get("variant", "-"),
        "projection": a["projection"], "a_mean": a.get("d_int90_mean"), "b_mean": b.get("d_int90_mean"),
        "a_interval": [a.get("d_int90_lo"), a.get("d_int90_hi")],
        "b_interval": [b.get("d_int90_lo"), b.get("d_int90_hi")],
    }
    if out["a_mean"] is None or out["b_mean"] is None:
        reached = "A" if out["a_mean"] is not None else ("B" if out["b_mean"] is not None else "neither")
        return {**out, "ratio": None, "paired_seeds": 0, "p": None, "verdict": "unclear",
                "why": f"d_int90 reached in {reached} only" if reached != "neither" else "reached in neither"}
    ratio = out["b_mean"] / out["a_mean"]
    n, p = _paired_p(per_a, per_b)
    seed_ratios = [per_b[s] / per_a[s] for s in per_a if s in per_b and per_a[s] and per_b[s]]
    lo_a, hi_a = (a.get("d_int90_lo") or out["a_mean"]), (a.get("d_int90_hi") or out["a_mean"])
    lo_b, hi_b = (b.get("d_int90_lo") or out["b_mean"]), (b.get("d_int90_hi") or out["b_mean"])
    apart = "higher" if lo_b > hi_a else ("lower" if hi_b < lo_a else None)
    if apart is None:
        verdict, why = "same", "intervals overlap"
    elif p is None:
        verdict, why = "unclear", f"intervals apart but only {n} paired seed(s) (need {MIN_PAIRED_SEEDS})"
    elif p < alpha:
        verdict, why = apart, f"intervals apart, Wilcoxon p = {p:.3g}"
    else:
        verdict, why = "unclear", f"intervals apart but Wilcoxon p = {p:.3g} >= {alpha:g}"
    median_ratio = statistics.median(seed_ratios) if seed_ratios else None
    return {**out, "ratio": ratio, "seed_ratio_median": median_ratio,
            "paired_seeds": n, "p": p, "verdict": verdict, "why": why}


def compare_studies(
    a: str | os.PathLike[str] | Study, b: str | os.PathLike[str] | Study, alpha: float = 0.05
) -> list[dict[str, Any]]:
    """One comparison row per cell present in both studies; no cell in common is an error."""
    sa = a if isinstance(a, Study) else read_study(a)
    sb = b if isinstance(b, Study) else read_study(b)
    rows_b = {_cell(r): r for r in sb.table}
    common = [(r, rows_b[_cell(r)]) for r in sa.table if _cell(r) in rows_b]
    if not common:
        raise InvalidArgumentError(
            f"studies {sa.folder} and {sb.folder} have no (architecture, dataset, variant, projection) "
            "cell in common: nothing to compare"
        )
    return [compare_cells(x, y, alpha) for x, y in common]


__all__ = ["MIN_PAIRED_SEEDS", "Study", "compare_cells", "compare_studies", "read_study", "run_row"]
