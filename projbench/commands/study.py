"""``projbench study SPEC --out DIR``: the seed report's d_int90 table from one command."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from projbench.commands.common import (
    RunProgress,
    check_format,
    check_fwht_backend,
    data_dir_option,
    executor_options,
    fwht_backend_option,
    make_pool_from,
    print_outcome,
    ray_timeout_option,
    stop_pool,
    stops_on_signals,
)
from projbench.errors import InvalidArgumentError, ProjbenchError


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
    from projbench.cliutils import resolve_device
    from projbench.report.run_files import stderr_console
    from projbench.study.driver import run_study
    from projbench.study.spec_files import load_spec

    if list_presets:
        _list_presets()
        return
    if not spec_source:
        raise click.UsageError("give a preset name or a TOML file (see `projbench study --list`)")
    check_format(fmt)
    overrides: dict[str, Any] = {}
    if device is not None:
        overrides["device"] = resolve_device(device)
    if seeds is not None:
        overrides["seeds"] = seeds
    if threads is not None:
        overrides["threads"] = threads
    if fwht_backend is not None:
        overrides["fwht_backend"] = check_fwht_backend(fwht_backend)
    spec = load_spec(spec_source, overrides)
    _resolve_devices(spec)
    _check_names(spec)
    console = stderr_console()
    if dry_run:
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
        return
    if not out_dir:
        raise click.UsageError("--out DIR is required (the study folder)")
    check_data(spec, data_dir)
    folder = study_folder(out_dir)
    pool = None
    try:
        pool = make_pool_from(
            executor, jobs, address, cpus_per_task, gpus_per_task, connect_timeout=ray_timeout
        )
        console.print(
            f"study [bold]{spec.name}[/]: ~{spec.run_count()} runs on {pool.workers} worker(s) "
            f"({pool.name}); recording to {folder / 'study.jsonl'}"
        )
        if spec.notes:
            console.print(f"[yellow]{spec.notes}[/]")
        with RunProgress(console, spec.run_count()) as progress:
            outcome = run_study(spec, folder, pool=pool, data_dir=data_dir, on_record=progress)
    except KeyboardInterrupt:  # a signal (stops_on_signals): stop the workers, keep the folder
        stop_pool(pool)
        raise
    finally:
        if pool is not None:
            pool.close()
    figures = None if no_figures else folder / "figures"
    paths = print_outcome(
        outcome, console, fmt=fmt, reference=reference, figures=figures, title=f"d_int90 — study {spec.name}"
    )
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


def _resolve_devices(spec: Any) -> None:
    """Each pair's device as it will run: "auto" resolves here, once, for the whole study; a
    CUDA device without CUDA is refused now (one line naming the pair)."""
    from projbench.cliutils import resolve_device

    for pair in spec.pairs:
        try:
            pair.run["device"] = resolve_device(pair.run["device"])
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{pair.label}: {exc}") from None


def _check_names(spec: Any) -> None:
    """Unknown architectures, datasets, projections, options or FWHT backends fail before
    anything runs, and so does a projection that fails the contract checks ``run`` applies."""
    from projbench.benchmark import validate_options
    from projbench.manager import get_registry
    from projbench.training_runs import parameter_count

    for entry in spec.projections:
        validate_options([entry.name], entry.options)
    for pair in spec.pairs:
        get_registry("architectures").get(pair.architecture)
        get_registry("datasets").get(pair.dataset)
        try:
            check_fwht_backend(pair.run.get("fwht_backend"))
        except ProjbenchError as exc:
            raise InvalidArgumentError(f"{pair.label} fwht_backend: {exc}") from None
        num_params = parameter_count(pair.architecture, pair.dataset, num_classes=pair.num_classes)
        s = pair.search
        largest = s["d_max"] if s["method"] == "bisect" else max(s["grid"] or [0])
        if largest > num_params:
            raise InvalidArgumentError(
                f"{pair.label}: the largest d searched ({largest:,}) exceeds D = {num_params:,}; lower d_max "
                "(or the grid) for this pair"
            )
    from projbench.study.checks import check_transfer

    check_transfer(spec)
    _check_contracts(spec)


def _check_contracts(spec: Any) -> None:
    """Every projection (with its options) passes :mod:`projbench.testing`'s contract checks,
    as ``projbench run`` demands, on the CPU and on each other device a pair uses it on."""
    from projbench.benchmark import check_projection_contracts
    from projbench.suites import RunSettings

    for entry in spec.projections:
        devices = {"cpu"} | {p.run["device"] for p in spec.pairs if entry.label in p.projections}
        for device in sorted(devices):
            check_projection_contracts([entry.name], RunSettings(device=device, options=entry.options))


def check_data(spec: Any, data_dir: str | None) -> None:
    """Load and fingerprint each pair's data now (missing or unreadable data is one line, and
    no folder is made), and refuse a train/test subset larger than its split."""
    from projbench.study.checks import check_transfer
    from projbench.study.driver import StudyProvenance

    StudyProvenance(data_dir).check_spec(spec)
    check_transfer(spec, data_dir, load_data=True)
    for pair in spec.pairs:
        if pair.classes:  # the filtered splits' sizes were checked just now
            continue
        for split in ("train", "test"):
            wanted = pair.run.get(f"{split}_subset")
            size = _split_size(pair.dataset, split, data_dir) if wanted is not None else 0
            if wanted is not None and wanted > size:
                raise InvalidArgumentError(
                    f"{pair.label}: {split}_subset = {wanted:,} but the {split} split of {pair.dataset} has "
                    f"{size:,} examples; give at most {size:,}, or leave {split}_subset out to use them all"
                )


@functools.lru_cache(maxsize=16)
def _split_size(dataset: str, split: str, data_dir: str | None) -> int:
    """Number of examples in one split of a dataset (loaded once per process)."""
    from projbench.datasets import load_dataset

    return int(load_dataset(dataset, split, data_dir)[1].shape[0])


def study_folder(out_dir: str) -> Path:
    """``--out`` with symbolic links resolved (the study folder itself), refused in one line when
    it is a file or its ``study.jsonl`` is a link leading out of the folder."""
    from projbench.study.store import FILE_NAME

    try:
        folder = Path(out_dir).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links
        raise InvalidArgumentError(f"--out {out_dir} cannot be resolved ({exc}); give a folder") from None
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"--out {out_dir} is not a folder; give a folder (created if missing)")
    file = folder / FILE_NAME
    if file.is_symlink() and file.resolve().parent != folder:
        raise InvalidArgumentError(
            f"{file} is a symbolic link to {file.resolve()}, outside the study folder; "
            "remove it or choose another --out"
        )
    return folder


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
