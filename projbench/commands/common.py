"""Options and output shared by ``study`` and ``intrinsic-dim``: executors, progress, the table."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from projbench.errors import InvalidArgumentError


def executor_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--jobs``, ``--executor``, ``--address``, ``--cpus-per-task``, ``--gpus-per-task``."""
    options = [
        click.option(
            "--jobs",
            default=1,
            show_default=True,
            type=click.IntRange(1),
            help="Local worker processes (with --executor ray: CPUs of a local Ray).",
        ),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: this machine (inline or a process pool); ray: a Ray cluster.",
        ),
        click.option("--address", default=None, help="Ray cluster address (default: start a local Ray)."),
        click.option(
            "--cpus-per-task",
            default=1.0,
            show_default=True,
            type=click.FloatRange(0),
            help="Ray: CPUs reserved per training run.",
        ),
        click.option(
            "--gpus-per-task",
            default=0.0,
            show_default=True,
            type=click.FloatRange(0),
            help="Ray: GPUs per run (0.25 lets four runs share a GPU).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--data-dir`` (env ``PROJBENCH_DATA``): the root of torchvision-layout datasets."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        envvar="PROJBENCH_DATA",
        help="Root of torchvision-layout datasets [env PROJBENCH_DATA].",
    )(func)


def fwht_backend_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--fwht-backend NAME`` (part of every run's identity when given)."""
    return click.option(
        "--fwht-backend",
        default=None,
        metavar="NAME",
        help="FWHT backend for every run (`projbench list backends`) "
        "[default: $PROJBENCH_FWHT_BACKEND or torch].",
    )(func)


def check_fwht_backend(name: str | None) -> str | None:
    """The backend name, validated (unknown -> one-line error listing the registered ones)."""
    if name is None:
        return None
    from projbench.hadamard import get_backend

    get_backend(name)
    return name


def make_pool_from(
    executor: str, jobs: int, address: str | None, cpus_per_task: float, gpus_per_task: float
) -> Any:
    from projbench.executors import make_pool

    return make_pool(
        executor, jobs=jobs, address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task
    )


class RunProgress:
    """A rich progress line per finished run, with the count of runs and an ETA from the
    study's estimated run count."""

    def __init__(self, console: Any, estimate: str) -> None:
        from projbench.report import make_progress

        self.progress = make_progress(console)
        high = int(estimate.split("-")[-1])
        self.high = high
        self.task = self.progress.add_task("runs", total=high, current=f"~{estimate} runs planned")
        self.start = time.perf_counter()
        self.done = 0

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, record: dict[str, Any], spec: Any) -> None:
        self.done += 1
        stats = record.get("stats") or {}
        acc = stats.get("test_accuracy")
        acc_text = f"acc {acc:.4f}" if isinstance(acc, float) else "acc -"
        status = record.get("status")
        # ETA from the mean time per finished run and the planned (upper) run count: searches
        # usually stop earlier, so this is pessimistic
        elapsed = time.perf_counter() - self.start
        left = max(self.high - self.done, 0) * elapsed / self.done
        self.progress.update(
            self.task,
            advance=1,
            current=f"ETA ≤ {left / 60:.0f} min | {spec.label()}: {acc_text} "
            f"[{status}, {stats.get('run_wall_s', 0):.1f}s]",
        )


def print_outcome(
    outcome: Any, console: Any, *, fmt: str, reference: str | None, figures: Path | None, title: str
) -> list[Path]:
    """The table (stderr for ``table``, stdout for md/csv/html) and figures (paths returned);
    studies with axes also get the robustness table, studies that measure stability the
    stability tables."""
    from projbench.study.report import (
        ROBUSTNESS_COLUMNS,
        STABILITY_COLUMNS,
        STABILITY_SUMMARY_COLUMNS,
        add_reference,
        read_reference,
        render,
        rich_table,
        robustness_rows,
        simple_table,
        stability_figure,
        stability_summary,
        write_figures,
    )

    rows = outcome.rows
    if reference:
        add_reference(rows, read_reference(reference))
    if fmt == "table":
        console.print(rich_table(rows, title=title, caption=outcome.spec.notes))
    else:
        click.echo(render(rows, fmt, title=title, notes=outcome.spec.notes), nl=False)
    robust = robustness_rows(rows) if outcome.spec.axes else []
    srows = outcome.engine.stability_rows() if outcome.spec.measure else []
    extra = []
    if robust:
        extra.append(
            simple_table(robust, ROBUSTNESS_COLUMNS, "robustness of d_int90 across the study's variants")
        )
    if srows:
        extra.append(simple_table(srows, STABILITY_COLUMNS, "stability per evaluated d"))
        extra.append(
            simple_table(
                stability_summary(srows), STABILITY_SUMMARY_COLUMNS, "where training becomes unstable"
            )
        )
    from projbench.study.budget import (
        BUDGET_COLUMNS,
        NOT_CONVERGED_MARGIN,
        budget_figure,
        budget_rows,
    )

    brows = budget_rows(outcome.engine)
    if len({r["epochs"] for r in brows}) > 1:
        method = {r["method"] for r in brows}
        how = (
            "exact on the grid"
            if method == {"grid"}
            else "from the d values the bisection visited; bracket hi/lo says how finely"
        )
        extra.append(simple_table(brows, BUDGET_COLUMNS, f"d_int90 at each evaluated budget ({how})"))
    if any(r.get("convergence_known") for r in rows):
        console.print(
            f"not converged: a run whose test accuracy rose by more than {NOT_CONVERGED_MARGIN:g} over "
            "the last half of its training"
        )
    for table in extra:
        console.print(table)
    paths: list[Path] = []
    if figures is not None:
        paths = write_figures(rows, figures)
        if len({r["epochs"] for r in brows}) > 1:
            paths += budget_figure(brows, figures)
        if srows:
            png = stability_figure(srows, figures)
            if png is not None:
                paths.append(png)
    return paths


def check_format(fmt: str) -> None:
    from projbench.study.report import FORMATS

    if fmt not in FORMATS:
        raise InvalidArgumentError(f"--format must be one of {', '.join(FORMATS)}")


def with_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ProjbenchError raised inside a plugin-registered command into a one-line error."""
    from projbench.errors import ProjbenchError

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProjbenchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper
