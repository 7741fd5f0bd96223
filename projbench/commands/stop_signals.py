"""How a command stops on a signal.

:func:`stops_on_signals` makes SIGINT (Ctrl-C), SIGTERM and SIGHUP end a command with one line
(:data:`INTERRUPTED_MESSAGE`) and the exit status 128 + the signal; the command stops its
workers first (:func:`projbench.commands.pools.stop_pool`). While it runs, the first stop signal
raises :class:`Interrupted` in the main thread and later ones are ignored; one that arrives
while a worker is being started waits until the worker has started
(:meth:`StopRequests.held`), so that no worker escapes the stop. Workers start with
:data:`SHIELDED_SIGNALS` blocked (:func:`blocked_signals`): a terminal sends them to the whole
process group, and the driver, not each worker, decides how to stop. Handlers are installed by
command entry points only.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections.abc import Callable, Iterator
from typing import Any

import click

#: the signals that stop a command cleanly (those a platform lacks are left out)
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
#: the signals a terminal sends to a whole process group, which workers leave to the driver
SHIELDED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGHUP") if hasattr(signal, n))
INTERRUPTED_MESSAGE = "interrupted; rerun the same command to resume"


@contextlib.contextmanager
def blocked_signals(signals: tuple[int, ...]) -> Iterator[None]:
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


class StopRequests:
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


#: the stop requests of the command that runs in this process
STOP_REQUESTS = StopRequests()


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """While the block runs, :data:`STOP_SIGNALS` go to :data:`STOP_REQUESTS`; previous
    handlers come back afterwards."""
    STOP_REQUESTS.reset()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, STOP_REQUESTS.handle)
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
