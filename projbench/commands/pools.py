"""The task pool a command's executor options ask for, and how a command stops it.

:func:`running_pool` opens the pool of ``--executor``/``--jobs``/``--address``… for a block and
closes it afterwards; a stop signal during the block (:mod:`projbench.commands.stop_signals`)
stops the workers at once (:func:`stop_pool`) before the command ends. A local process pool is
a :class:`ShieldedPool`: its workers start with :data:`SHIELDED_SIGNALS` blocked, and a stop
signal that arrives while one is being started waits until the pool knows it. A Ray cluster
given by ``--address`` must answer within ``--ray-timeout`` seconds, else one line.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from projbench.commands.options import ray_timeout
from projbench.commands.stop_signals import SHIELDED_SIGNALS, STOP_REQUESTS, blocked_signals
from projbench.errors import InvalidArgumentError


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
        with STOP_REQUESTS.held(), blocked_signals(SHIELDED_SIGNALS):  # workers start as tasks are submitted
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
    ``connect_timeout`` seconds (default: :func:`~projbench.commands.options.ray_timeout`), else
    one line. A local process pool is a :class:`ShieldedPool` (created with
    :data:`SHIELDED_SIGNALS` blocked, so that a process it starts in the background, such as a
    fork server, keeps them blocked too)."""
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
    with blocked_signals(SHIELDED_SIGNALS):
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
def running_pool(
    executor: str,
    jobs: int,
    address: str | None,
    cpus_per_task: float,
    gpus_per_task: float,
    *,
    connect_timeout: float | None = None,
) -> Iterator[Any]:
    """The pool of :func:`make_pool_from` for the block, closed afterwards; a signal that ends
    the block (:func:`~projbench.commands.stop_signals.stops_on_signals`) stops its workers
    first, and what they had finished stays recorded."""
    pool = make_pool_from(
        executor, jobs, address, cpus_per_task, gpus_per_task, connect_timeout=connect_timeout
    )
    try:
        yield pool
    except KeyboardInterrupt:  # a signal (stops_on_signals): stop the workers, keep the folder
        stop_pool(pool)
        raise
    finally:
        pool.close()
