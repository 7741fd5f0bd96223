"""Results store: round trip, append-only resume, torn last line, several runs."""

from __future__ import annotations

import json
import math

import pytest

from projbench.errors import InvalidArgumentError
from projbench.results import SCHEMA_VERSION, ResultsWriter, read_run, read_runs


def case(key: str, status: str = "ok", **stats: float) -> dict:
    return {"key": key, "suite": "distortion", "projection": "fastjl", "params": {"d": 8},
            "status": status, "stats": stats}


def test_round_trip_header_cases_end(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    with ResultsWriter(path, config={"seed": 7, "projections": ["fastjl"]}) as w:
        w.write_case(case("a", mean=1.01))
        w.write_case(case("b", status="diverged", mean=float("nan")))
    run = read_run(path)
    assert run.header is not None
    assert run.header["schema"] == SCHEMA_VERSION and run.header["config"]["seed"] == 7
    for key in ("projbench", "torch", "machine", "plugins", "git_commit", "cuda", "run_id", "time"):
        assert key in run.header
    assert [c["key"] for c in run.cases] == ["a", "b"]
    assert math.isnan(run.cases[1]["stats"]["mean"])  # written tagged, read back as a float
    assert '"mean": {"float": "nan"}' in path.read_text()  # strict JSON on disk
    assert {c["run_id"] for c in run.cases} == {run.header["run_id"]}  # cases carry the run id
    assert run.complete and not run.torn
    for line in path.read_text().splitlines():  # every line is strict JSON
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_torn_last_line_keeps_complete_cases_and_resume_continues(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    w = ResultsWriter(path, config={})
    w.write_case(case("a"))
    w.write_case(case("b"))
    w._fh.write('{"type": "case", "key": "c", "sta')  # simulated crash mid-write
    w._fh.close()
    run = read_run(path)
    assert [c["key"] for c in run.cases] == ["a", "b"]
    assert run.torn and not run.complete
    w2 = ResultsWriter(path, config={}, resume=True)
    assert w2.completed_keys() == {"a", "b"}
    assert w2.run_id == run.header["run_id"]
    w2.write_case(case("c"))
    w2.close({"done": True})
    run = read_run(path)
    assert [c["key"] for c in run.cases] == ["a", "b", "c"]
    assert run.complete and len(run.resumes) == 1 and run.bad_lines == 0 and run.torn


def test_failed_and_skipped_cases_are_retried_on_resume(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    with ResultsWriter(path, config={}) as w:
        w.write_case(case("ok1"))
        w.write_case(case("div", status="diverged"))
        w.write_case(case("bad", status="failed"))
        w.write_case(case("nocuda", status="skipped"))
    w2 = ResultsWriter(path, config={})
    assert w2.completed_keys() == {"ok1", "div"}
    w2.write_case(case("nocuda", mean=2.0))  # measured again: the newer record supersedes
    w2.close()
    run = read_run(path)
    assert [c["key"] for c in run.cases] == ["ok1", "div", "bad", "nocuda"]
    assert run.cases[-1]["status"] == "ok" and run.superseded == 1


def test_exception_inside_writer_marks_interrupted(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    with pytest.raises(RuntimeError), ResultsWriter(path, config={}) as w:
        w.write_case(case("a"))
        raise RuntimeError("boom")
    run = read_run(path)
    assert run.end is not None and run.end["summary"]["interrupted"] is True
    assert [c["key"] for c in run.cases] == ["a"]


def test_bad_records_rejected(tmp_path) -> None:
    with ResultsWriter(tmp_path / "r.jsonl", config={}) as w:
        with pytest.raises(ValueError, match="status"):
            w.write_case(case("a", status="weird"))
        with pytest.raises(ValueError, match="key"):
            w.write_case({"suite": "x", "status": "ok"})


def test_read_runs_directory_and_errors(tmp_path) -> None:
    for i in range(2):
        with ResultsWriter(tmp_path / f"run{i}.jsonl", config={"i": i}) as w:
            w.write_case(case(f"k{i}", mean=math.pi))
    runs = read_runs([tmp_path])
    assert [r.header["config"]["i"] for r in runs] == [0, 1]
    with pytest.raises(InvalidArgumentError, match="no such results file"):
        read_runs([tmp_path / "missing.jsonl"])
    (tmp_path / "junk.jsonl").write_text('{"type": "case"}\n')
    with pytest.raises(InvalidArgumentError, match="not a projbench results file"):
        read_run(tmp_path / "junk.jsonl")


@pytest.mark.parametrize("spelling", ["inf", {"float": "inf"}])
def test_resume_accepts_either_spelling_of_a_non_finite_setting(tmp_path, spelling) -> None:
    """A run file records its settings as written then: an infinite option spelled either way
    is the same setting as the float now."""
    from dataclasses import asdict

    from projbench.benchmark import check_resumable
    from projbench.suites import RunSettings

    settings = asdict(RunSettings(options={"tol": math.inf}))
    path = tmp_path / "run.jsonl"
    header = {"type": "run", "schema": SCHEMA_VERSION, "run_id": "r",
              "config": {"settings": {**settings, "options": {"tol": spelling}}}}
    path.write_text(json.dumps(header) + "\n")
    check_resumable(read_run(path), RunSettings(options={"tol": math.inf}))
    with pytest.raises(InvalidArgumentError, match="options"):
        check_resumable(read_run(path), RunSettings(options={"tol": 1.0}))
