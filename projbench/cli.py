"""The ``projbench`` command line: a thin click group that parses, delegates and prints.

Progress bars and result tables go to stderr (rich); data — listings, result file paths,
figure paths — go to stdout, so ``projbench run … > path.txt`` captures what was written.
Every :class:`projbench.ProjbenchError` becomes a one-line ``Error: …`` and exit status 1; so
does a write that a full disk, a quota or a read-only file system refused (``OSError`` with
``ENOSPC``, ``EDQUOT`` or ``EROFS``), wherever in a command it happens.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from projbench import __version__
from projbench.allocator import tune_cpu_allocator
from projbench.cliutils import parse_options, resolve_device, split_names
from projbench.commands.common import check_fwht_backend, data_dir_option, fwht_backend_option
from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.manager import REGISTRY_HOOKS, get_registry, plugin_infos, register_commands

KINDS = tuple(REGISTRY_HOOKS)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    click.echo(f"Warning: {message}", err=True)


class ProjbenchGroup(click.Group):
    """Adds plugin commands lazily and turns ProjbenchError into a one-line error."""

    _plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        """Add every plugin's commands once; a failing plugin is a one-line warning (also under
        ``--help``, which lists commands before any command runs)."""
        if not self._plugins_loaded:
            self._plugins_loaded = True
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                register_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:  # a core command: no need to import every plugin (torch)
            return self.commands[cmd_name]
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # Warnings print as one line for the duration of the command only: the previous
        # ``warnings.showwarning`` and filters come back afterwards (callers of ``cli`` in-process).
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except ProjbenchError as exc:
                raise click.ClickException(" ".join(str(exc).split())) from None
            except OSError as exc:
                message = _device_refused(exc)
                if message is None:
                    raise
                raise click.ClickException(message) from None


def _device_refused(exc: OSError) -> str | None:
    """One line for a write that a full disk, a quota or a read-only file system refused
    anywhere in a command (what, why, what to do); None for any other ``OSError``."""
    from projbench.jsonl import DEVICE_FULL_ADVICE, write_failure

    if exc.errno not in DEVICE_FULL_ADVICE:
        return None
    what = str(exc.filename) if exc.filename is not None else "a file"
    return " ".join(write_failure(what, exc, "run the same command again").split())


@click.group(cls=ProjbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="projbench")
def cli() -> None:
    """Benchmark random projections for subspace training of neural networks.

    \b
    Start here:
      projbench list                 what is installed (projections, architectures, ...)
      projbench run --proj fastjl    every suite on the small embedded defaults (< 1 min)
      projbench report runs/         tables and PNG figures from result files
      projbench intrinsic-dim --arch fc --dataset mnist --proj fastfood
      projbench compare A.jsonl B.jsonl   B/A time ratios with confidence intervals

    \b
    CPU memory: the commands keep freed memory for reuse (glibc malloc, policy "retain"), which
    avoids page faults on every large tensor; PROJBENCH_CPU_ALLOCATOR=system leaves malloc as is.
    """
    tune_cpu_allocator()


# ------------------------------------------------------------------------------------------
# list / plugins
# ------------------------------------------------------------------------------------------
def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _count_params_meta(arch: Any, shape: tuple[int, ...], classes: int) -> int | None:
    """D of an architecture for a dataset shape, built on the meta device (no memory)."""
    import torch

    if arch.supports is not None and not arch.supports(shape):
        return None
    try:
        with torch.device("meta"):
            model = arch.build(shape, classes)
    except ProjbenchError:
        return None
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _listing(kind: str) -> tuple[list[str], list[list[str]]]:
    registry = get_registry(kind)
    rows: list[list[str]] = []
    if kind == "projections":
        header = ["name", "plugin", "options (defaults)", "summary"]
        for name, cls in registry.items():
            opts = ", ".join(f"{k}={v!r}" for k, v in cls.option_defaults().items())
            rows.append([name, registry.owner(name), opts or "-", cls.summary or _first_line(cls.__doc__)])
    elif kind == "architectures":
        datasets = get_registry("datasets").items()
        header = ["name", "plugin", *[f"D {ds}" for ds, _ in datasets], "description"]
        for name, arch in registry.items():
            counts = [_count_params_meta(arch, tuple(spec.input_shape), spec.num_classes)
                      for _, spec in datasets]
            rows.append([name, registry.owner(name), *[f"{c:,}" if c else "-" for c in counts],
                         arch.description])
    elif kind == "datasets":
        header = ["name", "plugin", "input (C,H,W)", "classes", "needs files", "description"]
        for name, spec in registry.items():
            rows.append([name, registry.owner(name), "×".join(map(str, spec.input_shape)),
                         str(spec.num_classes), "yes" if spec.needs_files else "no", spec.description])
    elif kind == "backends":
        header = ["name", "plugin", "available", "devices", "dtypes", "description"]
        for name, backend in registry.items():
            rows.append([name, registry.owner(name), "yes" if backend.available() else "no",
                         ",".join(backend.devices),
                         ",".join(str(d).replace("torch.", "") for d in backend.dtypes), backend.description])
    else:
        header = ["name", "plugin", "description"]
        for name, suite in registry.items():
            rows.append([name, registry.owner(name), _first_line(suite.description)])
    return header, rows


def _option_specs(cls: Any) -> dict[str, dict[str, Any]]:
    """``{option: {"default": value, "type": name}}`` of a projection class (JSON-safe);
    the type is the annotation when there is one, else the default's type."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    specs: dict[str, dict[str, Any]] = {}
    for name in cls.option_names():
        param = params[name]
        default = None if param.default is inspect.Parameter.empty else param.default
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            type_name = type(default).__name__ if default is not None else "any"
        else:
            type_name = annotation if isinstance(annotation, str) else getattr(
                annotation, "__name__", str(annotation))
        specs[name] = {"default": default if isinstance(default, int | float | str | bool | type(None))
                       else repr(default),
                       "type": str(type_name).replace("typing.", ""),
                       "required": param.default is inspect.Parameter.empty}
    return specs


