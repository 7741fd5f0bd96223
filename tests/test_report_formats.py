"""`projbench report --format`: the same formats for run files and study folders, data alone on
stdout, one self-contained HTML page, and study tables that fit a terminal. One check runs the
command in a real subprocess (stdout and stderr as file descriptors); the rest run it in-process."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "results"


def report_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "projbench.cli", "report", *args],
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)


@pytest.fixture
def report(cli_in_process: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., Any]:
    """``report(*args, width=None)``: ``projbench report ARGS`` in-process, COLUMNS=width."""

    def run(*args: str, width: int | None = None) -> subprocess.CompletedProcess[str]:
        return cli_in_process("report", *args, env={"COLUMNS": str(width)} if width else None)

    return run


@pytest.fixture
def study(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    shutil.copytree(RESULTS / "study-cpu-budget", folder)
    return folder


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.jsonl"
    shutil.copy(RESULTS / "run_main_job_all_projections_cuda_h200.jsonl", path)
    return path


def test_csv_of_a_run_file_is_csv_alone_on_stdout(run_file: Path) -> None:
    proc = report_subprocess(str(run_file), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == 61 and {"suite", "projection", "status"} <= set(rows[0])
    assert ".png" not in proc.stdout and ".png" in proc.stderr  # figure paths go to stderr


def test_csv_and_json_of_a_study_are_data_alone(study: Path, report: Callable[..., Any]) -> None:
    proc = report(str(study), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert proc.returncode == 0 and len(rows) == 9 and rows[0]["d_int90_lo"]
    assert ".png" not in proc.stdout
    data = json.loads(report(str(study), "--format", "json", "--no-figures").stdout)
    assert len(data) == 9 and data[0]["architecture"] == "fc"


def test_html_is_one_self_contained_page(study: Path, run_file: Path, report: Callable[..., Any]) -> None:
    for target in (study, run_file):
        page = report(str(target), "--format", "html").stdout
        assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
        assert "data:image/png;base64," in page and "Provenance" in page
        assert 'src="' + str(target) not in page  # nothing linked from outside the page
    page = html.unescape(report(str(study), "--format", "html", "--no-figures").stdout)
    assert '"name": "cpu-budget"' in page and '"torch"' in page and "<table>" in page


def test_study_table_fits_a_terminal_and_never_splits_numbers(
    study: Path, report: Callable[..., Any]
) -> None:
    ref = RESULTS / "li2018-reference.csv"
    proc = report(str(study), "--no-figures", "--reference", str(ref), width=130)
    assert "944 [683, 1,043] (n=2)" in proc.stderr  # the interval on one line
    assert "ref1 = Li et al. 2018" in proc.stderr
    assert "interpolated" not in proc.stderr  # a default table leaves the wide columns out
    everything = report(str(study), "--no-figures", "--columns", "all", width=400)
    assert "interpolated" in everything.stderr
    chosen = report(str(study), "--no-figures", "--columns", "projection,d_int90 (interval)", width=130)
    assert "baseline acc" not in chosen.stderr and "944 [683" in chosen.stderr
    bad = report(str(study), "--no-figures", "--columns", "nope")
    assert bad.returncode != 0 and "unknown column(s) nope" in bad.stderr and "Traceback" not in bad.stderr
