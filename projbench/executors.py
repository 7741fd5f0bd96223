"""Executors: where independent tasks run. One layer for ``run`` (benchmark cases) and
``study`` / ``intrinsic-dim`` (training runs).

A :class:`TaskPool` takes ``submit(fn, *args) -> concurrent.futures.Future``; the caller waits
on the futures (``concurrent.futures.wait``) and decides what to submit next, so a scheduler
(the study engine) can keep every worker busy as results arrive. Three pools:

* :class:`InlinePool` (``--jobs 1``, the default) runs each task in the calling process at
  submission: no start-up cost, the easiest to debug.
* :class:`ProcessPool` (``--jobs N``) — N spawned worker processes (each imports torch and the
  plugins once, about 2 s). Workers die with the driver: each asks the kernel for SIGKILL when
  its parent exits (``prctl(PR_SET_PDEATHSIG)`` on Linux) and also watches its parent pid, so a
  ``kill -9`` of the driver leaves no orphans. A worker killed under a task breaks the pool:
  the futures of that moment raise ``BrokenProcessPool`` and :meth:`ProcessPool.restart` starts
  a fresh pool — the study engine then resubmits the lost tasks.
* :class:`RayPool` (``--executor ray``) — the same functions as Ray tasks
  (``pip install 'projbench[ray]'``), with per-task ``num_cpus`` and ``num_gpus`` (0.25 lets four
  runs share a GPU) and Ray's retries; ``address`` joins a running cluster, None starts a local
  one (``ray.init(num_cpus=jobs)``) that ends with the driver.

:func:`execute_case` runs one benchmark case (``projbench run``) and turns any exception into a
``failed`` record; :func:`projbench.runs.execute_run` does the same for a training run.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol

from projbench.allocator import tune_cpu_allocator
from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.suites import Case, RunSettings

EXECUTORS = ("local", "ray")


def execute_case(case: Case, settings: RunSettings) -> dict[str, Any]:
    """Run one case and return its ``case`` record (never raises for a failing case)."""
    from projbench.manager import get_registry

    record: dict[str, Any] = {
        "key": case.key,
        "suite": case.suite,
        "projection": case.projection,
        "architecture": case.architecture,
        "dataset": case.dataset,
        "params": case.params,
        "seed": settings.seed,
        "device": settings.device,
    }
    start = time.perf_counter()
    try:
        tune_cpu_allocator()  # this worker process's malloc policy (recorded in the run header)
        suite = get_registry("suites").get(case.suite)
        outcome = suite.run_case(case, settings)
        record.update(
            status=outcome.status,
            error=outcome.error,
            stats=outcome.stats,
            samples=outcome.samples,
            memory=outcome.memory,
        )
    except ProjbenchError as exc:  # a clear, expected refusal (e.g. dense over budget)
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", stats={})
    except Exception as exc:  # noqa: BLE001 - a bug in a suite or plugin must not lose the run
        record.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            stats={},
            traceback=traceback.format_exc(limit=8),
        )
    record["wall_s"] = time.perf_counter() - start
    return record


# ------------------------------------------------------------------------------------------
# task pools
# ------------------------------------------------------------------------------------------
class TaskPool(Protocol):
    """Runs ``fn(*args)`` somewhere and hands back a future of its return value."""

    workers: int
    name: str

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]: ...

    def close(self) -> None: ...


class InlinePool:
    """Runs each task at submission, in this process."""

    name = "inline"

    def __init__(self) -> None:
        self.workers = 1

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            future.set_exception(exc)
        return future

    def close(self) -> None:
        return None


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the driver does (PDEATHSIG where available, and a watcher)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the watcher below still works
        pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="projbench-parent-watch", daemon=True).start()


class ProcessPool:
    """``jobs`` spawned worker processes that die with the driver."""

    name = "processes"

    def __init__(self, jobs: int) -> None:
        if jobs < 1:
            raise InvalidArgumentError(f"jobs must be >= 1, got {jobs}")
        self.workers = jobs
        self._pool = self._start()
        self.restarts = 0

    def _start(self) -> ProcessPoolExecutor:
        # "spawn", not fork: a forked child of a process whose OpenMP pool is already running
        # (any earlier torch op) can deadlock in its first parallel region.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(fn, *args)

    def restart(self) -> None:
        """Replace a broken pool (a worker was killed) with a fresh one."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()
        self.restarts += 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayPool:
    """Ray tasks with per-task resources; see the module docstring."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        jobs: int | None = None,
        cpus_per_task: float = 1.0,
        gpus_per_task: float = 0.0,
        max_retries: int = 2,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidArgumentError(
                "the ray executor needs Ray: pip install 'projbench[ray]' (or use --executor local)"
            ) from None
        if cpus_per_task < 0 or gpus_per_task < 0:
            raise InvalidArgumentError("--cpus-per-task and --gpus-per-task must be >= 0")
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "ignore_reinit_error": True,
                "include_dashboard": False,
                "log_to_driver": False,
            }
            if address is None and jobs is not None:
                kwargs["num_cpus"] = jobs
            ray.init(address=address, **kwargs)
            self._owns = True
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.max_retries = max_retries
        total = ray.cluster_resources()
        by_cpu = int(total.get("CPU", 1) // cpus_per_task) if cpus_per_task else 10**6
        by_gpu = int(total.get("GPU", 0) // gpus_per_task) if gpus_per_task else 10**6
        if by_gpu == 0:
            raise InvalidArgumentError(
                f"--gpus-per-task {gpus_per_task} but the Ray cluster has {total.get('GPU', 0)} GPUs"
            )
        self.workers = max(1, min(by_cpu, by_gpu))
        self._remotes: dict[Callable[..., Any], Any] = {}

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._ray.remote(
                num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=self.max_retries
            )(fn)
            self._remotes[fn] = remote
        return remote.remote(*args).future()  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


def make_pool(
    kind: str = "local",
    *,
    jobs: int = 1,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
) -> TaskPool:
    """``local`` — inline for ``jobs == 1``, else a process pool; ``ray`` — a Ray cluster."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidArgumentError(f"--jobs must be an integer >= 1, got {jobs!r}")
    if kind == "local":
        if gpus_per_task not in (0, 0.0):
            raise InvalidArgumentError(
                "--gpus-per-task needs --executor ray (local workers share the device)"
            )
        return InlinePool() if jobs == 1 else ProcessPool(jobs)
    if kind == "ray":
        return RayPool(
            address, jobs=jobs if jobs > 1 else None, cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task
        )
    raise InvalidArgumentError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")


