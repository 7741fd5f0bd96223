"""Rich tables and progress on stderr, matplotlib figures as PNG files.

Tables are built from the ``case`` records of results files; each suite declares its columns
(``table_columns``). Records of a suite that is no longer installed still get a table, with
the first few stats keys as columns.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from projbench.errors import InvalidArgumentError
from projbench.report.figures import save_figure

STATUS_STYLE = {"ok": "green", "failed": "red", "diverged": "yellow", "skipped": "dim"}


def stderr_console() -> Console:
    """Console on stderr; logs and pipes get 140 columns so tables are not truncated."""
    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = max(console.width, 140)
    return console


def make_progress(console: Console) -> Progress:
    """A progress bar for case execution, drawn on ``console`` (stderr)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=console,
        transient=False,
    )


def run_state(run: Any) -> str:
    """How a run file (:class:`projbench.results.Run`) ended, as ``report`` prints it:
    ``complete``; ``interrupted`` when it has no ``end`` line (Ctrl-C, SIGTERM, a kill), with
    the command that continues it; or ``interrupted by an error`` when its ``end`` line says so."""
    if run.end is None:
        return f"interrupted (continue it: projbench run --resume {run.path} with the same options)"
    summary = run.end.get("summary") or {}
    if summary.get("interrupted"):
        error = " ".join(str(summary.get("error") or "").split())[:120]
        return f"interrupted by an error{f' ({error})' if error else ''}"
    return "complete"


def format_value(value: Any) -> str:
    """Compact human formatting: 4 significant digits, bytes and seconds left to the header."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ",".join(format_value(v) for v in value)
    return str(value)


def format_params(params: dict[str, Any] | None) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in (params or {}).items())


def _suite_view(suite_name: str) -> Any | None:
    """The registered suite that knows how to show records of ``suite_name`` (None when it is not
    installed: its records still get a generic table). Study folders (d_int90) have their own
    report, :mod:`projbench.report.study`."""
    from projbench.errors import UnknownNameError
    from projbench.manager import get_registry

    try:
        return get_registry("suites").get(suite_name)
    except UnknownNameError:
        return None


def _suite_columns(suite_name: str, records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    view = _suite_view(suite_name)
    if view is not None:
        return list(view.table_columns)
    else:
        keys: list[str] = []
        for r in records:
            for k in (r.get("stats") or {}):
                if k not in keys:
                    keys.append(k)
        return [(k, k) for k in keys[:6]]


def group_by_suite(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        grouped[str(r.get("suite"))].append(r)
    return dict(grouped)


def split_params(records: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Parameters equal in every record (shown once, in the caption) and the varying keys."""
    keys: list[str] = []
    for r in records:
        keys.extend(k for k in (r.get("params") or {}) if k not in keys)
    constant: dict[str, Any] = {}
    varying: list[str] = []
    for k in keys:
        values = {repr((r.get("params") or {}).get(k)) for r in records}
        if len(values) == 1 and len(records) > 1:
            constant[k] = (records[0].get("params") or {}).get(k)
        else:
            varying.append(k)
    return constant, varying


def run_ids(records: Iterable[dict[str, Any]]) -> list[str]:
    """The distinct ``run_id`` of the records, in order of first appearance."""
    return list(dict.fromkeys(str(r.get("run_id")) for r in records if r.get("run_id")))


def _param_sort_key(params: dict[str, Any] | None) -> tuple[Any, ...]:
    out: list[Any] = []
    for k in sorted(params or {}):
        v = (params or {})[k]
        if isinstance(v, int | float) and not isinstance(v, bool):
            out.append((k, 0, float(v), ""))
        elif v is None:
            out.append((k, 2, 0.0, ""))
        else:
            out.append((k, 1, 0.0, str(v)))
    return tuple(out)


