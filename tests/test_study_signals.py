"""A running `projbench study` (or `intrinsic-dim`, a one-pair study) stopped by Ctrl-C (SIGINT
to its process group), SIGTERM or SIGHUP ends with one line and the exit status 128 + the
signal, stops its workers, leaves no leaked semaphores behind, and keeps a folder that the same
command resumes to completion without training again what had finished. Workers start with a
terminal's signals blocked (the driver stops them). Real signals to a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

MESSAGE = "interrupted; rerun the same command to resume"

# a baseline and two subspace runs on the embedded digits, each a second or a few
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

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc: Linux")


def run_records(folder: Path) -> list[dict]:
    """The run records of a study folder, in file order."""
    lines = (folder / "study.jsonl").read_text().splitlines() if (folder / "study.jsonl").exists() else []
    records = []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("type") == "run":
            records.append(rec)
    return records


def children(pid: int) -> set[int]:
    """The processes ``pid`` has started (its workers, the multiprocessing resource tracker)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def command(spec: Path, out: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "projbench.cli", "study", str(spec), "--out", str(out),
            "--no-figures", "--jobs", str(jobs)]


@pytest.mark.parametrize(
    ("name", "to_group", "jobs"),
    [pytest.param("SIGINT", True, 2, marks=pytest.mark.slow),
     pytest.param("SIGTERM", False, 2, marks=pytest.mark.slow), ("SIGHUP", False, 1)],
    ids=["ctrl-c-with-workers", "sigterm-with-workers", "sighup-inline"],
)
def test_a_signal_stops_the_study_in_one_line_and_the_same_command_resumes_it(
    tmp_path: Path, name: str, to_group: bool, jobs: int
) -> None:
    sig = getattr(signal, name)
    spec, out = tmp_path / "study.toml", tmp_path / "out"
    spec.write_text(STUDY)
    cmd = command(spec, out, jobs)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not run_records(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the study ended before it could be interrupted"
        workers = children(proc.pid)
        if to_group:
            os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does
        else:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("study ")]
    assert lines == [MESSAGE], stderr
    assert "Aborted" not in stderr and "leaked" not in stderr and "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "workers outlived the driver"
    finished = {r["run_id"] for r in run_records(out) if r["status"] == "ok"}
    assert finished and '"type": "end"' not in (out / "study.jsonl").read_text()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} reused" in again.stderr
    counts = Counter(r["run_id"] for r in run_records(out))
    assert all(counts[rid] == 1 for rid in finished), "a finished run was trained again"
    assert len(counts) == 3 and '"type": "end"' in (out / "study.jsonl").read_text()


# ------------------------------------------------------------------------------------------
# intrinsic-dim: a one-pair study, stopped the same way
# ------------------------------------------------------------------------------------------
def intrinsic_command(out: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "projbench.cli", "intrinsic-dim", "--arch", "mlp", "--dataset", "digits",
            "--proj", "fastjl", "--seeds", "1", "--search", "grid", "--grid", "8,1000", "--baseline", "local",
            "--lr", "1e-2", "--epochs", "100", "--max-steps", "600", "--batch-size", "32",
            "--out", str(out), "--jobs", str(jobs)]


@pytest.mark.parametrize(
    ("name", "to_group", "jobs"),
    [pytest.param("SIGINT", True, 2, marks=pytest.mark.slow), ("SIGTERM", False, 1)],
    ids=["ctrl-c-with-workers", "sigterm-inline"],
)
def test_a_signal_stops_intrinsic_dim_in_one_line_and_the_same_command_resumes_it(
    tmp_path: Path, name: str, to_group: bool, jobs: int
) -> None:
    sig = getattr(signal, name)
    out = tmp_path / "out"
    folder = out / "intrinsic-mlp-digits-fastjl"
    cmd = intrinsic_command(out, jobs)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not run_records(folder) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "intrinsic-dim ended before it could be interrupted"
        workers = children(proc.pid)
        if to_group:
            os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does
        else:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + sig, stderr
    *before, last = [ln for ln in stderr.splitlines() if ln.strip()]
    assert last == MESSAGE and stderr.count("interrupted") == 1, stderr
    said = " ".join(before)  # the recipe line, wrapped to the console's width
    assert said.startswith("recipe: ") and said.endswith("study.jsonl"), stderr
    assert "Aborted" not in stderr and "leaked" not in stderr and "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "workers outlived the driver"
    finished = {r["run_id"] for r in run_records(folder) if r["status"] == "ok"}
    assert finished and '"type": "end"' not in (folder / "study.jsonl").read_text()

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} reused" in again.stderr
    counts = Counter(r["run_id"] for r in run_records(folder))
    assert all(counts[rid] == 1 for rid in finished), "a finished run was trained again"
    assert len(counts) == 3 and '"type": "end"' in (folder / "study.jsonl").read_text()


def test_pool_workers_start_with_the_terminal_signals_blocked() -> None:
    # in a fresh interpreter: multiprocessing's helper processes are not running yet
    code = ("import signal; from projbench.commands.pools import make_pool_from; "
            "pool = make_pool_from('local', 2, None, 1.0, 0.0); "
            "mask = pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, []).result(); "
            "print(sorted(int(s) for s in mask)); "
            "pool.close()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted([int(signal.SIGHUP), int(signal.SIGINT)]))
