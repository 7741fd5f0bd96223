"""Timings `projbench run` can vouch for: the machine's load is recorded in the run header and
beside every speed case, a case timed on a loaded machine is flagged unstable and the end of
the run says how to get a trustworthy number, two timed cases never run at once, and the torch
threads of the cases are a recorded choice."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from projbench.cli import cli
from projbench.results import read_run

OPS = ("forward", "adjoint", "backward")
MAX_LOAD_ENV = "PROJBENCH_MAX_LOAD_PER_CPU"  # the load limit per CPU (default 1.0)


def run(tmp_path: Path, *args: str, limit: str) -> tuple[Any, Any]:
    """``projbench run --proj fastjl ARGS`` with the load limit ``limit``; (result, run file)."""
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--proj", "fastjl", "--out", str(out), *args],
                                env={MAX_LOAD_ENV: limit})
    assert result.exit_code == 0, result.output
    return result, read_run(next(out.glob("*.jsonl")))


def speed_cases(run_file: Any) -> list[dict[str, Any]]:
    cases = [c for c in run_file.cases if c["suite"] == "speed"]
    assert len(cases) == 3
    return cases


def test_load_and_cpus_are_recorded_in_the_header_and_beside_each_speed_case(tmp_path) -> None:
    _, run_file = run(tmp_path, "--suite", "speed", "--threads", "1", limit="1000")
    machine = run_file.header["machine"]
    assert machine["cpu_count"] == os.cpu_count()
    assert len(machine["load_avg"]) == 3 and all(x >= 0 for x in machine["load_avg"])
    assert run_file.header["config"]["threads"] == 1
    for case in speed_cases(run_file):
        stats = case["stats"]
        assert len(stats["load_avg_start"]) == 3 and len(stats["load_avg_end"]) == 3
        assert stats["cpu_count"] == os.cpu_count() and stats["threads"] == 1
        assert stats["load_per_cpu"] == pytest.approx(
            max(stats["load_avg_start"][0], stats["load_avg_end"][0]) / os.cpu_count(), abs=1e-3)
        assert stats["load_limit_per_cpu"] == 1000 and stats["loaded"] is False


def test_a_case_timed_on_a_loaded_machine_is_unstable_and_the_summary_gives_the_remedy(tmp_path) -> None:
    # every machine that runs this test has some load: a limit of 0 per CPU calls it loaded
    result, run_file = run(tmp_path, "--suite", "speed", limit="0")
    for case in speed_cases(run_file):
        stats = case["stats"]
        assert stats["load_per_cpu"] > 0 and stats["loaded"] is True and stats["unstable"] is True
        assert all(stats[f"{op}_unstable"] is True for op in OPS)
        assert stats["unstable_ops"].endswith(f"load {stats['load_per_cpu']}/CPU")
    assert run_file.end["summary"]["loaded_cases"] == 3
    said = " ".join(result.output.split())
    assert "3 timed case(s) ran on a loaded machine" in said and "above the limit 0" in said
    assert "quiet machine" in said and "--jobs 1" in said and "--threads" in said


def test_the_load_flag_compares_the_larger_reading_per_cpu_with_the_limit() -> None:
    from projbench.metrics.timing import load_stats

    cpus = os.cpu_count() or 1
    calm = load_stats([0.1 * cpus, 0, 0], [0.2 * cpus, 0, 0], limit=1.0)
    busy = load_stats([0.5 * cpus, 0, 0], [1.5 * cpus, 0, 0], limit=1.0)
    assert calm["loaded"] is False and calm["load_per_cpu"] == pytest.approx(0.2)
    assert busy["loaded"] is True and busy["load_per_cpu"] == pytest.approx(1.5)
    assert load_stats(None, None, limit=0.0)["loaded"] is False  # unknown load: no claim


@pytest.mark.parametrize("value", ["abc", "-1", "inf"])
def test_a_bad_load_limit_is_one_line_before_any_case(tmp_path, value) -> None:
    result = CliRunner().invoke(cli, ["run", "--proj", "fastjl", "--suite", "speed",
                                      "--out", str(tmp_path / "out")], env={MAX_LOAD_ENV: value})
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert f"{MAX_LOAD_ENV} must be a number >= 0, got {value!r}" in result.output
    assert not (tmp_path / "out").exists()


def test_with_several_jobs_timed_cases_run_alone_and_the_run_says_so(tmp_path) -> None:
    result, run_file = run(tmp_path, "--suite", "speed,distortion", "--jobs", "2", limit="1000")
    assert ("speed: timed cases run one at a time first (two timings never share the machine), "
            "then the other cases 2 at a time") in " ".join(result.output.split())
    spans = {c["key"]: (c["started_at"], c["started_at"] + c["wall_s"]) for c in run_file.cases}
    assert len(spans) == 6
    for timed in speed_cases(run_file):
        start, end = spans[timed["key"]]
        for key, (other_start, other_end) in spans.items():
            if key != timed["key"]:
                assert other_end <= start or other_start >= end, "a timed case shared the machine"


def test_ray_honours_jobs(tmp_path) -> None:
    pytest.importorskip("ray")
    _, run_file = run(tmp_path, "--suite", "distortion", "--executor", "ray", "--jobs", "2", limit="1000")
    assert run_file.header["config"]["executor"]["width"] == 2
