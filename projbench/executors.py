"""Executors: where independent tasks run. One layer for ``run`` (benchmark cases) and
``study`` / ``intrinsic-dim`` (training runs).

A :class:`TaskPool` takes ``submit(fn, *args) -> concurrent.futures.Future``; the caller waits
on the futures (``concurrent.futures.wait``) and decides what to submit next, so a scheduler
(the study engine) can keep every worker busy as results arrive. Three pools:

* :class:`InlinePool` (``--jobs 1``, the default) runs each task in the calling process at
  submission: no start-up cost, the easiest to debug. Whoever submits decides the pace: the
  case executor below submits one case at a time, so each result is kept before the next runs.
* :class:`ProcessPool` (``--jobs N``) — N worker processes forked from a fork server that has
  imported torch and the plugins once (:func:`worker_context`). Workers die with the driver:
  each asks the kernel for SIGKILL when its parent exits (``prctl(PR_SET_PDEATHSIG)`` on Linux)
  and watches its parent pid, so a ``kill -9`` of the driver leaves no orphans. A worker killed
  under a task breaks the pool (those futures raise ``BrokenProcessPool``);
  :meth:`ProcessPool.restart` starts a fresh one and the study engine resubmits the lost tasks.
  A killed fork server takes every worker with it; a new one starts with the next worker (a
  :class:`WorkersRestartedWarning`) up to :data:`MAX_SERVER_RESTARTS` times, then
  :class:`WorkersLostError` ends the command in one line (what finished is recorded).
  :meth:`ProcessPool.terminate` stops the workers: SIGTERM, SIGKILL after :data:`TERMINATE_GRACE_S`.
* :class:`~projbench.ray_pool.RayPool` (``--executor ray``) — the same functions as Ray tasks,
  with per-task CPUs and GPUs: :mod:`projbench.ray_pool` (``ray`` is imported only when
  :func:`make_pool` makes one).

:func:`projbench.training_runs.execute_run` runs one training run in a worker; the cases of
``projbench run`` go through :mod:`projbench.case_executor`, on top of the same pools.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from projbench.allocator import tune_cpu_allocator
from projbench.errors import InvalidArgumentError, ProjbenchError

EXECUTORS = ("local", "ray")


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

    def terminate(self) -> None:
        """Nothing runs in the background: nothing to stop."""
        return None

    def close(self) -> None:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def worker_process_settings() -> None:
    """Process-wide settings of a projbench worker process — the entry point of a process the
    executors start: the CPU malloc policy of :mod:`projbench.allocator` (applied once)."""
    tune_cpu_allocator()


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: apply the worker's process settings, and exit when the driver
    ``parent_pid`` does. A worker forked by the pool's fork server has that server as its
    parent: PDEATHSIG kills it when its parent dies (the server exits when the driver does),
    and a watcher thread checks the driver itself once a second."""
    worker_process_settings()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the watcher below still works
        pass
    if not _alive(parent_pid):  # the driver died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if not _alive(parent_pid) or os.getppid() == 1:
                os._exit(1)

    threading.Thread(target=watch, name="projbench-parent-watch", daemon=True).start()


def _case_worker(parent_pid: int) -> None:
    """Initializer of ``projbench run``'s workers: die with the driver, and leave Ctrl-C to it.

    A terminal's Ctrl-C reaches the whole process group; the driver stops its workers itself
    (:meth:`ProcessPool.terminate`), so a worker ignores SIGINT instead of printing a traceback.
    """
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def describe_exit(code: int | None) -> str:
    """``was killed by SIGSEGV`` / ``exited with status 3`` from a process exit code."""
    if code is None:
        return "died"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


#: seconds a worker stopped by :meth:`ProcessPool.terminate` has between SIGTERM and SIGKILL
TERMINATE_GRACE_S = 1.0


