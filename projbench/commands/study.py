"""``projbench study SPEC --out DIR``: a d_int90 table, seeds and spread included, from one command.

The command loads the spec (a preset or a TOML file) with the command line's overrides, checks
it (:mod:`projbench.commands.study_checks`), and either prints the plan (``--dry-run``) or runs
it on the executor's pool into a resumable folder and prints the table
(:mod:`projbench.commands.study_output`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from projbench.commands.options import (
    check_fwht_backend,
    data_dir_option,
    executor_options,
    fwht_backend_option,
    ray_timeout_option,
)
from projbench.commands.pools import running_pool
from projbench.commands.run_progress import RunProgress
from projbench.commands.stop_signals import stops_on_signals
from projbench.commands.study_checks import check_data, check_names, resolve_devices, study_folder
from projbench.commands.study_output import check_format, print_outcome


def _list_presets() -> None:
    from rich.table import Table

    from projbench.report.run_files import stderr_console
    from projbench.study.spec_files import load_spec, preset_names

    table = Table(title="study presets", title_justify="left")
    for h in ("preset", "pairs", "projections", "seeds", "runs (est.)", "description"):
        table.add_column(h, overflow="fold")
    for name in preset_names():
        spec = load_spec(name)
        table.add_row(
            name,
            ", ".join(p.label for p in spec.pairs),
            ", ".join(p.label for p in spec.projections),
            str(len(spec.seeds)),
            spec.run_count(),
            spec.description,
        )
        click.echo(f"{name}\t{spec.run_count()}\t{spec.description}")
    stderr_console().print(table)


@click.command("study")
@click.argument("spec_source", metavar="SPEC", required=False)
@click.option("--list", "list_presets", is_flag=True, help="List the built-in presets and exit.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Study folder (created, or resumed when it holds the same study).",
)
@executor_options
@ray_timeout_option
@click.option("--device", default=None, help="Override every pair's device: cpu, cuda, cuda:N or auto.")
@click.option("--seeds", default=None, type=click.IntRange(1), help="Override the number of seeds (0..N-1).")
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(1),
    help="torch threads per run (part of a run's identity) [spec: 1].",
)
@data_dir_option
@click.option(
    "--format",
    "fmt",
    default="table",
    show_default=True,
    type=click.Choice(["table", "md", "csv", "html"]),
    help="Table format (md/csv/html on stdout).",
)
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, exists=True),
    help="CSV (architecture, dataset, projection, d_int90, source) to compare against.",
)
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@click.option("--dry-run", is_flag=True, help="Resolve and print the plan; train nothing.")
@fwht_backend_option
@stops_on_signals
def study(
    spec_source: str | None,
    list_presets: bool,
    out_dir: str | None,
    jobs: int,
    executor: str,
    address: str | None,
    cpus_per_task: float,
    gpus_per_task: float,
    ray_timeout: float | None,
    device: str | None,
    seeds: int | None,
    threads: int | None,
    data_dir: str | None,
    fmt: str,
    reference: str | None,
    no_figures: bool,
    dry_run: bool,
    fwht_backend: str | None,
) -> None:
    """Run a study: d_int90 of every (architecture, dataset) pair × projection × seed.

    SPEC is a preset name (`projbench study --list`) or a TOML file. Every training run (a
    baseline or one subspace run at one d) is a task; independent searches run side by side on
    --jobs N local processes or a Ray cluster (--executor ray). Each finished run is recorded in
    OUT/study.jsonl at once, so running the same command again resumes where it stopped; a
    different spec is refused. At the end the table is printed and figures are written to
    OUT/figures (paths on stdout). `projbench report OUT` shows them again.

    Every value of the spec, the names, the projections' contracts and each pair's data are
    checked before the folder is made: a mistake is one line. Ctrl-C, SIGTERM or SIGHUP stop
    the workers and exit with one line (status 128 + the signal); the folder keeps every
    finished run, so the same command resumes it.

    \b
    Examples:
      projbench study smoke --out runs/smoke --jobs 2
      projbench study cpu-budget --out runs/cpu-budget --jobs 2      # a laptop, ~1 h
      projbench study all-architectures --out runs/all --device cuda --executor ray --gpus-per-task 0.25
    """
    from projbench.report.run_files import stderr_console

    if list_presets:
        _list_presets()
        return
    if not spec_source:
        raise click.UsageError("give a preset name or a TOML file (see `projbench study --list`)")
    check_format(fmt)
    spec = _load_spec(spec_source, device=device, seeds=seeds, threads=threads, fwht_backend=fwht_backend)
    console = stderr_console()
    if dry_run:
        _dry_run(spec, console, data_dir, executor, jobs, address, cpus_per_task, gpus_per_task)
        return
    if not out_dir:
        raise click.UsageError("--out DIR is required (the study folder)")
    check_data(spec, data_dir)
    folder = study_folder(out_dir)
    with running_pool(
        executor, jobs, address, cpus_per_task, gpus_per_task, connect_timeout=ray_timeout
    ) as pool:
        outcome = _run(spec, folder, pool, console, data_dir)
    figures = None if no_figures else folder / "figures"
    _print_result(outcome, folder, console, fmt=fmt, reference=reference, figures=figures,
                  title=f"d_int90 — study {spec.name}")


def _load_spec(
    source: str, *, device: str | None, seeds: int | None, threads: int | None, fwht_backend: str | None
) -> Any:
    """The spec of preset or TOML file ``source`` with the command line's overrides, each pair's
    device resolved and every name checked (one line per mistake)."""
    from projbench.cliutils import resolve_device
    from projbench.study.spec_files import load_spec

    overrides: dict[str, Any] = {}
    if device is not None:
        overrides["device"] = resolve_device(device)
    if seeds is not None:
        overrides["seeds"] = seeds
    if threads is not None:
        overrides["threads"] = threads
    if fwht_backend is not None:
        overrides["fwht_backend"] = check_fwht_backend(fwht_backend)
    spec = load_spec(source, overrides)
    resolve_devices(spec)
    check_names(spec)
    return spec


def _dry_run(spec: Any, console: Any, data_dir: str | None, executor: str, jobs: int, address: str | None,
             cpus_per_task: float, gpus_per_task: float) -> None:
    """The plan without training: the study's size, one line per pair on stdout, a few steps
    measured per pair, and what the executor's workers would take."""
    from projbench.study.plan import executor_workers, plan_pair, plan_table, summary_lines

    console.print(
        f"study {spec.name}: {len(spec.pairs)} pairs, {len(spec.projections)} projections, "
        f"{len(spec.seeds)} seeds, {len(spec.variants())} variants, ~{spec.run_count()} runs"
    )
    for pair in spec.pairs:
        click.echo(
            f"{pair.label}\t{','.join(pair.projections)}\t{pair.search}\t{pair.recipe}\t{pair.run}"
        )
    console.print("measuring a few steps per pair here (a few seconds each)…")
    plans = [plan_pair(spec, i, data_dir) for i in range(len(spec.pairs))]
    console.print(plan_table(plans))
    workers = executor_workers(executor, jobs, address, cpus_per_task, gpus_per_task)
    for line in summary_lines(plans, workers, executor, jobs):
        console.print(line, highlight=False, markup=False)


