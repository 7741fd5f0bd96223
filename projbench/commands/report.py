"""``projbench report``: tables and figures from run files and study folders, in every format
(rich tables, Markdown, CSV, JSON, one self-contained HTML page)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import click
from rich.console import Console


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--figures", "fig_dir", type=click.Path(file_okay=False),
              help="Directory for PNG figures (default: next to the results / in each study's folder).")
@click.option("--no-figures", is_flag=True, help="Only print tables.")
@click.option("--format", "fmt", default="table", show_default=True,
              type=click.Choice(["table", "md", "csv", "json", "html"]),
              help="table: rich tables on stderr, figure paths on stdout. md/csv/json: the data alone on "
                   "stdout (figure paths on stderr). html: one self-contained page on stdout (tables, "
                   "figures embedded, spec, versions, machine).")
@click.option("--columns", default=None, metavar="NAMES",
              help="Study tables: comma-separated column headers to show ('ref*' matches a prefix), or "
                   "'all' [default: a set that fits a terminal].")
@click.option("--reference", type=click.Path(dir_okay=False, exists=True),
              help="Study tables: CSV (architecture, dataset, projection, d_int90, source) to compare.")
def report_command(paths: tuple[str, ...], fig_dir: str | None, no_figures: bool, fmt: str,
                   columns: str | None, reference: str | None) -> None:
    """Tables and PNG figures from results files, study folders, or directories of them.

    A study folder (`projbench study … --out DIR`) gets the d_int90 table and figures; other
    results files get one table per suite. Every format works for both.
    """
    from projbench.commands.study_output import report_studies, split_study_paths
    from projbench.report.run_files import stderr_console

    console = stderr_console()
    studies, others = split_study_paths(list(paths))
    data_only = fmt != "table"
    for png in report_studies(studies, console, fmt=fmt, reference=reference,
                              fig_dir=None if no_figures else fig_dir, figures=not no_figures,
                              columns=columns):
        click.echo(str(png), err=data_only)
    if others:
        for png in _report_run_files(others, console, fmt, None if no_figures else fig_dir, no_figures):
            click.echo(str(png), err=data_only)


def _report_run_files(paths: list[str], console: Console, fmt: str, fig_dir: str | None,
                      no_figures: bool) -> list[Path]:
    """Tables of run files in ``fmt`` (see ``report``); returns the figure paths written."""
    import tempfile

    from projbench.report.run_files import default_figure_dir, print_tables, run_state, write_figures
    from projbench.results import read_runs

    runs = read_runs(paths)
    records = []
    for run in runs:
        header = run.header or {}
        torn = ", last line torn and ignored" if run.torn else ""
        console.print(f"[bold]{run.path}[/]: {len(run.cases)} cases, {run_state(run)}{torn}; "
                      f"projbench {header.get('projbench')}, torch {header.get('torch')}")
        records.extend(run.cases)
    if fmt == "table":
        print_tables(records, console)
    elif fmt in ("md", "csv", "json"):
        click.echo(_run_records_as(runs, fmt), nl=False)
    target = Path(fig_dir) if fig_dir else default_figure_dir([r.path for r in runs])
    if fmt == "html":
        with tempfile.TemporaryDirectory() as tmp:
            pngs = write_figures(records, target if not no_figures else Path(tmp))
            click.echo(_run_files_page(runs, records, pngs), nl=False)
        return [] if no_figures else pngs
    return [] if no_figures else write_figures(records, target)


def _run_records_as(runs: list[Any], fmt: str) -> str:
    """Every case of ``runs`` as one flat row (:func:`projbench.records.flatten_case`, with its
    run file): CSV with the union of the columns, JSON as a list, or one Markdown table per suite."""
    import csv
    import io
    import json

    from projbench.records import flatten_case

    rows = [flatten_case(c, run_file=str(run.path)) for run in runs for c in run.cases]
    if fmt == "json":
        return json.dumps(rows, indent=1, default=str) + "\n"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if r.get(k) is None else r.get(k)) for k in columns} for r in rows)
        return buf.getvalue()
    out = []
    for suite in dict.fromkeys(str(r.get("suite")) for r in rows):
        mine = [r for r in rows if str(r.get("suite")) == suite]
        cols = [c for c in columns if any(r.get(c) is not None for r in mine)]
        out += [f"**{suite}**", "", "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        out += ["| " + " | ".join(str(r.get(c, "")).replace("|", "\\|") for c in cols) + " |" for r in mine]
        out.append("")
    return "\n".join(out)


def _run_files_page(runs: list[Any], records: list[dict[str, Any]], figures: list[Path]) -> str:
    """Run files as one self-contained HTML page: the suite tables, figures, run headers."""
    from rich.console import Console as RichConsole

    from projbench.report.html import page
    from projbench.report.run_files import suite_table

    sections = []
    for suite in dict.fromkeys(str(r.get("suite")) for r in records):
        capture = RichConsole(record=True, width=160, file=io.StringIO())
        capture.print(suite_table(suite, [r for r in records if str(r.get("suite")) == suite]))
        sections.append((suite, capture.export_html(inline_styles=True, code_format="<pre>{code}</pre>")))
    provenance = {str(run.path): run.header for run in runs}
    return page("projbench results", sections, figures, provenance)
