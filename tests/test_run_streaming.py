"""`projbench run` keeps every case the moment it finishes, stops cleanly on Ctrl-C and SIGTERM,
owns its file while it writes, validates the seed up front and survives a crashing projection.

The plugins here are real on-disk distributions (module + ``.dist-info`` with an entry point in
the ``projbench`` group) on the ``PYTHONPATH`` of a real ``projbench`` subprocess; signals are
real signals sent to that process (Ctrl-C: SIGINT to its whole process group, as a terminal does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import projbench
from projbench.benchmark import run_benchmark
from projbench.cli import cli
from projbench.results import ResultsFileError, ResultsWriter, read_run
from projbench.suites import Case, CaseOutcome, RunSettings

CLI = "import sys; sys.argv[0] = 'projbench'; from projbench.cli import main; main()"

# Three cases per projection; the middle one sleeps $SLOWSUITE_SLEEP seconds (0 when unset).
SLOW_SUITE = '''
import os, time
import projbench
from projbench.suites import Case, CaseOutcome

class SlowSuite:
    """Three cases; the middle one sleeps SLOWSUITE_SLEEP seconds."""
    name = "slowsuite"
    description = "three cases, the middle one slow"
    table_columns = (("value", "value"),)

    def cases(self, projections, settings):
        return [Case(self.name, p, {"i": i}) for p in projections for i in range(3)]

    def run_case(self, case, settings):
        if case.params["i"] == 1:
            time.sleep(float(os.environ.get("SLOWSUITE_SLEEP", "0")))
        return CaseOutcome(stats={"value": case.params["i"]})

@projbench.hookimpl
def projbench_register_suites(registry):
    registry.add(SlowSuite())
'''

# A projection that passes the contract checks (D = 50) and aborts the process at D = 16384.
ABORTING = '''
import os, torch, projbench

class Aborting(projbench.Projection):
    """Dense Gaussian; calls os.abort() in forward when D == 16384 (a native crash)."""
    name = "aborting"

    def __init__(self, d, D, *, seed=0, device=None, dtype=torch.float32):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("matrix", (torch.randn(D, d, generator=g, dtype=torch.float64) / D**0.5)
                             .to(device=device, dtype=dtype))

    def forward(self, theta):
        if self.D == 16384:
            os.abort()
        return theta @ self.matrix.T

    def adjoint(self, y):
        return y @ self.matrix

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(Aborting)
'''


@pytest.fixture
def plugins(tmp_path: Path, install_fake_distribution) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    install_fake_distribution(root, "slowsuite-plugin", "slowsuite_plugin", SLOW_SUITE)
    install_fake_distribution(root, "aborting-plugin", "aborting_plugin", ABORTING)
    return root


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROJBENCH_DISABLE_PLUGINS", "PROJBENCH_PREFER")}
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def start_cli(root: Path, cwd: Path, *args: str, **extra: str) -> subprocess.Popen[str]:
    """``projbench ARGS`` in its own process group (so a Ctrl-C can go to all of it)."""
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=cwd, env=cli_env(root, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run_cli(root: Path, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, env=cli_env(root, **extra),
                          capture_output=True, text=True, timeout=300)


def lines_of(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written
    return out


def wait_for(condition: Any, what: str, limit_s: float = 120.0) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def one_line(text: str) -> str:
    """``text`` with its whitespace (rich wraps long lines) collapsed to single spaces."""
    return " ".join(text.split())


def case_lines(path: Path) -> list[dict[str, Any]]:
    return [r for r in lines_of(path) if r.get("type") == "case"]


def interrupt(proc: subprocess.Popen[str], signum: int) -> tuple[str, str]:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) or ``kill -TERM PID``."""
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signum)
    return proc.communicate(timeout=120)


def interrupted_run(root: Path, tmp_path: Path, signum: int,
                    *extra: str) -> tuple[Path, subprocess.Popen[str], str]:
    """A run stopped by ``signum`` while its slow middle case sleeps; (file, process, stderr)."""
    out = tmp_path / "out"
    proc = start_cli(root, tmp_path, "run", "--proj", "fastjl", "--suite", "slowsuite", "--out", str(out),
                     *extra, SLOWSUITE_SLEEP="300")
    path = wait_for(lambda: next(out.glob("*.jsonl"), None), "the run file")
    wait_for(lambda: case_lines(path), "a finished case in the file")
    _, stderr = interrupt(proc, signum)
    return path, proc, stderr