# ------------------------------------------------------------------------------------------
# the benchmark-case executor of `projbench run`, on top of the pools
# ------------------------------------------------------------------------------------------
class Executor(Protocol):
    """Runs jobs and yields their records as they finish."""

    def map(self, cases: list[Case], settings: RunSettings) -> Iterator[dict[str, Any]]: ...


class PoolExecutor:
    """Maps :func:`execute_case` over cases on a :class:`TaskPool`, yielding in completion order."""

    def __init__(self, pool: TaskPool) -> None:
        self.pool = pool

    def map(self, cases: list[Case], settings: RunSettings) -> Iterator[dict[str, Any]]:
        try:
            pending = {self.pool.submit(execute_case, case, settings) for case in cases}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            self.pool.close()


class LocalExecutor(PoolExecutor):
    """In-process (``jobs=1``) or a pool of ``jobs`` spawned processes."""

    def __init__(self, jobs: int = 1) -> None:
        if jobs < 1:
            raise InvalidArgumentError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        super().__init__(InlinePool() if jobs == 1 else _LazyProcessPool(jobs))


class _LazyProcessPool:
    """A ProcessPool started on first submit (so a run with nothing to do starts no workers)."""

    name = "processes"

    def __init__(self, jobs: int) -> None:
        self.workers = jobs
        self._pool: ProcessPool | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        if self._pool is None:
            self._pool = ProcessPool(self.workers)
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


class RayExecutor(PoolExecutor):
    """The same jobs on a Ray cluster (``address`` None starts a local one)."""

    def __init__(self, address: str | None = None, num_gpus: float = 0.0, max_retries: int = 2) -> None:
        super().__init__(RayPool(address, gpus_per_task=num_gpus, max_retries=max_retries))


def make_executor(
    kind: str = "local", *, jobs: int = 1, address: str | None = None, gpus_per_task: float = 0.0
) -> Executor:
    """``local`` (with ``jobs`` processes) or ``ray`` (with ``address`` and ``gpus_per_task``)."""
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "ray":
        return RayExecutor(address, num_gpus=gpus_per_task)
    raise InvalidArgumentError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "Executor",
    "InlinePool",
    "LocalExecutor",
    "PoolExecutor",
    "ProcessPool",
    "RayExecutor",
    "RayPool",
    "TaskPool",
    "execute_case",
    "make_executor",
    "make_pool",
]
