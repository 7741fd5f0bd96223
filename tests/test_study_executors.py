"""Studies on real executors: the smoke preset gives the same d_int90 values inline, on a local
process pool and on a real local Ray; kill -9 of the driver or of a worker, then the same
command, repeats no finished run and gives the same table."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from projbench.cli import cli
from projbench.study.store import read_study

TINY = """
description = "test: mlp on digits, fastjl, 2 seeds"
seeds = [0, 1]
projections = ["fastjl"]
[search]
d_min = 8
d_max = 512
rtol = 0.3
points_per_round = 2
[recipe]
lr = 1e-2
epochs = 30
max_steps = 120
batch_size = 64
[[pairs]]
architecture = "mlp"
dataset = "digits"
"""


def csv_table(folder: Path) -> list[dict[str, str]]:
    result = CliRunner().invoke(cli, ["report", str(folder), "--format", "csv", "--no-figures"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and {"architecture", "dataset", "D", "projection", "seeds", "d_int90_mean", "d_int90_std",
                     "baseline_accuracy"} <= set(rows[0])
    return rows


def key_columns(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    cols = ("architecture", "dataset", "D", "projection", "seeds", "reached", "d_int90_mean", "d_int90_std",
            "interpolated_mean", "baseline_accuracy", "runs", "status")
    return [tuple(r[c] for c in cols) for r in rows]


def accuracies(folder: Path) -> dict[str, Any]:
    return {rid: r["stats"]["test_accuracy"] for rid, r in read_study(folder).runs.items()}


@pytest.fixture(scope="module")
def smoke_inline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("smoke") / "inline"
    result = CliRunner().invoke(cli, ["study", "smoke", "--out", str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    return out


def test_smoke_preset_table_and_figures(smoke_inline: Path, tmp_path: Path) -> None:
    rows = csv_table(smoke_inline)
    assert {(r["architecture"], r["projection"]) for r in rows} == {
        (a, p) for a in ("mlp", "lenet") for p in ("fastfood", "fastjl")}
    assert all(r["status"] in ("ok", "not reached", "partly reached") for r in rows)
    assert any(r["status"] == "ok" and float(r["d_int90_mean"]) > 0 for r in rows)
    result = CliRunner().invoke(cli, ["report", str(smoke_inline), "--figures", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    pngs = [Path(p) for p in result.stdout.split()]
    assert {p.name for p in pngs} >= {"accuracy_mlp_digits.png", "d_int90_digits.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    md = CliRunner().invoke(cli, ["report", str(smoke_inline), "--format", "md", "--no-figures"])
    assert md.stdout.count("\n| mlp | digits |") == 2
    ref = tmp_path / "ref.csv"
    ref.write_text("architecture,dataset,projection,d_int90,source\nmlp,digits,fastjl,100,made up\n")
    with_ref = CliRunner().invoke(cli, ["report", str(smoke_inline), "--format", "csv", "--no-figures",
                                        "--reference", str(ref)])
    row = next(r for r in csv.DictReader(io.StringIO(with_ref.stdout))
               if r["architecture"] == "mlp" and r["projection"] == "fastjl")
    assert float(row["ours_over_reference"]) == pytest.approx(float(row["d_int90_mean"]) / 100)


def test_smoke_jobs_2_gives_identical_values(smoke_inline: Path, tmp_path: Path) -> None:
    out = tmp_path / "jobs2"
    result = CliRunner().invoke(cli, ["study", "smoke", "--out", str(out), "--jobs", "2", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert key_columns(csv_table(out)) == key_columns(csv_table(smoke_inline))
    assert accuracies(out) == accuracies(smoke_inline)  # bit for bit, run by run
    pids = {r["worker"]["pid"] for r in read_study(out).runs.values()}
    assert len(pids) == 2 and os.getpid() not in pids


@pytest.mark.slow
def test_smoke_on_a_real_local_ray_gives_identical_values(smoke_inline: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from projbench.ray_pool import RayPool
    from projbench.study.driver import run_study
    from projbench.study.spec_files import load_spec

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool = RayPool()
        assert pool.workers == 2
        run_study(load_spec("smoke"), tmp_path / "ray", pool=pool)
    finally:
        ray.shutdown()
    assert key_columns(csv_table(tmp_path / "ray")) == key_columns(csv_table(smoke_inline))
    assert accuracies(tmp_path / "ray") == accuracies(smoke_inline)


# ------------------------------------------------------------------------------------------
# crashes: real subprocesses, real SIGKILL
# ------------------------------------------------------------------------------------------
def _study_cmd(spec: Path, out: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "projbench", "study", str(spec), "--out", str(out), "--jobs", str(jobs),
            "--no-figures"]


def _run_lines(out: Path) -> list[dict[str, Any]]:
    f = out / "study.jsonl"
    if not f.exists():
        return []
    lines = []
    for line in f.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("type") == "run":
            lines.append(rec)
    return lines


def _wait_for_runs(proc: subprocess.Popen[bytes], out: Path, n: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(_run_lines(out)) < n:
        assert proc.poll() is None, "the study ended before it could be killed"
        assert time.monotonic() < deadline, "the study made no progress"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(x) for x in text)
    return out


def _descendants(pid: int) -> list[int]:
    out, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        try:
            todo.extend(_children(child))
        except OSError:
            continue
    return out


def _worker_pids(driver: int) -> list[int]:
    """The driver's worker processes: its children other than multiprocessing's resource
    tracker and fork server, and the fork server's children (a forked worker keeps the server's
    command line, so it is told apart by its parent)."""
    out = []
    for pid in _children(driver):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        except OSError:
            continue
        if "forkserver" in cmd:
            out.extend(_children(pid))
        elif "resource_tracker" not in cmd:
            out.append(pid)
    return out


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tiny")
    spec = base / "tiny.toml"
    spec.write_text(TINY)
    result = CliRunner().invoke(cli, ["study", str(spec), "--out", str(base / "ref"), "--no-figures"])
    assert result.exit_code == 0, result.output
    return spec, base / "ref"


@pytest.mark.slow
def test_kill_9_of_the_driver_leaves_no_workers_and_resumes_exactly(tiny_reference: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    spec, reference = tiny_reference
    out = tmp_path / "killed"
    proc = subprocess.Popen(_study_cmd(spec, out, 2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_runs(proc, out, 5)
    workers = _descendants(proc.pid)  # the workers, and the fork server they come from
    assert _worker_pids(proc.pid), "no worker process found"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _run_lines(out)
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers and not any(_alive(w) for w in workers), "workers outlived the killed driver"
    done = subprocess.run(_study_cmd(spec, out, 2), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = _run_lines(out)
    ids = [r["run_id"] for r in lines if r["status"] in ("ok", "diverged")]
    assert len(ids) == len(set(ids)), "a finished run was trained again"
    assert {r["run_id"] for r in before} <= set(ids)
    assert key_columns(csv_table(out)) == key_columns(csv_table(reference))
    assert accuracies(out) == accuracies(reference)


def test_kill_9_of_a_worker_is_survived(tiny_reference: tuple[Path, Path], tmp_path: Path) -> None:
    spec, reference = tiny_reference
    out = tmp_path / "worker-killed"
    proc = subprocess.Popen(_study_cmd(spec, out, 2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_runs(proc, out, 3)
    workers = _worker_pids(proc.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert key_columns(csv_table(out)) == key_columns(csv_table(reference))
    ids = [r["run_id"] for r in _run_lines(out) if r["status"] in ("ok", "diverged")]
    assert len(ids) == len(set(ids))
