"""A study's outcome as the commands print it, and study folders replayed for ``report``.

:func:`print_outcome` prints the d_int90 table of ``study``, ``intrinsic-dim`` and ``report`` in
any format (:func:`check_format`), with the reference column when a reference CSV is given, the
tables beside it (robustness across variants, stability per d, d_int90 per budget) and the
figures; ``html`` is one self-contained page. :func:`split_study_paths` tells study folders from
results files among ``report``'s paths, and :func:`report_studies` replays each study folder
(nothing is trained) through :func:`print_outcome`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from projbench.errors import InvalidArgumentError, ProjbenchError


def _extra_tables(outcome: Any, rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]], Any]]:
    """(title, rows, columns) of the tables printed after the main one: robustness across
    variants, stability per d and its summary, and d_int90 at each evaluated budget."""
    from projbench.report.study_extra_tables import (
        ROBUSTNESS_COLUMNS,
        STABILITY_COLUMNS,
        STABILITY_SUMMARY_COLUMNS,
        robustness_rows,
        stability_summary,
    )
    from projbench.study.budget import BUDGET_COLUMNS, budget_rows

    out: list[tuple[str, list[dict[str, Any]], Any]] = []
    robust = robustness_rows(rows) if outcome.spec.axes else []
    if robust:
        out.append(("robustness of d_int90 across the study's variants", robust, ROBUSTNESS_COLUMNS))
    srows = outcome.engine.stability_rows() if outcome.spec.measure else []
    if srows:
        out.append(("stability per evaluated d", srows, STABILITY_COLUMNS))
        out.append(("where training becomes unstable", stability_summary(srows), STABILITY_SUMMARY_COLUMNS))
    brows = budget_rows(outcome.engine)
    if len({r["epochs"] for r in brows}) > 1:
        exact = {r["method"] for r in brows} == {"grid"}
        how = (
            "exact on the grid"
            if exact
            else "from the d values the bisection visited; bracket hi/lo says how finely"
        )
        out.append((f"d_int90 at each evaluated budget ({how})", brows, BUDGET_COLUMNS))
    return out


def _study_figures(outcome: Any, rows: list[dict[str, Any]], figures: Path) -> list[Path]:
    """Write the study's figures into ``figures``: d_int90 per projection, d_int90 per budget
    (learning curves) and stability (studies that measure it); their paths."""
    from projbench.report.study_figures import stability_figure, write_figures
    from projbench.study.budget import budget_figure, budget_rows

    paths = write_figures(rows, figures)
    brows = budget_rows(outcome.engine)
    if len({r["epochs"] for r in brows}) > 1:
        paths += budget_figure(brows, figures)
    srows = outcome.engine.stability_rows() if outcome.spec.measure else []
    if srows:
        png = stability_figure(srows, figures)
        if png is not None:
            paths.append(png)
    return paths


def _study_page(
    outcome: Any, rows: list[dict[str, Any]], title: str, notes: str, figures: list[Path]
) -> str:
    """The study as one self-contained HTML page (tables, embedded figures, provenance)."""
    from projbench.report.html import html_table, page
    from projbench.report.study import _fmt, render
    from projbench.study.store import read_study

    sections = [("d_int90", render(rows, "html", notes=notes))]
    for heading, trows, cols in _extra_tables(outcome, rows):
        sections.append((heading, html_table([h for h, _ in cols], [[_fmt(r.get(k), 3) for _, k in cols]
                                                                      for r in trows])))
    header: dict[str, Any] = {}
    try:
        header = read_study(outcome.folder).header
    except ProjbenchError:
        pass
    provenance = {
        "spec": outcome.spec.to_dict(), "env": header.get("env"), "study_id": header.get("study_id")
    }
    return page(title, sections, figures, provenance)


def print_outcome(
    outcome: Any,
    console: Any,
    *,
    fmt: str,
    reference: str | None,
    figures: Path | None,
    title: str,
    columns: str | None = None,
) -> list[Path]:
    """The study's tables and figures (paths returned).

    ``table``: rich tables on stderr (``columns`` selects the main table's columns). ``md``,
    ``csv``, ``json``: the main table as data on stdout, nothing else there. ``html``: one
    self-contained page on stdout — every table, the figures embedded, the spec, versions and
    machine. Studies with axes also get the robustness table, studies that measure stability
    the stability tables, studies with learning curves the table of d_int90 per budget.
    """
    import tempfile

    from projbench.report.study import add_reference, read_reference, reference_legend, render, rich_table
    from projbench.study.budget import NOT_CONVERGED_MARGIN

    rows = outcome.rows
    if reference:
        add_reference(rows, read_reference(reference))
    notes = "\n".join(x for x in (reference_legend(rows), outcome.spec.notes) if x)
    if fmt == "html":
        with tempfile.TemporaryDirectory() as tmp:
            paths = _study_figures(outcome, rows, figures if figures is not None else Path(tmp))
            click.echo(_study_page(outcome, rows, title, notes, paths), nl=False)
        return paths if figures is not None else []
    if fmt == "table":
        console.print(rich_table(rows, title=title, caption=notes, columns=columns))
    else:
        click.echo(render(rows, fmt, title=title, notes=notes), nl=False)
    if any(r.get("convergence_known") for r in rows):
        console.print(
            f"not converged: a run whose test accuracy rose by more than {NOT_CONVERGED_MARGIN:g} over "
            "the last half of its training"
        )
    from projbench.report.study import simple_table

    for heading, trows, cols in _extra_tables(outcome, rows):
        console.print(simple_table(trows, cols, heading))
    return _study_figures(outcome, rows, figures) if figures is not None else []


def check_format(fmt: str) -> None:
    """Refuse a ``--format`` the study tables cannot be written in (one line)."""
    from projbench.report.study import FORMATS

    if fmt not in FORMATS:
        raise InvalidArgumentError(f"--format must be one of {', '.join(FORMATS)}")


def split_study_paths(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Study folders (given, or found inside given directories) and the other results paths.

    A directory holding studies and plain results files yields both; ``study.jsonl`` files are
    never passed on as plain results files.
    """
    from projbench.study.store import FILE_NAME, is_study

    studies: list[Path] = []
    others: list[str] = []
    for raw in paths:
        p = Path(raw)
        if is_study(p):
            studies.append(p if p.is_dir() else p.parent)
        elif p.is_dir():
            found = sorted(f.parent for f in p.rglob(FILE_NAME))
            studies.extend(found)
            plain = [f for f in p.rglob("*.jsonl") if f.name != FILE_NAME]
            if plain or not found:
                others.extend(str(f) for f in sorted(plain)) if plain else others.append(raw)
        else:
            others.append(raw)
    return list(dict.fromkeys(studies)), others


def report_studies(
    folders: list[Path],
    console: Any,
    *,
    fmt: str,
    reference: str | None,
    fig_dir: str | None,
    figures: bool,
    columns: str | None = None,
) -> list[Path]:
    """Replay each study folder's table (nothing is trained) and draw its figures."""
    from projbench.study.driver import replay_study
    from projbench.study.spec_files import check_stored_spec
    from projbench.study.store import read_study

    paths: list[Path] = []
    for folder in folders:
        check_stored_spec(read_study(folder).spec, str(folder))
        outcome, stored = replay_study(folder)
        state = "complete" if stored.ended else "incomplete (interrupted or still running?)"
        extra = []
        if stored.torn:
            extra.append("last line torn and ignored")
        if stored.bad_lines:
            extra.append(f"{stored.bad_lines} unreadable line(s) skipped")
        env = stored.header.get("env") or {}
        console.print(
            f"[bold]{folder}[/]: study {outcome.spec.name}, {len(stored.runs)} runs recorded, {state}"
            + (f" ({'; '.join(extra)})" if extra else "")
            + f"; projbench {env.get('projbench')}, torch {env.get('torch')}"
        )
        target = None
        if figures:
            target = (
                (Path(fig_dir) / folder.name)
                if fig_dir and len(folders) > 1
                else (Path(fig_dir) if fig_dir else folder / "figures")
            )
        paths += print_outcome(
            outcome,
            console,
            fmt=fmt,
            reference=reference,
            figures=target,
            title=f"d_int90 — study {outcome.spec.name}",
            columns=columns,
        )
    return paths
