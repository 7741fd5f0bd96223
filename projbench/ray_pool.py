"""The Ray task pool (``--executor ray``): the same task functions as the local pools of
:mod:`projbench.executors`, run as Ray tasks (``pip install 'projbench[ray]'``).

Each task gets ``num_cpus`` and ``num_gpus`` (0.25 lets four runs share a GPU) and Ray's
retries; ``address`` joins a running cluster, None starts a local one
(``ray.init(num_cpus=jobs)``) that ends with the driver. ``ray`` is imported when a pool is
made, never at import time; :func:`projbench.executors.make_pool` is the entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.executors import worker_process_settings


def _ray_task(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a task of a Ray worker process: that process's settings first, then ``fn``."""

    def task(*args: Any) -> Any:
        worker_process_settings()
        return fn(*args)

    task.__name__ = getattr(fn, "__name__", "task")
    task.__qualname__ = task.__name__
    return task


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
            )(_ray_task(fn))
            self._remotes[fn] = remote
        return remote.remote(*args).future()  # type: ignore[no-any-return]

    def terminate(self) -> None:
        """Stop at once: a local cluster this pool started ends with it."""
        self.close()

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


__all__ = ["RayPool"]
