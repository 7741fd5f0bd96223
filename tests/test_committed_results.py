"""The committed reference outputs in ``results/`` stay readable: every run file and every study
folder parses through the public readers to the same records (counts, ids, statuses, totals),
and a complete study folder resumed with its current preset finds every run done."""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest

import projbench
from projbench.results import read_run
from projbench.study.store import read_study as read_study_file

RESULTS = Path(__file__).resolve().parent.parent / "results"

#: run file -> (run id, cases, resume lines); every case is "ok" and every run ended
RUN_FILES = {
    "bench_subspace_fc_mnist.jsonl": ("68732d9c20a4", 50, 11),
    "intrinsic_lenet_mnist_1epoch.jsonl": ("5b5f9e46cd32", 50, 0),
    "run_main_job_all_projections_cuda_h200.jsonl": ("0fb48c42f0a7", 61, 0),
}
#: complete study folder -> (study id, runs, resume lines, sum of the runs' test accuracies)
STUDIES = {
    "study-burn-in": ("c9813703683b", 46, 0, 36.6251),
    "study-cpu-budget": ("adfb2ad377bf", 114, 0, 74.02),
    "study-direct-vs-subspace": ("e3bae54e9172", 102, 1, 66.6145),
    "study-fastfood-variants": ("a22a3d5db67b", 408, 0, 291.5387),
    "study-fastjl-stability": ("582fb3e13d2d", 38, 0, 12.8825),
    "study-kronecker-mnist": ("546fef391484", 100, 1, 71.0277),
    "study-lenet-sgd-best": ("73c025a6fc17", 6, 0, 5.2432),
    "study-lenet-sgd-per-layer": ("ef8d007d338f", 3, 0, 2.7871),
    "study-li2018-mnist": ("af2222961843", 72, 7, 59.8909),
    "study-robustness-mnist": ("c33bf2602065", 456, 0, 287.329),
    "study-transfer": ("146f5bc31999", 175, 0, 140.345),
}
#: studies still being written, with their preset and the runs they held at least when listed
#: here: read from a copy, never opened in place
IN_PROGRESS = {
    "study-robustness-converged": ("robustness-converged", 0),
}
#: small complete studies resumed here (resuming copies the folder and replays every search)
RESUMED = ("study-burn-in", "study-fastjl-stability")


def test_every_committed_file_is_listed_here() -> None:
    assert {p.name for p in RESULTS.glob("*.jsonl")} == set(RUN_FILES)
    assert {p.parent.name for p in RESULTS.glob("study-*/study.jsonl")} == {*STUDIES, *IN_PROGRESS}


@pytest.mark.parametrize("name", sorted(RUN_FILES))
def test_committed_run_files_read(name: str) -> None:
    run_id, cases, resumes = RUN_FILES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no bad line, no newer schema
        run = read_run(RESULTS / name)
        rows = projbench.read_results(RESULTS / name)
    assert run.run_id == run_id and run.complete and not run.interrupted
    assert not run.torn and run.bad_lines == 0 and len(run.resumes) == resumes
    assert len(run.cases) == cases and {c["status"] for c in run.cases} == {"ok"}
    assert len(rows) == cases and {r["run_id"] for r in rows} == {run_id}
    assert all(isinstance(r["suite"], str) and r["status"] == "ok" for r in rows)


def _accuracy_total(runs: dict[str, dict[str, Any]]) -> float:
    return sum(r["stats"]["test_accuracy"] for r in runs.values()
               if isinstance(r["stats"].get("test_accuracy"), int | float))


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_committed_study_folders_read(tmp_path: Path, name: str) -> None:
    study_id, runs, resumes, accuracy = STUDIES[name]
    folder = tmp_path / name
    shutil.copytree(RESULTS / name, folder)
    stored = read_study_file(folder)
    assert stored.header["study_id"] == study_id and stored.header["spec"]["name"] == name[len("study-"):]
    assert stored.ended and not stored.torn and stored.bad_lines == 0 and stored.resumes == resumes
    assert len(stored.runs) == runs and {r["status"] for r in stored.runs.values()} == {"ok"}
    assert math.isclose(_accuracy_total(stored.runs), accuracy, abs_tol=1e-6)
    study = projbench.read_study(folder)
    assert study.name == name[len("study-"):] and study.complete and len(study.runs) == runs
    assert study.table and all("d_int90_mean" in row for row in study.table)


@pytest.mark.parametrize("name", sorted(IN_PROGRESS))
def test_a_study_in_progress_reads_from_a_copy(tmp_path: Path, name: str) -> None:
    preset, at_least = IN_PROGRESS[name]
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(RESULTS / name / "study.jsonl", folder / "study.jsonl")
    stored = read_study_file(folder)  # a line being appended while copying reads as torn
    assert stored.header["spec"]["name"] == preset and stored.bad_lines == 0
    assert len(stored.runs) >= at_least
    assert {r["status"] for r in stored.runs.values()} <= {"ok", "diverged", "failed"}


@pytest.mark.parametrize("name", RESUMED)
def test_a_committed_study_resumed_with_its_preset_trains_nothing(tmp_path: Path, name: str) -> None:
    from projbench.executors import InlinePool
    from projbench.study.driver import run_study
    from projbench.study.spec_files import load_spec

    def must_not_train(spec: Any, data_dir: str | None) -> dict[str, Any]:
        raise AssertionError(f"run {spec.run_id} of a committed study was trained again")

    folder = tmp_path / name
    shutil.copytree(RESULTS / name, folder)
    out = run_study(load_spec(name[len("study-"):]), folder, pool=InlinePool(), run_fn=must_not_train)
    assert out.engine.trained == 0 and out.reused > 0 and out.rows
    after = read_study_file(folder)
    _, runs, resumes, _ = STUDIES[name]
    assert len(after.runs) == runs and after.resumes == resumes + 1 and after.ended and after.bad_lines == 0
