"""Hostile or broken results files: `report` and `run --resume` answer in one line, never with a
traceback; bad lines are counted and named, never silently skipped; resume appends nothing."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest

from projbench.cli import cli
from projbench.results import ResultsFileError, read_run
from projbench.suites import RunSettings

SETTINGS = asdict(RunSettings())
HEADER = {"type": "run", "schema": 1, "run_id": "abc123", "time": "t",
          "config": {"projections": ["fastjl"], "suites": ["distortion"], "settings": SETTINGS}}
CASE = {"type": "case", "key": "k1", "suite": "distortion", "projection": "fastjl",
        "params": {"D": 64, "d": 8}, "status": "ok", "stats": {"mean": 1.0}}
END = {"type": "end", "summary": {}}


def lines(*records: object) -> bytes:
    out = b""
    for r in records:
        out += (r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
    return out


BAD_HEADERS = {
    "schema-string": lines({**HEADER, "schema": "2"}, CASE, END),
    "schema-null": lines({**HEADER, "schema": None}, CASE, END),
    "schema-missing": lines({k: v for k, v in HEADER.items() if k != "schema"}, CASE, END),
    "no-header": lines(CASE, END),
    "header-is-list": lines([1, 2, 3], CASE),
    "non-utf8-header": b'{"type": "run", "schema": 1, "run_id": "\xff"}\n' + lines(CASE),
}
BAD_LINES = {
    "list-line": (lines(HEADER, [1, 2, 3], CASE, END), "a list, not a record object"),
    "number-line": (lines(HEADER, 42, CASE, END), "a number, not a record object"),
    "non-utf8-line": (lines(HEADER, b'{"type": "case", "key": "\xff\xfe"}', CASE, END), "not UTF-8"),
    "stats-not-dict": (lines(HEADER, {**CASE, "key": "k2", "stats": "notadict"}, CASE, END),
                       "case 'stats' is a string, expected an object"),
    "case-without-status": (lines(HEADER, {k: v for k, v in CASE.items() if k != "status"}, END),
                            "case record without 'status'"),
    "garbage-middle": (lines(HEADER, CASE, b"garbage{{", {**CASE, "key": "k2"}, END), "not valid JSON"),
    "unknown-status": (lines(HEADER, {**CASE, "status": "great"}, END), "is not one of"),
}


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    out = result.output.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("Error: "), result.output
    return out[0]


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_report_on_a_bad_header_is_one_line(runner, tmp_path, name) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(BAD_HEADERS[name])
    line = one_line_error(runner.invoke(cli, ["report", str(path), "--no-figures"]))
    assert str(path) in line


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_resume_of_a_bad_header_is_one_line_and_appends_nothing(runner, tmp_path, name) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(BAD_HEADERS[name])
    one_line_error(runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                       "--resume", str(path)]))
    assert path.read_bytes() == BAD_HEADERS[name]


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_report_counts_and_names_bad_lines(runner, tmp_path, name) -> None:
    content, reason = BAD_LINES[name]
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    result = runner.invoke(cli, ["report", str(path), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "1 bad line(s) skipped (line " in result.output and reason in result.output
    with pytest.warns(UserWarning, match="1 bad line"):
        run = read_run(path)
    assert run.bad_lines == 1 and not run.torn
    assert all(c.get("status") for c in run.cases)


@pytest.mark.parametrize("name", sorted(BAD_LINES))
def test_resume_refuses_a_file_with_bad_lines_before_appending(runner, tmp_path, name) -> None:
    content, reason = BAD_LINES[name]
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    line = one_line_error(runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                              "--resume", str(path)]))
    assert "cannot resume" in line and reason in line and "nothing was appended" in line
    assert path.read_bytes() == content
    with pytest.raises(ResultsFileError):
        read_run(path, strict=True)


def test_newer_schema_warns_on_report_and_refuses_resume(runner, tmp_path) -> None:
    content = lines({**HEADER, "schema": 99}, CASE, END)
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    report = runner.invoke(cli, ["report", str(path), "--no-figures"])
    assert report.exit_code == 0 and "newer than this projbench" in report.output
    resume = runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                 "--resume", str(path)])
    assert "cannot resume" in one_line_error(resume)
    assert path.read_bytes() == content


def test_unreadable_paths_are_one_line(runner, tmp_path) -> None:
    one_line_error(runner.invoke(cli, ["report", str(tmp_path / "missing.jsonl")]))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(ResultsFileError, match="cannot read"):
        read_run(tmp_path / "dir.jsonl")


def test_resume_of_a_file_not_written_by_run_is_refused(runner, tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    content = lines({**HEADER, "config": {"architecture": "fc"}}, CASE, END)
    path.write_bytes(content)
    line = one_line_error(runner.invoke(cli, ["run", "--proj", "fastjl", "--suite", "distortion",
                                              "--resume", str(path)]))
    assert "not written by `projbench run`" in line
    assert path.read_bytes() == content


def test_nonfinite_values_come_back_as_floats(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(lines(HEADER, {**CASE, "stats": {"a": "nan", "b": "inf", "c": "-inf", "label": "x"},
                                    "samples": {"t": [1.0, "nan"]}}, END))
    (c,) = read_run(path).cases
    assert math.isnan(c["stats"]["a"]) and c["stats"]["b"] == math.inf and c["stats"]["c"] == -math.inf
    assert c["stats"]["label"] == "x" and math.isnan(c["samples"]["t"][1])