def _run(spec: Any, folder: Path, pool: Any, console: Any, data_dir: str | None) -> Any:
    """Train the study into ``folder`` (resuming it) on ``pool``, with a progress line."""
    from projbench.study.driver import run_study

    console.print(
        f"study [bold]{spec.name}[/]: ~{spec.run_count()} runs on {pool.workers} worker(s) "
        f"({pool.name}); recording to {folder / 'study.jsonl'}"
    )
    if spec.notes:
        console.print(f"[yellow]{spec.notes}[/]")
    with RunProgress(console, spec.run_count()) as progress:
        return run_study(spec, folder, pool=pool, data_dir=data_dir, on_record=progress)


def _print_result(outcome: Any, folder: Path, console: Any, *, fmt: str, reference: str | None,
                  figures: Path | None, title: str) -> None:
    """The table (and figures) in ``fmt``, the run counts, the study file and figure paths on
    stdout; exit status 1 when a row stopped or a run failed."""
    paths = print_outcome(outcome, console, fmt=fmt, reference=reference, figures=figures, title=title)
    overhead = outcome.engine.driver_overhead_per_run_s
    console.print(
        f"{outcome.trained} runs trained, {outcome.reused} reused, {outcome.failed_runs} failed; "
        f"{outcome.engine.wall_s:.1f} s wall"
        + (f"; driver overhead {overhead * 1e3:.1f} ms/run" if overhead is not None else "")
    )
    click.echo(str(folder / "study.jsonl"))
    for p in paths:
        click.echo(str(p))
    stopped = [r for r in outcome.rows if r["status"] == "failed" and not outcome.failed_runs]
    if stopped:
        console.print(f"[red]{len(stopped)} row(s) stopped: {stopped[0]['message']}[/]")
        raise SystemExit(1)
    if outcome.failed_runs:
        console.print(
            f"[red]{outcome.failed_runs} run(s) failed (errors in the table and the study file); "
            "run the same command again to retry them[/]"
        )
        raise SystemExit(1)
