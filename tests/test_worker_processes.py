"""Worker processes end when they are told to: ``ProcessPool.terminate`` leaves no worker behind,
even one stuck in a blocking call with SIGTERM ignored, so nothing that waits for the workers
afterwards blocks; ``call_in_child`` returns a child's value, its error, or kills it at the
deadline. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import wait
from pathlib import Path

import pytest

from projbench.executors import ChildFailure, ProcessPool, call_in_child

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux")


def gone(pid: int) -> bool:
    """True when ``pid`` has ended (a zombie counts: it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def stubborn(marker: str) -> None:
    """A task that ignores SIGTERM and blocks in one long native call."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(marker).write_text(str(os.getpid()))
    time.sleep(1000)


def raises() -> None:
    raise SystemExit("plugin code called sys.exit")


def sleeps(marker: str) -> None:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(1000)


def crashes() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def wait_for_pid(marker: Path, limit_s: float = 60) -> int:
    deadline = time.monotonic() + limit_s
    while not (marker.exists() and marker.read_text()):
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    return int(marker.read_text())


def test_terminate_kills_a_worker_that_ignores_sigterm_in_a_blocking_call(tmp_path: Path) -> None:
    pool = ProcessPool(1)
    marker = tmp_path / "pid"
    future = pool.submit(stubborn, str(marker))
    pid = wait_for_pid(marker)
    start = time.monotonic()
    pool.terminate()
    assert time.monotonic() - start < 10
    assert gone(pid), "the worker outlived terminate()"
    closing = threading.Thread(target=pool.close, daemon=True)  # must not wait for the worker
    closing.start()
    closing.join(10)
    assert not closing.is_alive(), "close() blocked after terminate()"
    wait([future], timeout=10)
    assert future.done()


def test_call_in_child_returns_the_value_of_a_child_process() -> None:
    assert call_in_child(os.getpid, timeout=60) != os.getpid()


def test_call_in_child_reports_what_the_child_raised_in_one_line() -> None:
    with pytest.raises(ChildFailure) as info:
        call_in_child(raises, timeout=60)
    assert info.value.error == "SystemExit: plugin code called sys.exit" and not info.value.timed_out


def test_call_in_child_reports_a_crashed_child() -> None:
    with pytest.raises(ChildFailure, match="was killed by SIGSEGV") as info:
        call_in_child(crashes, timeout=60)
    assert info.value.exit_code == -signal.SIGSEGV


def test_call_in_child_kills_a_child_still_running_at_the_deadline(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    call_in_child(os.getpid, timeout=60)  # the fork server is up: the deadline is the task's
    start = time.monotonic()
    with pytest.raises(ChildFailure, match="no answer within 2 s") as info:
        call_in_child(sleeps, str(marker), timeout=2)
    assert info.value.timed_out and time.monotonic() - start < 10
    assert gone(wait_for_pid(marker, 1))
