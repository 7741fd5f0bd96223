"""projbench.read_results / to_dataframe: flat records with params and stats as columns, no
duplicated fields, units in names, NaN as floats; projbench.testing reachable from the package."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import projbench
from projbench.results import ResultsWriter


def write_run(path, cases) -> str:
    with ResultsWriter(path, config={}) as w:
        for c in cases:
            w.write_case(c)
        return w.run_id


MEMORY_CASE = {
    "key": "m1", "suite": "memory", "projection": "fastjl", "architecture": None, "dataset": None,
    "params": {"D": 4096, "d": 100, "dtype": "float32", "device": "cpu"}, "seed": 3, "device": "cpu",
    "status": "ok", "error": None,
    "stats": {"D": 4096, "d": 100, "state_bytes": 2 << 20, "state_MiB": 2.0, "peak_method": "torch_profiler",
              "seed": 99, "ratio": float("nan")},
    "memory": {"state_bytes": 2 << 20, "method": "torch_profiler", "extra_bytes": 7},
    "samples": {"t_ms": [1.0, 2.0]},
}


def test_flat_records_have_each_field_once_with_units(tmp_path) -> None:
    run_id = write_run(tmp_path / "a.jsonl", [MEMORY_CASE])
    (row,) = projbench.read_results(tmp_path / "a.jsonl")
    assert row["run_id"] == run_id and row["run_file"].endswith("a.jsonl")
    assert (row["suite"], row["projection"], row["status"]) == ("memory", "fastjl", "ok")
    assert row["D"] == 4096 and row["d"] == 100 and row["dtype"] == "float32"  # params as columns
    assert row["state_bytes"] == 2 << 20 and "state_MiB" not in row  # bytes, no unit copy
    assert row["peak_method"] == "torch_profiler" and "method" not in row  # memory repeat dropped
    assert row["extra_bytes"] == 7
    assert row["seed"] == 3 and row["stats.seed"] == 99  # a conflicting repeat keeps both values
    assert math.isnan(row["ratio"])  # NaN read back as a float
    assert "samples.t_ms" not in row and "params" not in row and "stats" not in row
    assert not any(isinstance(v, dict) for v in row.values())
    (with_samples,) = projbench.read_results([tmp_path / "a.jsonl"], samples=True)
    assert with_samples["samples.t_ms"] == [1.0, 2.0]


def test_nested_params_are_dotted_and_several_files_are_read(tmp_path) -> None:
    case = {"key": "i1", "suite": "intrinsic", "projection": "fastfood", "status": "ok",
            "params": {"d": 10, "recipe": {"lr": 0.01, "epochs": 2}}, "stats": {"test_accuracy": 0.5}}
    write_run(tmp_path / "b.jsonl", [case])
    write_run(tmp_path / "a.jsonl", [MEMORY_CASE])
    rows = projbench.read_results(tmp_path)
    assert [r["suite"] for r in rows] == ["memory", "intrinsic"]  # files in sorted order
    assert rows[1]["recipe.lr"] == 0.01 and rows[1]["recipe.epochs"] == 2
    assert len({r["run_id"] for r in rows}) == 2


def test_to_dataframe(tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    second = {**MEMORY_CASE, "key": "m2", "params": {"D": 8192, "d": 100}}
    write_run(tmp_path / "a.jsonl", [MEMORY_CASE, second])
    df = projbench.to_dataframe(tmp_path / "a.jsonl")
    assert isinstance(df, pd.DataFrame) and list(df["D"]) == [4096, 8192]


def test_to_dataframe_without_pandas_is_a_clear_error(tmp_path, monkeypatch) -> None:
    write_run(tmp_path / "a.jsonl", [MEMORY_CASE])
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(projbench.InvalidArgumentError, match="needs pandas: pip install pandas"):
        projbench.to_dataframe(tmp_path / "a.jsonl")


def test_testing_is_reachable_after_import_projbench() -> None:
    code = "import projbench; print(projbench.testing.run_all_checks('dense', d=3, D=8)[0])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "check_shapes"


def test_run_records_carry_what_their_key_covers(tmp_path) -> None:
    from click.testing import CliRunner

    from projbench.cli import cli

    result = CliRunner().invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion", "-o", "q=0.5",
                                      "--seed", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = projbench.read_results(tmp_path)
    assert rows and all(r["plugin"] == "fastjl" and r["option.q"] == 0.5 and r["seed"] == 3 for r in rows)
    assert all(r["quick"] is True and r["device"] == "cpu" for r in rows)
