"""The click CLI: every command, its --help, the main job, and errors a user can act on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from projbench.cli import cli
from projbench.cliutils import parse_options
from projbench.errors import InvalidArgumentError
from projbench.results import read_run


def invoke(runner: CliRunner, *args: str):
    return runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["list"], ["plugins"], ["run"], ["report"], ["intrinsic-dim"]])
def test_every_command_has_useful_help(runner, command) -> None:
    result = invoke(runner, *command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output and len(result.output.splitlines()) > 5


def test_list_shows_every_kind(runner) -> None:
    result = invoke(runner, "list", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert {"projections", "architectures", "datasets", "backends", "suites"} <= set(data)
    projections = {row["name"]: row for row in data["projections"]}
    assert {"dense", "sparse", "fastfood", "fastjl"} <= set(projections)
    fc = {row["name"]: row for row in data["architectures"]}["fc"]
    assert fc["D mnist"] == "199,210"
    assert {"distortion", "speed", "memory", "accuracy"} <= {row["name"] for row in data["suites"]}


def test_list_single_kind_table(runner) -> None:
    result = invoke(runner, "list", "projections")
    assert result.exit_code == 0 and "fastjl" in result.output and "architectures" not in result.output


def test_plugins_lists_builtin_and_third_party_with_versions(runner) -> None:
    result = invoke(runner, "plugins", "--json")
    infos = {p["name"]: p for p in json.loads(result.output)}
    assert infos["fastjl"]["builtin"] and infos["fastjl"]["registers"] == {"projections": ["fastjl"]}
    assert not infos["srht"]["builtin"] and infos["srht"]["version"] == "0.1.0"


def test_run_writes_results_and_prints_path(runner, tmp_path) -> None:
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.parent == tmp_path and path.exists()
    run = read_run(path)
    assert run.complete and run.cases and all(c["suite"] == "distortion" for c in run.cases)
    assert run.header["config"]["projections"] == ["fastjl"]


def test_run_resume_skips_recorded_cases(runner, tmp_path) -> None:
    first = runner.invoke(cli, ["run", "--proj", "dense", "--suite", "memory", "--out", str(tmp_path)])
    assert first.exit_code == 0, first.output
    path = Path(first.stdout.strip().splitlines()[-1])
    args = ["run", "--proj", "dense", "--suite", "memory", "--resume", str(path)]
    n = len(read_run(path).cases)
    second = runner.invoke(cli, args)
    assert second.exit_code == 0 and "reused from the earlier run" in second.output
    assert len(read_run(path).cases) == n


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--proj", "fastjll"], "unknown projection 'fastjll'; did you mean 'fastjl'?"),
        (["run", "--proj", "fastjl", "--suite", "distorsion"], "did you mean 'distortion'?"),
        (["run", "--proj", "dense", "-o", "bogus=1"], "option 'bogus' is not taken"),
        (["run", "--proj", "dense", "-o", "novalue"], "-o expects key=value"),
        (["report", "does-not-exist.jsonl"], "no such results file"),
    ],
)
def test_bad_input_is_one_line_error_without_traceback(runner, args, expected, tmp_path) -> None:
    result = runner.invoke(cli, [*args] if args[0] != "run" else [*args, "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert expected in result.output
    assert "Traceback" not in result.output


def test_bad_option_lists_what_the_projection_takes(runner, tmp_path) -> None:
    result = runner.invoke(cli, ["run", "--proj", "dense", "-o", "bogus=1", "--out", str(tmp_path)])
    assert "dense:" in result.output and "max_bytes" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_a_clear_error(runner, tmp_path) -> None:
    result = runner.invoke(cli, ["run", "--proj", "dense", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "CUDA is not available" in result.output


def test_parse_options_literals() -> None:
    assert parse_options(("q=0.05", "n=3", "flag=True", "name=abc", "x=None")) == {
        "q": 0.05, "n": 3, "flag": True, "name": "abc", "x": None}
    with pytest.raises(InvalidArgumentError):
        parse_options(("=3",))


def test_main_job_runs_every_suite_and_report_reads_it(runner, tmp_path) -> None:
    """`projbench run --proj fastjl` with no other flags: every suite, a table, a results file."""
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip().splitlines()[-1])
    run = read_run(path)
    assert {c["suite"] for c in run.cases} == {"distortion", "speed", "memory", "accuracy"}
    assert all(c["status"] == "ok" for c in run.cases), [c.get("error") for c in run.cases]
    for suite in ("distortion", "speed", "memory", "accuracy"):
        assert suite in result.output  # a summary table per suite on stderr

    figs = tmp_path / "figs"
    report = runner.invoke(cli, ["report", str(path), str(path), "--figures", str(figs)])
    assert report.exit_code == 0, report.output
    pngs = [Path(p) for p in report.stdout.split()]
    assert pngs and all(p.suffix == ".png" and p.stat().st_size > 1000 for p in pngs)


def test_bad_option_value_is_one_line_error_before_any_case(runner, tmp_path) -> None:
    """-o q=2: the projection's own validation, full message, exit 1, nothing recorded."""
    out = tmp_path / "out"
    result = runner.invoke(cli, ["run", "--proj", "fastjl", "-o", "q=2", "--suite", "distortion",
                                 "--out", str(out)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "q (FJLT sparsity) must be a number in (0, 1], got 2" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()  # nothing recorded, not even an empty file


def test_process_pool_executor_records_every_case(runner, tmp_path) -> None:
    args = ["run", "--proj", "fastjl,dense", "--suite", "distortion", "--out", str(tmp_path)]
    serial = runner.invoke(cli, [*args[:-1], str(tmp_path / "serial")])
    pooled = runner.invoke(cli, [*args[:-1], str(tmp_path / "pool"), "--jobs", "2"])
    assert serial.exit_code == 0 and pooled.exit_code == 0, pooled.output
    by_key = {}
    for sub in ("serial", "pool"):
        run = read_run(next((tmp_path / sub).glob("*.jsonl")))
        by_key[sub] = {c["key"]: c["stats"]["mean"] for c in run.cases}
    assert by_key["serial"] == by_key["pool"]  # same seeds, same numbers, any execution order


def test_ray_executor_without_ray_is_a_clear_error(runner, tmp_path) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        result = runner.invoke(cli, ["run", "--proj", "fastjl", "--executor", "ray", "--out", str(tmp_path)])
        assert result.exit_code != 0 and "pip install 'projbench[ray]'" in result.output
    else:  # pragma: no cover - ray installed
        pytest.skip("ray is installed")
