"""``projbench compare A B``: run files B against A (ratios of medians with bootstrap intervals
and a Mann-Whitney test), or two study folders cell by cell (d_int90 ratios)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

from projbench.errors import InvalidArgumentError


@click.command("compare")
@click.argument("a_path", metavar="A", type=click.Path())
@click.argument("b_path", metavar="B", type=click.Path())
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="Significance level of the Mann-Whitney U test.")
@click.option("--confidence", default=0.95, show_default=True, type=float,
              help="Level of the bootstrap interval of each ratio.")
@click.option("--min-change", default=0.05, show_default=True, type=float,
              help="Smallest relative change that counts (0.05 = 5 %).")
@click.option("--json", "as_json", is_flag=True, help="Print every comparison as JSON on stdout.")
@click.option("--fail-on-regression", is_flag=True, help="Exit with status 1 when B has a regression.")
def compare_command(a_path: str, b_path: str, alpha: float, confidence: float, min_change: float,
                    as_json: bool, fail_on_regression: bool) -> None:
    """Compare results B against A (files or folders): per case and measure, the ratio B/A of
    medians with a bootstrap confidence interval and a Mann-Whitney p-value; significant
    regressions (B slower/larger) and improvements are flagged.

    \b
    Cases match by suite, projection, model/data and params; speed is compared on the raw
    per-call samples (shown in ms, as `run` prints them), memory bytes as point values. Only
    'ok' cases count. A timing with fewer than 5 samples a side, or one that `run` flagged
    unstable, gets no verdict ('unclear', with the reason). A and B with no case in common is
    an error (exit status 1).

    \b
    Two study folders are compared cell by cell (architecture, dataset, variant, projection):
    the ratio of mean d_int90 B/A, per-seed ratios, and a verdict - higher (a regression: more
    dimensions needed) or lower only when B's interval lies wholly beyond A's and, with at
    least 6 seeds paired, a Wilcoxon signed-rank test agrees (p < --alpha).
    """
    from projbench.report.run_files import stderr_console
    from projbench.study.store import is_study

    if is_study(a_path) or is_study(b_path):
        if not (is_study(a_path) and is_study(b_path)):
            raise InvalidArgumentError(
                "compare a study folder with another study folder (or run files with run files)"
            )
        _compare_studies(a_path, b_path, alpha, as_json, fail_on_regression, stderr_console())
        return
    from projbench.compare import compare_runs, comparison_table

    result = compare_runs(a_path, b_path, alpha=alpha, confidence=confidence, min_change=min_change)
    result.check_comparable()  # nothing in common is an error, not an empty table that passes
    console = stderr_console()
    if as_json:
        click.echo(result.to_json())
    else:
        console.print(comparison_table(result, confidence))
    unclear = sum(1 for r in result.rows if r.reason)
    no_verdict = f"; {unclear} without a verdict (too few samples or unstable timings)" if unclear else ""
    console.print(f"{len(result.rows)} comparisons: {len(result.regressions)} regression(s), "
                  f"{len(result.improvements)} improvement(s); {result.only_a} case(s) only in A, "
                  f"{result.only_b} only in B{no_verdict}")
    if fail_on_regression and result.regressions:
        raise SystemExit(1)


def _interval_text(mean: float | None, interval: list[Any]) -> str:
    return "-" if mean is None else f"{mean:,.0f} [{interval[0]}, {interval[1]}]"


def _compare_studies(
    a_path: str, b_path: str, alpha: float, as_json: bool, fail_on_regression: bool, console: Console
) -> None:
    """``compare`` of two study folders (:func:`projbench.study.api.compare_studies`)."""
    from rich.table import Table

    from projbench.study.api import compare_studies

    rows = compare_studies(a_path, b_path, alpha=alpha)
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
    else:
        table = Table(title=f"d_int90: {b_path} (B) against {a_path} (A)", title_justify="left")
        for header in ("architecture", "dataset", "variant", "projection", "A", "B", "B/A", "verdict", "why"):
            table.add_column(header, no_wrap=header != "why")
        for r in rows:
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
            table.add_row(r["architecture"], r["dataset"], r["variant"], r["projection"],
                          _interval_text(r["a_mean"], r["a_interval"]),
                          _interval_text(r["b_mean"], r["b_interval"]), ratio, r["verdict"], r["why"])
        console.print(table)
    higher = [r for r in rows if r["verdict"] == "higher"]
    console.print(f"{len(rows)} cells: {len(higher)} regression(s) (d_int90 higher in B), "
                  f"{sum(r['verdict'] == 'lower' for r in rows)} improvement(s), "
                  f"{sum(r['verdict'] == 'unclear' for r in rows)} unclear")
    if fail_on_regression and higher:
        raise SystemExit(1)
