"""``projbench run``: measure projections with the selected suites, one record per case.

Records are appended as each case finishes; SIGINT and SIGTERM stop the run keeping every
finished case, with one line that says how to resume (exit status 128 + the signal).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from projbench.cliutils import parse_options, resolve_device, split_names
from projbench.commands.options import check_fwht_backend, data_dir_option, fwht_backend_option
from projbench.manager import get_registry


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`projbench.benchmark.RunInterrupted`
    once (a repeat is ignored while the run stops); the previous handlers come back after."""
    import signal
    import threading

    from projbench.benchmark import RunInterrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def interrupt(signum: int, frame: Any) -> None:
        if not fired:
            fired.append(signum)
            raise RunInterrupted(signum)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt_status(exc: KeyboardInterrupt) -> int:
    """Exit status of a run stopped by ``exc``: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
    import signal

    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def _print_timing_notes(console: Console, result: Any) -> None:
    """Say which timings cannot be trusted, why, and how to get numbers that can be."""
    from projbench.metrics.timing import max_load_per_cpu

    loaded = result.loaded()
    spread = result.unstable() - loaded  # a loaded case is always flagged unstable
    if loaded:
        console.print(
            f"[yellow]{loaded} timed case(s) ran on a loaded machine (1-minute load average up to "
            f"{result.max_load_per_cpu():.2f} per CPU, above the limit {max_load_per_cpu():g}): their "
            "times are flagged unstable. For a trustworthy number rerun into a new file on a quiet "
            "machine (nothing else running), with --jobs 1 and --threads N below the idle CPUs "
            "(e.g. --threads 1)[/]")
    if spread > 0:
        console.print(
            f"[yellow]{spread} case(s) have unstable timings (marked in the table): their spread is "
            "too wide to trust; rerun on a quiet machine with --jobs 1 and --threads 1, or with "
            "--full (more samples)[/]")


@click.command("run")
@click.option("--proj", "projections", multiple=True, required=True, metavar="NAME",
              help="Projection(s) to benchmark; repeat or comma-separate; 'all' for every one.")
@click.option("--suite", "suites", multiple=True, metavar="NAMES",
              help="Suites to run, e.g. distortion,speed (default: every registered suite).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of every random choice, in [-2**63, 2**63 - 1].")
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the results file.")
@click.option("--resume", "resume_file", type=click.Path(dir_okay=False),
              help="Continue this existing results file: finished cases are reused, failed and "
                   "skipped ones run again; refused if it was recorded with other settings.")
@click.option("-o", "--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
              help="Projection option, e.g. -o q=0.05 (see `projbench list projections`).")
@click.option("--full", is_flag=True, help="Full grids instead of the quick defaults (slow).")
@data_dir_option
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--jobs", default=None, type=int,
              help="Cases at once: local worker processes (default 1: in this process); with "
                   "--executor ray, the CPUs of a local Ray and the cases in flight (default: all "
                   "the cluster's CPUs). Timed cases (speed) always run one at a time.")
@click.option("--threads", default=None, type=int,
              help="Torch threads for each case (default: torch's own choice); recorded.")
@click.option("--isolate", is_flag=True,
              help="Run each case in a child process, so a case that crashes it (segfault, "
                   "abort) is recorded as failed instead of ending the run (implied by --jobs > 1).")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray).")
@fwht_backend_option
def run_command(projections: tuple[str, ...], suites: tuple[str, ...], device: str, dtype: str, seed: int,
                out_dir: str, resume_file: str | None, option_pairs: tuple[str, ...], full: bool,
                data_dir: str | None, executor: str, jobs: int | None, threads: int | None,
                isolate: bool, address: str | None, fwht_backend: str | None) -> None:
    """Measure projections with the selected suites and record every case.

    \b
    With no other flags (`projbench run --proj fastjl`) every suite runs on the small
    embedded defaults in well under a minute on a laptop CPU: JL distortion, speed, memory
    and subspace-training accuracy on scikit-learn's digits. Results are appended to a
    JSON-lines file, one line the moment each case finishes; its path is printed on stdout;
    read it with `projbench report`. Ctrl-C or SIGTERM stops the run keeping every finished
    case (exit status 130 or 143); `--resume FILE` continues it. The exit status is 1 when
    any case failed (its error is recorded; the others still run).
    """
    with _signals_interrupt():
        try:
            _run(projections, suites, device, dtype, seed, out_dir, resume_file, option_pairs, full,
                 data_dir, executor, jobs, threads, isolate, address, fwht_backend)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (RunInterrupted)
            stopped = exc
        else:
            return
    raise SystemExit(_interrupt_status(stopped))


def _run(projections: tuple[str, ...], suites: tuple[str, ...], device: str, dtype: str, seed: int,
         out_dir: str, resume_file: str | None, option_pairs: tuple[str, ...], full: bool,
         data_dir: str | None, executor: str, jobs: int | None, threads: int | None, isolate: bool,
         address: str | None, fwht_backend: str | None) -> None:
    """The body of ``run``; an interrupt propagates after its one line is printed."""
    if check_fwht_backend(fwht_backend) is not None:  # inherited by spawned workers via the env
        import os

        from projbench.hadamard import BACKEND_ENV

        os.environ[BACKEND_ENV] = str(fwht_backend)
    from projbench.benchmark import check_run_seed, check_threads, default_run_path, run_benchmark, unique
    from projbench.case_executor import check_jobs, make_executor
    from projbench.report.run_files import make_progress, print_tables, stderr_console
    from projbench.results import ResultsFileError
    from projbench.suites import RunSettings

    check_run_seed(seed)
    check_threads(threads)
    check_jobs(jobs)
    names = unique(split_names(projections))
    if names == ["all"]:
        names = get_registry("projections").names()
    suite_names = unique(split_names(suites)) or get_registry("suites").names()
    settings = RunSettings(device=resolve_device(device), seed=seed, dtype=dtype,
                           options=parse_options(option_pairs), quick=not full, data_dir=data_dir)
    if resume_file:
        path = Path(resume_file)
        if not path.is_file():
            raise ResultsFileError(f"no results file {path} to resume (mistyped? to start a new run, "
                                   "leave out --resume and use --out DIR)")
    else:  # created (or refused, one line) only once every check has passed
        path = default_run_path(out_dir)
    console = stderr_console()
    progress = make_progress(console)
    task = progress.add_task("cases", total=None, current="")
    started: list[int] = []

    def on_start(total: int) -> None:  # every check passed: only now draw the bar
        started.append(total)
        _say_how_cases_run(console, suite_names, executor, jobs)
        progress.update(task, total=total)
        progress.start()

    def on_record(record: dict[str, Any]) -> None:
        label = f"{record['suite']}/{record['projection']} {record['status']}"
        progress.update(task, advance=1, current=label)

    try:
        result = run_benchmark(names, suite_names, settings, path=path, resume=bool(resume_file),
                               executor=make_executor(executor, jobs=jobs, address=address, isolate=isolate),
                               on_start=on_start, on_record=on_record, threads=threads)
    except KeyboardInterrupt:
        if progress.live.is_started:
            progress.live.transient = True  # the interrupt gets one line, not the bar's remains
            progress.stop()
        if path.is_file() and started:
            click.echo(f"interrupted; rerun with --resume {path} to continue "
                       f"({_cases_in(path)} cases recorded)", err=True)
        else:
            click.echo("interrupted before any case ran; nothing was recorded", err=True)
        raise
    finally:
        if progress.live.is_started:
            progress.stop()
    print_tables(result.records, console)
    by_status = ", ".join(f"{v} {k}" for k, v in sorted(result.counts().items()))
    resumed = f" ({result.skipped_existing} reused from the earlier run)" if result.skipped_existing else ""
    console.print(f"{len(result.records)} cases: {by_status}{resumed} in {result.wall_s:.1f} s")
    _print_timing_notes(console, result)
    click.echo(str(path))
    failed = sum(r["status"] == "failed" for r in result.records)
    if failed:
        console.print(f"[red]{failed} case(s) failed; their errors are in the table and in {path}[/]")
        raise SystemExit(1)


def _cases_in(path: Path) -> str:
    """How many cases the run file at ``path`` holds (``?`` when it cannot be read)."""
    from projbench.results import ResultsFileError, read_run

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(len(read_run(path).cases))
    except ResultsFileError:
        return "?"


def _say_how_cases_run(console: Console, suites: list[str], executor: str, jobs: int | None) -> None:
    """With several cases at once, say that timed cases still run alone (and when)."""
    from projbench.benchmark import timing_suites

    timed = timing_suites(suites)
    parallel = executor == "ray" or (jobs or 1) > 1
    if timed and parallel:
        where = f"{jobs} at a time" if jobs else "as many at a time as the Ray cluster has CPUs"
        console.print(f"{', '.join(timed)}: timed cases run one at a time first (two timings never "
                      f"share the machine), then the other cases {where}", highlight=False)