@cli.command("list")
@click.argument("kind", required=False, type=click.Choice([*KINDS, "all"]), default="all")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def list_command(kind: str, as_json: bool) -> None:
    """List what is registered: projections, architectures, datasets, backends, suites.

    Architectures show their parameter count D for every dataset they support.
    """
    kinds = list(KINDS) if kind == "all" else [kind]
    if as_json:
        data: dict[str, list[dict[str, Any]]] = {}
        for k in kinds:
            header, rows = _listing(k)
            data[k] = [dict(zip(header, row)) for row in rows]
            if k == "projections":  # options as data: name -> {default, type}
                registry = get_registry(k)
                for entry in data[k]:
                    entry.pop("options (defaults)", None)
                    entry["options"] = _option_specs(registry.get(entry["name"]))
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    for k in kinds:
        header, rows = _listing(k)
        table = Table(title=k, title_justify="left")
        for h in header:
            table.add_column(h, overflow="fold")
        for row in rows:
            table.add_row(*(escape(str(c)) for c in row))
        console.print(table)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List every plugin (built-in or third-party), its version and what it registers."""
    infos = plugin_infos()
    if as_json:
        click.echo(json.dumps([info.__dict__ for info in infos], indent=2))
        return
    table = Table(title="plugins", title_justify="left")
    for h in ("plugin", "version", "kind", "module", "registers"):
        table.add_column(h, overflow="fold")
    for info in infos:
        registers = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registers.items())
        if info.error:
            registers = f"[red]failed to load: {info.error}[/]"
        table.add_row(info.name, info.version, "built-in" if info.builtin else "third-party",
                      info.module, registers or "-")
    Console().print(table)


# ------------------------------------------------------------------------------------------
# run / report
# ------------------------------------------------------------------------------------------
@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`projbench.runner.RunInterrupted`
    once (a repeat is ignored while the run stops); the previous handlers come back after."""
    import signal
    import threading

    from projbench.runner import RunInterrupted

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


@cli.command("run")
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
    from projbench.executors import check_jobs, make_executor
    from projbench.report import make_progress, print_tables, stderr_console
    from projbench.results import ResultsFileError
    from projbench.runner import check_run_seed, check_threads, default_run_path, run_benchmark, unique
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
    from projbench.runner import timing_suites

    timed = timing_suites(suites)
    parallel = executor == "ray" or (jobs or 1) > 1
    if timed and parallel:
        where = f"{jobs} at a time" if jobs else "as many at a time as the Ray cluster has CPUs"
        console.print(f"{', '.join(timed)}: timed cases run one at a time first (two timings never "
                      f"share the machine), then the other cases {where}", highlight=False)


@cli.command("report")
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
    from projbench.commands.study import report_studies, split_study_paths
    from projbench.report import stderr_console

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

    from projbench.report import default_figure_dir, print_tables, run_state, write_figures
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

    from projbench.html_page import page
    from projbench.report import suite_table

    sections = []
    for suite in dict.fromkeys(str(r.get("suite")) for r in records):
        capture = RichConsole(record=True, width=160, file=io.StringIO())
        capture.print(suite_table(suite, [r for r in records if str(r.get("suite")) == suite]))
        sections.append((suite, capture.export_html(inline_styles=True, code_format="<pre>{code}</pre>")))
    provenance = {str(run.path): run.header for run in runs}
    return page("projbench results", sections, figures, provenance)


@cli.command("compare")
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
    from projbench.report import stderr_console
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="projbench")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