# ------------------------------------------------------------------------------------------
# streaming: a record is on disk before the next case runs
# ------------------------------------------------------------------------------------------
class EventSuite:
    """Three instant cases that log when each runs."""

    name = "eventsuite"
    description = "logs its cases"
    table_columns = (("i", "i"),)

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def cases(self, projections: list[str], settings: RunSettings) -> list[Case]:
        return [Case(self.name, p, {"i": i}) for p in projections for i in range(3)]

    def run_case(self, case: Case, settings: RunSettings) -> CaseOutcome:
        self.events.append(f"run {case.params['i']}")
        return CaseOutcome(stats={"i": case.params["i"]})


def test_each_case_is_on_disk_before_the_next_one_runs(tmp_path, fresh_manager) -> None:
    events: list[str] = []
    module = types.ModuleType("event_suite_plugin")

    @projbench.hookimpl
    def projbench_register_suites(registry):
        registry.add(EventSuite(events))

    module.projbench_register_suites = projbench_register_suites  # type: ignore[attr-defined]
    fresh_manager.register_plugin(module, name="event-suite")
    path = tmp_path / "run.jsonl"

    def on_record(record: dict[str, Any]) -> None:  # what moves the progress bar
        on_disk = [r["params"]["i"] for r in case_lines(path)]
        events.append(f"recorded {on_disk[-1]} ({len(on_disk)} on disk)")

    run_benchmark(["fastjl"], ["eventsuite"], RunSettings(), path=path, on_record=on_record)
    assert events == ["run 0", "recorded 0 (1 on disk)", "run 1", "recorded 1 (2 on disk)",
                      "run 2", "recorded 2 (3 on disk)"]


# ------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM
# ------------------------------------------------------------------------------------------
RAY = ("--executor", "ray", "--jobs", "2")


@pytest.mark.parametrize(("signum", "executor"), [
    (signal.SIGINT, ()), pytest.param(signal.SIGTERM, (), marks=pytest.mark.slow),
    pytest.param(signal.SIGINT, ("--jobs", "2"), marks=pytest.mark.slow),
    pytest.param(signal.SIGTERM, ("--isolate",), marks=pytest.mark.slow),
    pytest.param(signal.SIGINT, RAY, marks=pytest.mark.slow),
], ids=["ctrl-c-inline", "sigterm-inline", "ctrl-c-jobs2", "sigterm-isolate", "ctrl-c-ray"])
def test_a_signal_keeps_finished_cases_says_one_line_and_resume_finishes(
        plugins, tmp_path, signum, executor) -> None:
    if executor == RAY:
        pytest.importorskip("ray")
    path, proc, stderr = interrupted_run(plugins, tmp_path, signum, *executor)
    assert proc.returncode == 128 + signum, stderr
    said = [line for line in stderr.splitlines() if line.strip()]
    if executor == RAY:  # Ray logs its own start-up lines first
        said = said[-1:]
        assert "Traceback" not in stderr and stderr.count("interrupted") == 1
    assert said == [f"interrupted; rerun with --resume {path} to continue "
                    f"({len(case_lines(path))} cases recorded)"], stderr
    records = lines_of(path)
    assert records[0]["type"] == "run" and "end" not in [r["type"] for r in records]
    kept = case_lines(path)
    assert 1 <= len(kept) < 3 and all(r["status"] == "ok" for r in kept)
    assert all(r["params"]["i"] != 1 for r in kept)  # the slow case was cut off, not recorded

    report = run_cli(plugins, tmp_path, "report", "--no-figures", str(path))
    assert report.returncode == 0, report.stderr
    assert (f"{path}: {len(kept)} cases, interrupted (continue it: projbench run --resume {path}"
            in one_line(report.stderr))

    resumed = run_cli(plugins, tmp_path, "run", "--proj", "fastjl", "--suite", "slowsuite",
                      "--resume", str(path), *executor)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({len(kept)} reused from the earlier run)" in resumed.stderr
    run = read_run(path)
    assert run.complete and not run.interrupted and len(run.cases) == 3


