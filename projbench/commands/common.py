"""Options and output shared by ``study`` and ``intrinsic-dim``: executors, progress, the table,
and how a command stops on a signal.

Signals: :func:`stops_on_signals` makes SIGINT (Ctrl-C), SIGTERM and SIGHUP end a command with
one line and the exit status 128 + the signal; the command stops its workers first
(:func:`stop_pool`). Process-pool workers start with SIGINT and SIGHUP blocked
(:class:`ShieldedPool`): a terminal sends them to the whole process group, and the driver, not
each worker, decides how to stop. Handlers are installed by command entry points only.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from projbench.errors import InvalidArgumentError, ProjbenchError


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
            help="local: the machine the command runs on (inline or a process pool); ray: a Ray cluster.",
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


#: how long to wait for a Ray cluster given by --address to answer, unless told otherwise
DEFAULT_RAY_TIMEOUT_S = 30.0
RAY_TIMEOUT_ENV = "PROJBENCH_RAY_TIMEOUT"
#: the signals that stop a command cleanly (those a platform lacks are left out)
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
#: the signals a terminal sends to a whole process group, which workers leave to the driver
SHIELDED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGHUP") if hasattr(signal, n))
INTERRUPTED_MESSAGE = "interrupted; rerun the same command to resume"


def ray_timeout_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--ray-timeout SECONDS`` (env ``PROJBENCH_RAY_TIMEOUT``)."""
    return click.option(
        "--ray-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"How long to wait for the Ray cluster at --address to answer "
        f"[env {RAY_TIMEOUT_ENV}; default {DEFAULT_RAY_TIMEOUT_S:g}].",
    )(func)


def ray_timeout(value: float | None = None) -> float:
    """``value``, else ``$PROJBENCH_RAY_TIMEOUT``, else :data:`DEFAULT_RAY_TIMEOUT_S`: a positive
    number of seconds."""
    where, raw = "--ray-timeout", str(value)
    if value is None:
        where, raw = RAY_TIMEOUT_ENV, os.environ.get(RAY_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_RAY_TIMEOUT_S
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"{where} must be a positive number of seconds, got {raw!r}")
    return value


