"""Studies in the Python API: read_study (runs and table rows), compare_studies cell by cell,
and read_results next to study folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import projbench
from projbench.errors import InvalidArgumentError
from projbench.study.api import compare_cells

RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_read_study_gives_runs_and_table_of_a_committed_study(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    shutil.copytree(RESULTS / "study-fastfood-variants", folder)
    study = projbench.read_study(folder)
    assert study.name == "fastfood-variants" and study.complete
    assert len(study.runs) == 408
    roles = {r["role"] for r in study.runs}
    assert roles == {"baseline", "subspace"}
    sub = next(r for r in study.runs if r["role"] == "subspace")
    assert {"architecture", "dataset", "projection", "d", "seed", "recipe.lr", "test_accuracy"} <= set(sub)
    cells = {(r["architecture"], r["projection"]) for r in study.table}
    assert ("fc", "fastfood") in cells and all("curve" not in r for r in study.table)


def test_compare_a_study_with_itself_is_same_everywhere(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    shutil.copytree(RESULTS / "study-fastfood-variants", folder)
    rows = projbench.compare_studies(folder, folder)
    assert rows and all(r["verdict"] == "same" and r["ratio"] == 1.0 for r in rows)


def cell(mean: float, lo: float, hi: float, per_seed: dict[int, float]) -> dict:
    return {"architecture": "fc", "dataset": "mnist", "variant": "-", "projection": "p",
            "d_int90_mean": mean, "d_int90_lo": lo, "d_int90_hi": hi, "per_seed": per_seed}


def test_verdicts_need_separated_intervals_and_enough_paired_seeds() -> None:
    a = cell(500, 450, 550, {i: 500 for i in range(8)})
    up = cell(1000, 900, 1100, {i: 1000 + i for i in range(8)})
    assert compare_cells(a, up)["verdict"] == "higher"
    few = cell(1000, 900, 1100, {0: 1000, 1: 1010, 2: 990})
    assert compare_cells(cell(500, 450, 550, {0: 500, 1: 500, 2: 500}), few)["verdict"] == "unclear"
    assert compare_cells(a, cell(520, 480, 560, {i: 520 for i in range(8)}))["verdict"] == "same"
    missing = compare_cells(a, {**up, "d_int90_mean": None})
    assert missing["verdict"] == "unclear" and "A only" in missing["why"]


def test_studies_with_no_cell_in_common_are_an_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(RESULTS / "study-fastfood-variants", a)
    shutil.copytree(RESULTS / "study-direct-vs-subspace", b)
    with pytest.raises(InvalidArgumentError, match=r"no .* cell in common"):
        projbench.compare_studies(a, b)


def test_read_results_skips_study_folders_and_says_what_to_use(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(RESULTS / "study-burn-in", runs / "my-study")
    with pytest.raises(InvalidArgumentError, match="read_study"):
        projbench.read_results(runs)
    shutil.copy(RESULTS / "bench_subspace_fc_mnist.jsonl", runs / "run.jsonl")
    rows = projbench.read_results(runs)
    assert rows and all(r["run_file"].endswith("run.jsonl") for r in rows)


def test_compare_command_gates_on_a_d_int90_that_moved(tmp_path: Path) -> None:
    """Two studies whose d_int90 differ 10x over 8 seeds: 'higher', and --fail-on-regression
    exits 1; the same study twice passes."""
    import json
    import subprocess
    import sys

    from projbench.executors import InlinePool
    from projbench.study.driver import run_study
    from projbench.study.spec_resolve import resolve
    from projbench.training_runs import RunSpec

    def runs(step: int):
        def run(spec: RunSpec, data_dir: str | None) -> dict:
            acc = 1.0 if spec.projection is None else (0.95 if spec.d >= step + spec.seed else 0.5)
            return {"type": "run", "run_id": spec.run_id, "identity": spec.identity, "status": "ok",
                    "stats": {"test_accuracy": acc, "run_wall_s": 0.0}, "samples": {}, "error": None,
                    "worker": {}}
        return run

    data = {"seeds": 8, "projections": ["p"], "search": {"d_min": 10, "d_max": 10000, "rtol": 0.05},
            "pairs": [{"architecture": "toy", "dataset": "toyset"}]}
    for name, step in (("a", 100), ("b", 1000)):
        run_study(resolve(data, "toy"), tmp_path / name, pool=InlinePool(), run_fn=runs(step))

    def compare(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "projbench.cli", "compare", *args], capture_output=True,
                              text=True, timeout=300)

    gate = compare(str(tmp_path / "a"), str(tmp_path / "b"), "--json", "--fail-on-regression")
    rows = json.loads(gate.stdout)
    assert gate.returncode == 1 and rows[0]["verdict"] == "higher" and rows[0]["ratio"] > 5
    same = compare(str(tmp_path / "a"), str(tmp_path / "a"), "--fail-on-regression")
    assert same.returncode == 0 and "0 regression(s)" in same.stderr