def test_results_writer_never_overwrites_an_existing_file(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text("precious\n")
    with pytest.raises(ResultsFileError, match="exists already"):
        ResultsWriter(path, config={}, resume=False)
    assert path.read_text() == "precious\n"


# ------------------------------------------------------------------------------------------
# one writer per file
# ------------------------------------------------------------------------------------------
def test_a_second_resume_of_a_file_in_use_is_refused_naming_the_holder(plugins, tmp_path) -> None:
    path, _, _ = interrupted_run(plugins, tmp_path, signal.SIGINT)
    first = start_cli(plugins, tmp_path, "run", "--proj", "fastjl", "--suite", "slowsuite",
                      "--resume", str(path), SLOWSUITE_SLEEP="300")
    try:
        wait_for(lambda: any(r.get("type") == "resume" for r in lines_of(path)), "the first resume")
        before = path.read_bytes()
        second = run_cli(plugins, tmp_path, "run", "--proj", "fastjl", "--suite", "slowsuite",
                         "--resume", str(path))
        assert second.returncode == 1
        said = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(said) == 1 and "Traceback" not in second.stderr
        assert said[0].startswith(f"Error: run file {path} is in use by pid {first.pid} on ")
        assert path.read_bytes() == before
    finally:
        _, stderr = interrupt(first, signal.SIGTERM)
    assert first.returncode == 143, stderr
    # the holder is gone: the file can be resumed again
    third = run_cli(plugins, tmp_path, "run", "--proj", "fastjl", "--suite", "slowsuite",
                    "--resume", str(path))
    assert third.returncode == 0, third.stderr
    assert read_run(path).complete


# ------------------------------------------------------------------------------------------
# the seed is checked before anything runs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["99999999999999999999999", str(2**63), str(-(2**63) - 1)])
def test_an_out_of_range_seed_is_one_line_and_no_file(tmp_path, seed) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                      f"--seed={seed}", "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: --seed must be an integer in [-2**63, 2**63 - 1], got {seed}"]
    assert not out.exists()


# ------------------------------------------------------------------------------------------
# a projection that crashes its process
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", [("--isolate",), ("--jobs", "2")], ids=["isolate", "jobs2"])
def test_a_crashing_case_is_recorded_as_failed_and_the_run_goes_on(plugins, tmp_path, executor) -> None:
    out = tmp_path / "out"
    result = run_cli(plugins, tmp_path, "run", "--proj", "aborting", "--suite", "memory", "--out", str(out),
                     *executor)
    assert result.returncode == 1, result.stderr  # a failed case, reported
    assert "Traceback" not in result.stderr
    run = read_run(next(out.glob("*.jsonl")))
    assert run.complete and len(run.cases) == 3
    by_d = {c["params"]["D"]: c for c in run.cases}
    assert by_d[4096]["status"] == by_d[65536]["status"] == "ok"
    assert by_d[16384]["status"] == "failed"
    assert "the process running this case was killed by SIGABRT" in by_d[16384]["error"]


def test_without_isolate_a_crash_ends_the_driver_and_report_calls_the_file_interrupted(
        plugins, tmp_path) -> None:
    out = tmp_path / "out"
    result = run_cli(plugins, tmp_path, "run", "--proj", "aborting", "--suite", "memory", "--out", str(out))
    assert result.returncode == -signal.SIGABRT
    path = next(out.glob("*.jsonl"))
    assert [c["params"]["D"] for c in case_lines(path)] == [4096]  # kept: it finished first
    report = run_cli(plugins, tmp_path, "report", "--no-figures", str(path))
    assert f"{path}: 1 cases, interrupted" in one_line(report.stderr)


def test_threads_apply_to_the_cases_and_leave_the_caller_alone(tmp_path) -> None:
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    result = CliRunner().invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                      "--threads", str(wanted), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == before
    run = read_run(next(tmp_path.glob("*.jsonl")))
    assert run.header["config"]["threads"] == wanted
    assert {c["threads"] for c in run.cases} == {wanted}


@pytest.mark.parametrize(("flag", "value"), [("--threads", "0"), ("--jobs", "0")])
def test_bad_threads_or_jobs_are_one_line_errors(tmp_path, flag, value) -> None:
    result = CliRunner().invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion", flag, value,
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert f"{flag} must be an integer >= 1, got 0" in result.output
    assert not (tmp_path / "out").exists()
