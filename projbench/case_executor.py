"""The case executor of ``projbench run``: benchmark cases streamed through a task pool
(:mod:`projbench.executors`).

:func:`execute_case` runs one benchmark case (``projbench run``) and turns any exception into a
``failed`` record; :func:`projbench.training_runs.execute_run` does the same for a training run.

:class:`PoolExecutor` streams cases through a pool for ``projbench run``: at most ``width``
cases in flight, each record yielded the moment its case finishes (so the run file and the
progress bar follow the cases), and the cases of timing suites
(:func:`projbench.metrics.timing.is_timing_suite`) first and one at a time, so two timed cases
never share the machine. A worker that dies under a case (segfault, abort, out-of-memory kill)
costs only that case: it is recorded as ``failed`` with the signal, the pool restarts, and cases
that were in flight beside it run again one at a time so the culprit is known. Cases lost to a
killed fork server are nobody's fault: they run again as they were. On an interrupt
(``KeyboardInterrupt``, or any exception in the consumer) the workers are stopped at once.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.executors import EXECUTORS, InlinePool, ProcessPool, TaskPool, describe_exit, one_line
from projbench.ray_pool import RayPool
from projbench.suites import Case, RunSettings


def case_record(case: Case, settings: RunSettings) -> dict[str, Any]:
    """The fields of a ``case`` record that say which case it is (no outcome yet)."""
    return {
        "key": case.key,
        "suite": case.suite,
        "projection": case.projection,
        "architecture": case.architecture,
        "dataset": case.dataset,
        "params": case.params,
        "seed": settings.seed,
        "device": settings.device,
    }


def failed_record(case: Case, settings: RunSettings, error: str) -> dict[str, Any]:
    """A ``failed`` record for a case that produced no outcome of its own (its worker died)."""
    return {**case_record(case, settings), "status": "failed", "error": error, "stats": {}}


def execute_case(case: Case, settings: RunSettings, threads: int | None = None) -> dict[str, Any]:
    """Run one case and return its ``case`` record (never raises for a failing case).

    ``threads``: torch intra-op threads while the case runs (None: leave them as they are);
    the previous number is restored afterwards, so an in-process caller keeps its own. The
    record's ``threads`` is the number the case ran with, ``started_at`` its start (Unix time)
    and ``wall_s`` its duration.
    """
    import torch

    from projbench.manager import get_registry

    record = case_record(case, settings)
    previous = torch.get_num_threads()
    record["started_at"] = time.time()  # wall clock, comparable across worker processes
    start = time.perf_counter()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        record["threads"] = torch.get_num_threads()
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
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
    record["wall_s"] = time.perf_counter() - start
    return record


class Executor(Protocol):
    """Runs cases and yields their records as they finish."""

    def map(self, cases: list[Case], settings: RunSettings,
            threads: int | None = None) -> Iterator[dict[str, Any]]: ...


def _broken(future: Future[Any]) -> bool:
    return not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)


class PoolExecutor:
    """Streams :func:`execute_case` over cases on a :class:`TaskPool` (see the module docstring).

    ``width``: most cases in flight at once (default: the pool's workers); timing-suite cases
    always run one at a time, before the others.
    """

    def __init__(self, pool: TaskPool, *, width: int | None = None) -> None:
        self.pool = pool
        self.width = max(1, width or pool.workers)

    def describe(self) -> dict[str, Any]:
        """What runs the cases (recorded in the run header)."""
        return {"kind": self.pool.name, "workers": self.pool.workers, "width": self.width}

    def map(self, cases: list[Case], settings: RunSettings,
            threads: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield one record per case, each as soon as its case has finished."""
        from projbench.metrics.timing import is_timing_suite

        timed = [c for c in cases if is_timing_suite(c.suite)]
        others = [c for c in cases if not is_timing_suite(c.suite)]
        try:
            yield from self._stream(timed, settings, threads, width=1)
            yield from self._stream(others, settings, threads, width=self.width)
        except BaseException:  # interrupt, or the consumer stopped early: stop the workers now
            terminate = getattr(self.pool, "terminate", None)
            if terminate is not None:
                terminate()
            raise
        finally:
            self.pool.close()

    def _stream(self, cases: list[Case], settings: RunSettings, threads: int | None,
                width: int) -> Iterator[dict[str, Any]]:
        queue: deque[Case] = deque(cases)
        alone: deque[Case] = deque()  # in flight when a worker died: rerun one at a time
        in_flight: dict[Future[Any], Case] = {}
        alone_run = False  # whether the cases in flight are suspects, rerun one at a time
        while queue or alone or in_flight:
            limit = 1 if alone else width
            while len(in_flight) < limit and (alone or queue):
                alone_run = bool(alone)
                case = (alone or queue).popleft()
                in_flight[self.pool.submit(execute_case, case, settings, threads)] = case
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            if not any(_broken(f) for f in done):
                for future in done:
                    yield self._record(future, in_flight.pop(future), settings)
                continue
            wait(list(in_flight))  # a broken pool fails every future it holds
            lost = [c for f, c in in_flight.items() if _broken(f)]
            finished = [(f, c) for f, c in in_flight.items() if not _broken(f)]
            in_flight.clear()
            for future, case in finished:
                yield self._record(future, case, settings)
            if getattr(self.pool, "server_died", lambda: False)():
                # the fork server was killed and every worker with it: no case is to blame
                (alone if alone_run else queue).extendleft(reversed(lost))
            elif len(lost) == 1:
                yield failed_record(lost[0], settings, self._death_note())
            else:
                alone.extend(lost)
            self._restart()

    def _record(self, future: Future[Any], case: Case, settings: RunSettings) -> dict[str, Any]:
        """The future's record, or a ``failed`` one when the task itself errored (e.g. Ray)."""
        try:
            return future.result()  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001 - a Ray worker crash, a result that cannot travel
            return failed_record(case, settings, f"{type(exc).__name__}: {one_line(exc)}")

    def _death_note(self) -> str:
        codes: list[int] = getattr(self.pool, "exit_codes", lambda: [])()
        crashes = [c for c in codes if c != -signal.SIGTERM] or codes
        how = ", ".join(dict.fromkeys(describe_exit(c) for c in crashes)) or "died"
        return (f"WorkerCrashed: the process running this case {how} (a crash in native code, "
                "an abort or an out-of-memory kill); the other cases went on")

    def _restart(self) -> None:
        restart = getattr(self.pool, "restart", None)
        if restart is not None:
            restart()


class LocalExecutor(PoolExecutor):
    """In this process (``jobs=1``), or in spawned worker processes: ``jobs`` of them, or one
    with ``isolate=True`` (a case that crashes its process is recorded, not fatal)."""

    def __init__(self, jobs: int = 1, *, isolate: bool = False) -> None:
        if jobs < 1:
            raise InvalidArgumentError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.isolate = isolate or jobs > 1
        pool: TaskPool = (ProcessPool(jobs, ignore_interrupts=True) if self.isolate else InlinePool())
        super().__init__(pool)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "isolate": self.isolate}


