"""Executors run independent cases; the local one in-process or in a process pool, the
distributed one on a Ray cluster, all behind :class:`Executor`.

A job is ``(suite name, Case, RunSettings)``; it is executed by :func:`execute_case`, which
looks the suite up in the registry of the process it runs in (so plugins must be installed on
every worker) and turns any exception into a ``failed`` record. Results come back in completion
order and the caller writes them to the results store as they arrive.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Protocol

from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.suites import Case, RunSettings


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
        suite = get_registry("suites").get(case.suite)
        outcome = suite.run_case(case, settings)
        record.update(
            status=outcome.status, error=outcome.error, stats=outcome.stats,
            samples=outcome.samples, memory=outcome.memory,
        )
    except ProjbenchError as exc:  # a clear, expected refusal (e.g. dense over budget)
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", stats={})
    except Exception as exc:  # noqa: BLE001 - a bug in a suite or plugin must not lose the run
        record.update(
            status="failed", error=f"{type(exc).__name__}: {exc}", stats={},
            traceback=traceback.format_exc(limit=8),
        )
    record["wall_s"] = time.perf_counter() - start
    return record


class Executor(Protocol):
    """Runs jobs and yields their records as they finish."""

    def map(self, cases: list[Case], settings: RunSettings) -> Iterator[dict[str, Any]]: ...


class LocalExecutor:
    """In-process (``jobs=1``, the default: no start-up cost) or a pool of ``jobs`` spawned
    processes (each imports torch and the plugins once, ~2 s)."""

    def __init__(self, jobs: int = 1) -> None:
        if jobs < 1:
            raise InvalidArgumentError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs

    def map(self, cases: list[Case], settings: RunSettings) -> Iterator[dict[str, Any]]:
        if self.jobs == 1:
            for case in cases:
                yield execute_case(case, settings)
            return
        # "spawn", not fork: a forked child of a process whose OpenMP pool is already running
        # (any earlier torch op) can deadlock in its first parallel region.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=context) as pool:
            futures = [pool.submit(execute_case, case, settings) for case in cases]
            for future in as_completed(futures):
                yield future.result()


class RayExecutor:
    """Submits the same jobs to a Ray cluster (``pip install projbench[ray]``).

    ``address`` is passed to ``ray.init`` (None starts a local Ray); ``num_gpus`` per job makes
    scheduling GPU-aware; failed tasks are retried ``max_retries`` times by Ray.
    """

    def __init__(self, address: str | None = None, num_gpus: float = 0.0, max_retries: int = 2) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidArgumentError(
                "the ray executor needs Ray: pip install 'projbench[ray]' (or use --executor local)"
            ) from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True)
        self._remote = ray.remote(num_gpus=num_gpus, max_retries=max_retries)(execute_case)

    def map(self, cases: list[Case], settings: RunSettings) -> Iterator[dict[str, Any]]:
        pending = [self._remote.remote(case, settings) for case in cases]
        while pending:
            done, pending = self._ray.wait(pending, num_returns=1)
            yield self._ray.get(done[0])


def make_executor(kind: str = "local", *, jobs: int = 1, address: str | None = None) -> Executor:
    """``local`` (with ``jobs`` processes) or ``ray`` (with ``address``)."""
    if kind == "local":
        return LocalExecutor(jobs)
    if kind == "ray":
        return RayExecutor(address)
    raise InvalidArgumentError(f"unknown executor {kind!r}; choose 'local' or 'ray'")
