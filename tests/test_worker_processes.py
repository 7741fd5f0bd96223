"""Worker processes end when they are told to: ``ProcessPool.terminate`` leaves no worker behind,
even one stuck in a blocking call with SIGTERM ignored, so nothing that waits for the workers
afterwards blocks; ``call_in_child`` returns a child's value, its error, or kills it at the
deadline. A killed fork server (kill -9 while ``run --jobs 2`` or a study works) is replaced,
with one warning line, and the work it took down runs again; a pool whose fork server keeps
dying gives up in one line. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import wait
from pathlib import Path

import pytest

from projbench.executors import (
    MAX_SERVER_RESTARTS,
    ChildFailure,
    ProcessPool,
    WorkersLostError,
    WorkersRestartedWarning,
    call_in_child,
)

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


# ------------------------------------------------------------------------------------------
# a killed fork server: the pool starts a new one (a few times), the lost work runs again
# ------------------------------------------------------------------------------------------
CLI = "import sys; sys.argv[0] = 'projbench'; from projbench.cli import main; main()"

# Six cases per projection, each sleeping a second: several are in flight at any time.
NAPS = '''
import time
import projbench
from projbench.suites import Case, CaseOutcome

class Naps:
    """Six cases that each sleep for a second."""
    name = "naps"
    description = "six one-second cases"
    table_columns = (("i", "i"),)

    def cases(self, projections, settings):
        return [Case(self.name, p, {"i": i}) for p in projections for i in range(6)]

    def run_case(self, case, settings):
        time.sleep(1.0)
        return CaseOutcome(stats={"i": case.params["i"]})

@projbench.hookimpl
def projbench_register_suites(registry):
    registry.add(Naps())
'''

STUDY = """
seeds = 1
projections = ["fastjl"]
[search]
method = "grid"
grid = [8, 64]
baseline = "local"
[recipe]
lr = 1e-2
epochs = 100
max_steps = 600
batch_size = 32
[[pairs]]
architecture = "mlp"
dataset = "digits"
"""


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def fork_server_of(pid: int) -> int | None:
    for child in children(pid):
        try:
            if "multiprocessing.forkserver" in Path(f"/proc/{child}/cmdline").read_text(errors="replace"):
                return child
        except OSError:
            continue
    return None


def records(path: Path, kind: str) -> list[dict]:
    import json

    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("type") == kind:
            out.append(rec)
    return out


def kill_the_fork_server_once_it_works(proc: subprocess.Popen[str], file: Path, kind: str) -> None:
    """Wait until ``file`` holds a finished ``kind`` record (so workers are busy), then kill -9
    the fork server of ``proc``."""
    deadline = time.monotonic() + 240
    while not records(file, kind):
        assert proc.poll() is None, "the command ended before its fork server could be killed"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)
    server = fork_server_of(proc.pid)
    assert server is not None and children(server), "no fork server with workers"
    os.kill(server, signal.SIGKILL)


WARNING = ("Warning: the fork server of the worker processes died (killed?) and its workers with it; "
           "starting a new one, and the work they had in hand runs again")


def test_a_killed_fork_server_is_replaced_and_run_measures_every_case(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "naps_plugin.py").write_text(NAPS)
    info = site / "naps-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: naps\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[projbench]\nnaps = naps_plugin\n")
    path_before = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *path_before])}
    out = tmp_path / "out"
    command = ["run", "--proj", "fastjl", "--suite", "naps", "--jobs", "2", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", CLI, *command], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*.jsonl")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        path = next(out.glob("*.jsonl"))
        kill_the_fork_server_once_it_works(proc, path, "case")
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert [ln for ln in stderr.splitlines() if ln.startswith("Warning")] == [WARNING]
    cases = records(path, "case")
    assert sorted(c["params"]["i"] for c in cases) == list(range(6))  # each once, none failed
    assert {c["status"] for c in cases} == {"ok"} and records(path, "end")


@pytest.mark.slow
def test_a_killed_fork_server_is_replaced_and_the_study_finishes(tmp_path: Path) -> None:
    spec, out = tmp_path / "study.toml", tmp_path / "out"
    spec.write_text(STUDY)
    command = ["study", str(spec), "--out", str(out), "--jobs", "2", "--no-figures"]
    proc = subprocess.Popen([sys.executable, "-c", CLI, *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        kill_the_fork_server_once_it_works(proc, out / "study.jsonl", "run")
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stderr.count("Warning: the fork server of the worker processes died") == 1
    runs = records(out / "study.jsonl", "run")
    assert len(runs) == 3 and {r["status"] for r in runs} == {"ok"}


def test_a_pool_gives_up_after_its_fork_server_died_too_often(monkeypatch) -> None:
    pool = ProcessPool(2)
    try:
        pool.restart()  # a pool that works is kept
        assert pool.restarts == 0
        monkeypatch.setattr(pool, "server_died", lambda: True)
        for _ in range(MAX_SERVER_RESTARTS):
            with pytest.warns(WorkersRestartedWarning, match="fork server of the worker processes died"):
                pool._replace()
        with pytest.raises(WorkersLostError, match=f"died {MAX_SERVER_RESTARTS + 1} times"):
            pool._replace()
    finally:
        pool.close()