class RayExecutor(PoolExecutor):
    """The same cases on a Ray cluster (``address`` None starts a local one with ``jobs`` CPUs);
    at most ``jobs`` cases in flight (default: the cluster's CPUs)."""

    def __init__(self, address: str | None = None, num_gpus: float = 0.0, max_retries: int = 2,
                 *, jobs: int | None = None) -> None:
        super().__init__(RayPool(address, jobs=jobs, gpus_per_task=num_gpus, max_retries=max_retries),
                         width=jobs)


def check_jobs(jobs: object) -> int | None:
    """``jobs`` as an int >= 1 (None: the executor's default), else one-line error."""
    if jobs is None:
        return None
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidArgumentError(f"--jobs must be an integer >= 1, got {jobs!r}")
    return jobs


def make_executor(
    kind: str = "local", *, jobs: int | None = None, address: str | None = None,
    gpus_per_task: float = 0.0, isolate: bool = False,
) -> PoolExecutor:
    """``local``: ``jobs`` processes (None or 1: this process, or one child with ``isolate``);
    ``ray``: a Ray cluster (``address``; a local one gets ``jobs`` CPUs) with at most ``jobs``
    cases in flight (None: as many as the cluster has CPUs)."""
    jobs = check_jobs(jobs)
    if kind == "local":
        return LocalExecutor(jobs or 1, isolate=isolate)
    if kind == "ray":
        return RayExecutor(address, num_gpus=gpus_per_task, jobs=jobs)
    raise InvalidArgumentError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")


__all__ = [
    "Executor",
    "LocalExecutor",
    "PoolExecutor",
    "RayExecutor",
    "case_record",
    "check_jobs",
    "execute_case",
    "failed_record",
    "make_executor",
]