def sort_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in a stable, readable order: projection, model/data, params (numbers numerically),
    then run (in the order the runs were given)."""
    recs = list(records)
    order = {rid: i for i, rid in enumerate(run_ids(recs))}
    return sorted(recs, key=lambda r: (str(r.get("projection")), str(r.get("architecture") or ""),
                                       str(r.get("dataset") or ""), _param_sort_key(r.get("params")),
                                       order.get(str(r.get("run_id")), -1)))


def suite_table(suite_name: str, records: list[dict[str, Any]]) -> Table:
    """One table: a row per case, the suite's stats columns, the status, and the error if any.

    Parameters shared by every row are printed once, in the caption. Rows are sorted
    (:func:`sort_records`); records of several runs get a ``run`` column (the run id).
    """
    columns = _suite_columns(suite_name, records)
    records = sort_records(records)
    constant, varying = split_params(records)
    several_runs = len(run_ids(records)) > 1
    table = Table(title=f"{suite_name}", title_justify="left", show_lines=False,
                  caption=format_params(constant) or None, caption_justify="left")
    table.add_column("projection", style="bold")
    if several_runs:
        table.add_column("run")
    if any(r.get("architecture") or r.get("dataset") for r in records):
        table.add_column("model/data")
    table.add_column("params")
    for header, _ in columns:
        table.add_column(header, justify="right")
    table.add_column("status")
    with_model = len(table.columns) > len(columns) + 3 + several_runs
    for r in records:
        status = str(r.get("status"))
        stats = r.get("stats") or {}
        row = [str(r.get("projection"))]
        if several_runs:
            row.append(str(r.get("run_id") or "-")[:8])
        if with_model:
            row.append(f"{r.get('architecture') or '-'}/{r.get('dataset') or '-'}")
        params = r.get("params") or {}
        row.append(format_params({k: params.get(k) for k in varying if k in params}))
        row.extend(format_value(stats.get(key)) for _, key in columns)
        note = status if not r.get("error") else f"{status}: {str(r['error'])[:60]}"
        row.append(f"[{STATUS_STYLE.get(status, 'white')}]{note}[/]")
        table.add_row(*row)
    return table


def print_tables(records: Iterable[dict[str, Any]], console: Console) -> None:
    for suite_name, rows in group_by_suite(records).items():
        console.print(suite_table(suite_name, rows))


def default_figure_dir(paths: Sequence[str | Path]) -> Path:
    """Where ``report`` puts figures by default: next to the first results file, named for
    every input (``a-figures`` for one file, ``a+b-figures`` for two, ``a+b+…-N-runs-<hash>``
    beyond three), so reports over different sets of runs never overwrite each other."""
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("default_figure_dir needs at least one path")
    stems = [f.stem for f in files]
    if len(stems) <= 3:
        name = "+".join(stems)
    else:
        import hashlib

        digest = hashlib.sha1("\0".join(str(f.resolve()) for f in files).encode()).hexdigest()[:8]
        name = f"{'+'.join(stems[:2])}+…-{len(stems)}-runs-{digest}"
    return files[0].parent / f"{name}-figures"


def _nonfinite_cases(suite_name: str, rows: list[dict[str, Any]]) -> int:
    """Cases with a NaN/inf among the suite's table columns (figures cannot draw them)."""
    keys = [key for _, key in _suite_columns(suite_name, rows)]
    count = 0
    for r in rows:
        stats = r.get("stats") or {}
        if any(isinstance(stats.get(k), float) and not math.isfinite(stats[k]) for k in keys):
            count += 1
    return count


def _label_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """With records of several runs, tag each registered projection with its run id, so that a
    figure draws one series per (projection, run) and never joins points of different runs."""
    if len(run_ids(rows)) <= 1:
        return rows
    from projbench.manager import get_registry

    registry = get_registry("projections")
    return [{**r, "projection": f"{r.get('projection')} @{str(r.get('run_id'))[:6]}"}
            if r.get("projection") in registry else r for r in rows]


def write_figures(records: Iterable[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per suite that can draw its records (``suite.figure``); returns the paths.

    Records of several runs are drawn as separate series (``projection @runid``); a figure
    whose cases have NaN/inf values says how many were left out, in red, at its foot. Each PNG
    is written atomically (:func:`projbench.report.figures.save_figure`): a full disk leaves no half
    file and is one line (:class:`~projbench.errors.InvalidArgumentError`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot create figure folder {out}: {exc.strerror or exc}") from None
    written: list[Path] = []
    for suite_name, rows in group_by_suite(records).items():
        draw = getattr(_suite_view(suite_name), "figure", None)
        if draw is None:
            continue
        ok_rows = [r for r in rows if r.get("status") == "ok"]
        if not ok_rows:
            continue
        fig = draw(_label_runs(sort_records(ok_rows)))
        if fig is None:
            continue
        bad = _nonfinite_cases(suite_name, ok_rows)
        if bad:
            fig.text(0.01, 0.002, f"{bad} case(s) with NaN/inf values are not drawn (see the table)",
                     color="red", fontsize=8, ha="left", va="bottom")
        path = out / f"{suite_name}.png"
        try:
            save_figure(fig, path, bbox_inches="tight")  # atomic: never a half-written PNG
        finally:
            plt.close(fig)
        written.append(path)
    return written