def _ray_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT``; None for ``auto``."""
    if address == "auto":
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgumentError(f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    return host.strip("[]"), int(port)


def wait_for_ray(address: str, timeout: float) -> None:
    """Return once the Ray cluster at ``address`` accepts a connection; one line when it has not
    within ``timeout`` seconds (connection attempts repeat, so a cluster that is starting counts)."""
    endpoint = _ray_endpoint(address)
    if endpoint is None:
        return
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection(endpoint, timeout=max(0.1, min(left, 5.0))):
                return
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        if deadline - time.monotonic() <= 0:
            raise InvalidArgumentError(
                f"no Ray cluster answers at {address} within {timeout:g} s ({reason}); start it "
                "(`ray start --head`), fix --address, or wait longer with --ray-timeout"
            )
        time.sleep(min(0.25, max(deadline - time.monotonic(), 0)))


@contextlib.contextmanager
def _deadline(seconds: float, message: str) -> Iterator[None]:
    """End the process with ``message`` (one line) if the block has not finished in ``seconds``:
    for a third-party call that neither returns nor takes a signal (Ray's connection loop)."""

    def give_up() -> None:
        click.echo(f"Error: {message}", err=True)
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextlib.contextmanager
def _blocked(signals: tuple[int, ...]) -> Iterator[None]:
    """Block ``signals`` in this thread for the block (a signal that arrives meanwhile is
    delivered afterwards); processes started inside keep them blocked."""
    if not signals or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    # multiprocessing's resource tracker unblocks SIGINT and SIGTERM in the thread that starts it
    # (the first queue or lock of a process pool does): start it before blocking, not inside
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Interrupted(KeyboardInterrupt):
    """A stop asked for by signal ``signum``; a ``KeyboardInterrupt``, so nothing that catches
    ``Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _StopRequests:
    """Where the stop signals go while a command runs (:func:`stops_on_signals`): the first
    raises :class:`Interrupted` in the main thread, later ones are ignored while the command
    cleans up; one that arrives while a worker is being started is raised once it has started
    (:meth:`held`), so that no worker escapes the stop."""

    def __init__(self) -> None:
        self.fired: int | None = None
        self.pending: int | None = None
        self.holding = 0

    def reset(self) -> None:
        """Forget earlier stops (a new command starts)."""
        self.__init__()  # type: ignore[misc]

    def handle(self, signum: int, frame: object) -> None:
        """The signal handler."""
        if self.fired is not None:
            return
        if self.holding:
            self.pending = signum
            return
        self.fired = signum
        raise Interrupted(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold a stop signal back until the block is done."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
            if not self.holding and self.pending is not None and self.fired is None:
                self.fired, self.pending = self.pending, None
                raise Interrupted(self.fired)


_STOPS = _StopRequests()


class ShieldedPool:
    """A process pool whose workers start with :data:`SHIELDED_SIGNALS` blocked — a terminal's
    Ctrl-C or hang-up reaches every process of the group, and the driver stops the workers
    itself (:func:`stop_pool`) — and where a stop signal waits until a worker being started is
    known to the pool. Everything else is the wrapped pool's."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        with _STOPS.held(), _blocked(SHIELDED_SIGNALS):  # workers start as tasks are submitted
            return self._pool.submit(fn, *args)


def make_pool_from(
    executor: str,
    jobs: int,
    address: str | None,
    cpus_per_task: float,
    gpus_per_task: float,
    *,
    connect_timeout: float | None = None,
) -> Any:
    """The pool the executor options ask for. A Ray ``address`` must answer within
    ``connect_timeout`` seconds (default: :func:`ray_timeout`), else one line. A local process
    pool is a :class:`ShieldedPool` (created with :data:`SHIELDED_SIGNALS` blocked, so that a
    process it starts in the background, such as a fork server, keeps them blocked too)."""
    from projbench.executors import make_pool

    def start() -> Any:
        return make_pool(
            executor, jobs=jobs, address=address, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task
        )

    if executor == "ray" and address:
        timeout = ray_timeout(connect_timeout)
        wait_for_ray(address, timeout)
        late = (
            f"the Ray cluster at {address} did not finish connecting within {timeout:g} s; check it "
            "with `ray status`, or wait longer with --ray-timeout"
        )
        with _deadline(timeout, late):
            return start()
    if executor != "local":
        return start()
    with _blocked(SHIELDED_SIGNALS):
        pool = start()
    return ShieldedPool(pool) if getattr(pool, "name", "") == "processes" else pool


def stop_pool(pool: Any, wait_s: float = 10.0) -> None:
    """Stop a pool's workers now (what runs is lost; finished runs are already recorded), and
    wait up to ``wait_s`` seconds for the threads that watched them to finish, so that the
    interpreter's exit does not race with their cleanup."""
    if pool is None:
        return
    terminate = getattr(pool, "terminate", None)
    (terminate or pool.close)()
    deadline = time.monotonic() + wait_s
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """While the block runs, :data:`STOP_SIGNALS` go to :data:`_STOPS`; previous handlers come
    back afterwards."""
    _STOPS.reset()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, _STOPS.handle)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stops_on_signals(func: Callable[..., Any]) -> Callable[..., Any]:
    """A command that SIGINT, SIGTERM or SIGHUP ends with :data:`INTERRUPTED_MESSAGE` (one line,
    no "Aborted!") and exit status 128 + the signal. The command stops its own workers (its
    ``KeyboardInterrupt`` handling); a study folder keeps every finished run."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _signals_interrupt():
                return func(*args, **kwargs)
        except KeyboardInterrupt as exc:
            click.echo(INTERRUPTED_MESSAGE, err=True)
            raise SystemExit(128 + int(getattr(exc, "signum", signal.SIGINT))) from None

    return wrapper


class RunProgress:
    """A rich progress line per finished run, with the count of runs and an ETA from the
    study's estimated run count. On a terminal the line is live (and erased when an error or
    an interrupt ends the block, whose own line says what happened); in a log it is written
    once, when the block completes."""

    def __init__(self, console: Any, estimate: str) -> None:
        from projbench.report.run_files import make_progress

        self.console = console
        self.progress = make_progress(console)
        self.progress.disable = not console.is_terminal
        high = int(estimate.split("-")[-1])
        self.high = high
        self.task = self.progress.add_task("runs", total=high, current=f"~{estimate} runs planned")
        self.start = time.perf_counter()
        self.done = 0

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.progress.live.transient = True
        self.progress.__exit__(*exc)  # type: ignore[arg-type]
        if exc[0] is None and self.progress.disable:
            self.console.print(self.progress.make_tasks_table(self.progress.tasks))

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
    from projbench.report.study import FORMATS

    if fmt not in FORMATS:
        raise InvalidArgumentError(f"--format must be one of {', '.join(FORMATS)}")