def stop_processes(processes: list[Any], grace_s: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM to each of ``processes`` (``multiprocessing`` processes) still alive, SIGKILL to
    those alive ``grace_s`` seconds later; returns once every one has ended (each is waited
    for up to 5 s after SIGKILL, which only a process stuck in the kernel outlasts)."""
    for process in processes:
        if process.exitcode is None:
            with contextlib.suppress(OSError, ValueError):
                process.terminate()
    deadline = time.monotonic() + max(grace_s, 0.0)
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.exitcode is None:
            with contextlib.suppress(OSError, ValueError):
                process.kill()
    for process in processes:
        process.join(timeout=5)


#: modules a worker needs for every task, imported once by the fork server so that each worker
#: starts with them loaded (importing torch and the built-ins costs seconds per process)
WORKER_PRELOAD = ("projbench.worker_preload",)


def worker_context() -> multiprocessing.context.BaseContext:
    """How worker processes start: forked from a fork server that has imported
    :data:`WORKER_PRELOAD` (never the driver itself: a fork of a process whose OpenMP pool is
    already running can deadlock in its first parallel region, and the server runs no torch op).
    Falls back to ``spawn`` where there is no fork server (Windows, macOS default) or when
    ``PROJBENCH_WORKER_START=spawn``."""
    method = os.environ.get("PROJBENCH_WORKER_START", "forkserver")
    if method not in ("forkserver", "spawn"):
        raise InvalidArgumentError(f"PROJBENCH_WORKER_START must be forkserver or spawn, got {method!r}")
    if method == "forkserver" and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(WORKER_PRELOAD))
        return context
    return multiprocessing.get_context("spawn")


def _warm_up_fork_server() -> None:
    """Start the fork server (and its preload) in the background now, so that its imports
    overlap with the driver's own preparation instead of delaying the first task."""
    if os.environ.get("PROJBENCH_WORKER_START", "forkserver") != "forkserver":
        return
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver

    threading.Thread(target=forkserver.ensure_running, name="projbench-forkserver", daemon=True).start()


#: how many times a pool starts a new fork server after its fork server was killed
MAX_SERVER_RESTARTS = 3


class WorkersRestartedWarning(UserWarning):
    """The worker processes' fork server was killed; a new one starts and the lost work reruns."""


class WorkersLostError(ProjbenchError):
    """The worker processes' fork server was killed more than :data:`MAX_SERVER_RESTARTS` times."""


def _fork_server_pid() -> int | None:
    """The pid of this process's multiprocessing fork server (None: none started)."""
    from multiprocessing import forkserver

    pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    return pid if isinstance(pid, int) else None


class ChildFailure(ProjbenchError):
    """A call made by :func:`call_in_child` did not return a value: ``error`` (one line) when it
    raised, ``timed_out`` when it was still running at the deadline, ``exit_code`` when its
    process died first."""

    def __init__(self, message: str, *, error: str | None = None, timed_out: bool = False,
                 exit_code: int | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.timed_out = timed_out
        self.exit_code = exit_code


def _child_main(conn: Any, parent_pid: int, env: dict[str, str], fn: Callable[..., Any],
                args: tuple[Any, ...]) -> None:
    """Entry point of :func:`call_in_child`'s process: die with the driver, leave the terminal's
    signals to it, take its ``PROJBENCH_*`` settings, and send back ``("value", fn(*args))`` or
    ``("raised", "Type: message")``."""
    _die_with_parent(parent_pid)
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    for key in [k for k in os.environ if k.startswith("PROJBENCH_")]:
        del os.environ[key]
    os.environ.update(env)
    try:
        message: tuple[str, Any] = ("value", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - sys.exit() or KeyboardInterrupt in plugin code too
        message = ("raised", _describe(exc))
    try:
        conn.send(message)
    except Exception as exc:  # noqa: BLE001 - a value that cannot be pickled
        conn.send(("raised", f"its result cannot be sent back ({_describe(exc)})"))
    conn.close()


def one_line(exc: BaseException) -> str:
    """``str(exc)`` with its whitespace (newlines included) collapsed to single spaces."""
    return " ".join(str(exc).split())


def _describe(exc: BaseException) -> str:
    text = one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_in_child(fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
    """``fn(*args)`` in a child process started like a worker (:func:`worker_context`: forked
    from the fork server, so it starts with torch and the plugins imported), its value returned.

    For code that may hang or crash its process (a third-party plugin): raises
    :class:`ChildFailure` when ``fn`` raises (any exception, ``SystemExit`` included), when it
    has not returned within ``timeout`` seconds (the child is killed), or when the child dies
    first (a segfault, an abort). ``fn``, ``args`` and the value must pickle. The child takes
    the caller's ``PROJBENCH_*`` environment variables, ignores SIGINT and SIGHUP (a terminal
    sends them to the whole process group: the caller decides) and dies with the caller; when
    this returns or raises, an interrupt included, the child is gone."""
    context = worker_context()
    receive, send = context.Pipe(duplex=False)
    env = {k: v for k, v in os.environ.items() if k.startswith("PROJBENCH_")}
    process = context.Process(  # type: ignore[attr-defined]
        target=_child_main, args=(send, os.getpid(), env, fn, args), name="projbench-child", daemon=True)
    try:
        process.start()
        send.close()
        if not receive.poll(timeout):  # True on a message, and on EOF (the child died)
            raise ChildFailure(f"no answer within {timeout:g} s", timed_out=True)
        try:
            kind, value = receive.recv()
        except (EOFError, OSError):
            process.join(timeout=5)
            how = describe_exit(process.exitcode)
            raise ChildFailure(f"its process {how}", exit_code=process.exitcode) from None
        process.join(timeout=5)  # it exits once it has answered
        if kind == "raised":
            raise ChildFailure(str(value), error=str(value))
        return value
    finally:
        send.close()
        receive.close()
        if process.pid is not None:
            stop_processes([process], grace_s=0.0)
            with contextlib.suppress(ValueError):  # still running: only a process stuck in the kernel
                process.close()


class ProcessPool:
    """``jobs`` worker processes that die with the driver (started as tasks arrive), forked from
    a fork server with torch and projbench preloaded (:func:`worker_context`).

    ``ignore_interrupts``: workers ignore SIGINT (the case executor stops them itself).
    """

    name = "processes"

    def __init__(self, jobs: int, *, ignore_interrupts: bool = False) -> None:
        if jobs < 1:
            raise InvalidArgumentError(f"jobs must be >= 1, got {jobs}")
        self.workers = jobs
        self._initializer = _case_worker if ignore_interrupts else _die_with_parent
        self._context = worker_context()
        self._pool = self._start()
        _warm_up_fork_server()
        self.restarts = 0
        self.server_restarts = 0

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=self._context,
            initializer=self._initializer,
            initargs=(os.getpid(),),
        )

    def exit_codes(self) -> list[int]:
        """Exit codes of the workers of the current pool, once a break has ended them (a worker
        whose end was just seen may not be reaped yet: each gets up to 2 s).

        The pool's own management thread reaps the workers of a broken pool; reading an exit
        code while it does so races with it (under a fork server the status is a message that
        only one reader gets; the other sees 255), so its end is awaited first."""
        manager = getattr(self._pool, "_executor_manager_thread", None)
        if manager is not None and manager is not threading.current_thread():
            manager.join(timeout=5)
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for process in processes:
            process.join(timeout=2)
        return [p.exitcode for p in processes if p.exitcode is not None]

    def terminate(self, grace_s: float = TERMINATE_GRACE_S) -> None:
        """Stop every worker now (their tasks are lost) and cancel what has not started.

        Each worker gets SIGTERM, and SIGKILL when it is still alive ``grace_s`` seconds later
        (a task stuck in native code, or one that ignores SIGTERM): when this returns no worker
        is left, so nothing that waits for the workers afterwards (``close``, the pool's own
        thread, the interpreter's exit) can block."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        stop_processes(processes, grace_s)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """``fn(*args)`` on a worker. A pool that broke while no task of it was waiting (its
        workers were killed between tasks), or whose fork server was killed as a worker was
        being started, is replaced first."""
        try:
            return self._pool.submit(fn, *args)
        except BrokenProcessPool:
            pass
        except (OSError, EOFError):  # a worker could not be started: was its fork server killed?
            if not self.server_died():
                raise
        self._replace()
        return self._pool.submit(fn, *args)

    def server_died(self) -> bool:
        """Whether the fork server the workers come from has ended (killed: its workers died
        with it). The server is not reaped here, so the next worker start starts a new one."""
        pid = _fork_server_pid() if self._context.get_start_method() == "forkserver" else None
        if pid is None or not hasattr(os, "waitid"):
            return False
        try:
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # reaped already: it has been replaced
            return True
        except OSError:
            return False

    def restart(self) -> None:
        """Replace a broken pool (a worker was killed) with a fresh one; a pool that works (it
        was replaced already) is kept.

        When the fork server itself was killed, the next worker start starts a new one, with a
        one-line :class:`WorkersRestartedWarning`; after :data:`MAX_SERVER_RESTARTS` such
        restarts :class:`WorkersLostError` stops the command instead of trying forever."""
        if getattr(self._pool, "_broken", True):
            self._replace()

    def _replace(self) -> None:
        if self.server_died():
            self.server_restarts += 1
            if self.server_restarts > MAX_SERVER_RESTARTS:
                raise WorkersLostError(
                    f"the fork server of the worker processes died {self.server_restarts} times (killed, "
                    "e.g. by the out-of-memory killer?); stopping. What finished is recorded: run the "
                    "same command again to continue (projbench run: with --resume FILE)")
            warnings.warn(
                "the fork server of the worker processes died (killed?) and its workers with it; "
                "starting a new one, and the work they had in hand runs again",
                WorkersRestartedWarning, stacklevel=3)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()
        self.restarts += 1

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_pool(kind: str = "local", *, jobs: int = 1, address: str | None = None,
              cpus_per_task: float = 1.0, gpus_per_task: float = 0.0) -> TaskPool:
    """``local`` — inline for ``jobs == 1``, else a process pool; ``ray`` — a Ray cluster."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InvalidArgumentError(f"--jobs must be an integer >= 1, got {jobs!r}")
    if kind == "local":
        if gpus_per_task not in (0, 0.0):
            raise InvalidArgumentError(
                "--gpus-per-task needs --executor ray (local workers share the device)")
        return InlinePool() if jobs == 1 else ProcessPool(jobs)
    if kind == "ray":
        from projbench.ray_pool import RayPool

        return RayPool(address, jobs=jobs if jobs > 1 else None, cpus_per_task=cpus_per_task,
                       gpus_per_task=gpus_per_task)
    raise InvalidArgumentError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "MAX_SERVER_RESTARTS",
    "ChildFailure",
    "InlinePool",
    "ProcessPool",
    "TaskPool",
    "WorkersLostError",
    "WorkersRestartedWarning",
    "call_in_child",
    "describe_exit",
    "make_pool",
]
