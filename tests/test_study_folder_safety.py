"""A study folder is never mixed up: one driver at a time, no reuse of runs made with other
inputs (data, FWHT backend), hand-edited records checked, a folder from a failed start reusable,
no writing outside --out. Each through the CLI in a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY_MNIST = """
seeds = [0]
projections = ["fastfood"]
[search]
method = "grid"
grid = [16]
[recipe]
lr = 2e-2
epochs = 30
max_steps = 40
batch_size = 64
[run]
train_subset = 1024
test_subset = 256
[[pairs]]
architecture = "mlp"
dataset = "mnist"
"""

TINY_DIGITS = TINY_MNIST.replace('dataset = "mnist"', 'dataset = "digits"').replace(
    "train_subset = 1024\ntest_subset = 256\n", ""
)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-m", "projbench.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=300)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1]


def test_a_second_driver_on_the_same_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    spec = tmp_path / "slow.toml"
    long = TINY_DIGITS.replace("max_steps = 40", "max_steps = 40000").replace("epochs = 30", "epochs = 4000")
    spec.write_text(long)
    out = tmp_path / "s"
    first = subprocess.Popen(
        [sys.executable, "-m", "projbench.cli", "study", str(spec), "--out", str(out), "--no-figures"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 120
        while not (out / "study.jsonl").exists() and time.time() < deadline:
            time.sleep(0.2)
        before = (out / "study.jsonl").read_bytes()
        second = cli("study", str(spec), "--out", str(out), "--no-figures")
        line = one_line_error(second)
        assert f"pid {first.pid}" in line and "in use" in line
        assert (out / "study.jsonl").read_bytes().startswith(before)  # nothing overwritten
    finally:
        first.kill()
        first.wait()
    # the holder died (kill -9): its lock died with it, and the folder resumes
    third = cli("study", str(spec.with_name("slow.toml")), "--out", str(out), "--no-figures", "--dry-run")
    assert third.returncode == 0


@pytest.mark.slow
def test_resume_refuses_runs_made_with_another_fwht_backend(tmp_path: Path) -> None:
    spec = tmp_path / "t.toml"
    spec.write_text(TINY_DIGITS)
    out = tmp_path / "b"
    assert cli("study", str(spec), "--out", str(out), "--no-figures").returncode == 0
    line = one_line_error(
        cli("study", str(spec), "--out", str(out), "--no-figures", env={"PROJBENCH_FWHT_BACKEND": "fht-cpu"})
    )
    assert "other inputs" in line and "'torch' -> 'fht-cpu'" in line
    rerun = cli("study", str(spec), "--out", str(out), "--no-figures")
    assert rerun.returncode == 0 and "0 runs trained" in rerun.stderr


def test_resume_refuses_runs_made_on_other_data(tmp_path: Path, data_dir: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data_dir / "MNIST", copy / "MNIST")
    spec = tmp_path / "m.toml"
    spec.write_text(TINY_MNIST)
    out = tmp_path / "m"
    assert cli("study", str(spec), "--out", str(out), "--data-dir", str(copy), "--no-figures").returncode == 0
    labels = copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8:] = bytes(reversed(raw[8:]))  # the same labels, shuffled (reversed)
    labels.write_bytes(bytes(raw))
    line = one_line_error(cli("study", str(spec), "--out", str(out), "--data-dir", str(copy), "--no-figures"))
    assert "other inputs" in line and "data:" in line


def test_a_folder_from_a_failed_start_is_started_anew(tmp_path: Path) -> None:
    spec = tmp_path / "t.toml"
    spec.write_text(TINY_DIGITS)
    for content in (b"", b'{"type": "study", "schema": 1, "spe'):
        out = tmp_path / f"f{len(content)}"
        out.mkdir()
        (out / "study.jsonl").write_bytes(content)
        proc = cli("study", str(spec), "--out", str(out), "--no-figures")
        assert proc.returncode == 0, proc.stderr
        assert json.loads((out / "study.jsonl").read_text().splitlines()[0])["type"] == "study"


def test_a_study_file_symlink_leading_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "t.toml"
    spec.write_text(TINY_DIGITS)
    out = tmp_path / "o"
    out.mkdir()
    outside = tmp_path / "elsewhere.jsonl"
    (out / "study.jsonl").symlink_to(outside)
    line = one_line_error(cli("study", str(spec), "--out", str(out), "--no-figures"))
    assert "outside the study folder" in line and not outside.exists()


@pytest.mark.parametrize(
    "bad",
    [
        '"0.99"',
        pytest.param("true", marks=pytest.mark.slow),
        pytest.param('{"x": 1}', marks=pytest.mark.slow),
    ],
)
def test_hand_edited_records_of_the_wrong_type_are_not_used(tmp_path: Path, bad: str) -> None:
    from projbench.study.store import read_study

    spec = tmp_path / "t.toml"
    spec.write_text(TINY_DIGITS)
    out = tmp_path / "h"
    assert cli("study", str(spec), "--out", str(out), "--no-figures").returncode == 0
    lines = (out / "study.jsonl").read_text().splitlines()
    run = next(json.loads(ln) for ln in lines if json.loads(ln).get("type") == "run")
    edited = json.dumps({**run, "stats": {**run["stats"], "test_accuracy": "PLACEHOLDER"}})
    edited = edited.replace('"PLACEHOLDER"', bad)
    (out / "study.jsonl").write_text("\n".join([*lines, edited]) + "\n")
    stored = read_study(out)
    assert stored.bad_lines == 1 and stored.runs[run["run_id"]]["stats"]["test_accuracy"] != bad
    report = cli("report", str(out), "--no-figures")
    assert report.returncode == 0 and "1 unreadable line" in report.stderr


def test_the_latest_of_two_records_of_a_run_wins(tmp_path: Path) -> None:
    from projbench.study.store import read_study

    spec = tmp_path / "t.toml"
    spec.write_text(TINY_DIGITS)
    out = tmp_path / "l"
    assert cli("study", str(spec), "--out", str(out), "--no-figures").returncode == 0
    lines = (out / "study.jsonl").read_text().splitlines()
    run = next(json.loads(ln) for ln in lines if json.loads(ln).get("type") == "run")
    later = {**run, "stats": {**run["stats"], "test_accuracy": 0.123}}
    (out / "study.jsonl").write_text("\n".join([*lines, json.dumps(later)]) + "\n")
    assert read_study(out).runs[run["run_id"]]["stats"]["test_accuracy"] == 0.123
