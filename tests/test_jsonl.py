"""The JSON-lines layer under run files and study folders: one spelling of non-finite floats
written, both historical spellings read, torn lines, hostile lines, append and abandon."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from projbench.jsonl import (
    MAX_DEPTH,
    abandon_file,
    append_record,
    is_nonfinite_tag,
    open_append,
    parse_lines,
    restore_nonfinite,
    to_json,
)


def test_nonfinite_floats_are_written_one_way_and_read_back() -> None:
    value = {"a": math.nan, "b": [1.0, math.inf, -math.inf], "c": "nan", 3: (2,)}
    encoded = to_json(value)
    assert encoded == {"a": {"float": "nan"}, "b": [1.0, {"float": "inf"}, {"float": "-inf"}],
                       "c": "nan", "3": [2]}
    json.dumps(encoded, allow_nan=False)  # strict JSON
    back = restore_nonfinite(json.loads(json.dumps(encoded)))
    assert math.isnan(back["a"]) and back["b"] == [1.0, math.inf, -math.inf]
    assert back["c"] == "nan"  # a string stays a string unless the caller reads bare strings


def test_the_older_bare_string_spelling_reads_only_where_asked() -> None:
    old = {"mean": "nan", "hi": "inf", "lo": "-inf", "label": "x", "t": [1.0, "nan"]}
    back = restore_nonfinite(old, bare_strings=True)
    assert math.isnan(back["mean"]) and back["hi"] == math.inf and back["lo"] == -math.inf
    assert back["label"] == "x" and math.isnan(back["t"][1])
    assert restore_nonfinite(old) == old


@pytest.mark.parametrize("value", [{"float": "abc"}, {"float": "1.5"}, {"float": "nan", "x": 1},
                                   {"float": 1}])
def test_only_the_three_tags_are_floats(value: dict) -> None:
    assert not is_nonfinite_tag(value) and restore_nonfinite(value) == value


def lines(*parts: object) -> bytes:
    return b"".join((p if isinstance(p, bytes) else json.dumps(p).encode()) + b"\n" for p in parts)


def test_torn_lines_are_dropped_and_flagged() -> None:
    head, rec, resume = {"type": "run"}, {"type": "case"}, {"type": "resume"}
    cut = parse_lines(lines(head, rec) + b'{"type": "ca')
    assert cut.torn and cut.ends_mid_line and [ln.record for ln in cut.lines] == [head, rec]
    resumed = parse_lines(lines(head, b'{"type": "ca', resume, rec))
    assert resumed.torn and not resumed.ends_mid_line and len(resumed.lines) == 3
    middle = parse_lines(lines(head, b"garbage{{", rec))
    assert not middle.torn and [ln.problem for ln in middle.lines] == [None, "not valid JSON", None]
    assert middle.lines[1].number == 2


def test_hostile_lines_are_named_never_used() -> None:
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    very_deep = b"[" * 200_000 + b"]" * 200_000
    parsed = parse_lines(lines({"type": "run"}, b'{"k": "\xff"}', [1, 2], 42,
                               {"x": json.loads(deep)}, very_deep, {"ok": 1}))
    problems = [ln.problem for ln in parsed.lines]
    assert problems[0] is None and problems[-1] is None
    assert problems[1].startswith("not UTF-8 text (byte 0xff")
    assert problems[2:4] == ["a list, not a record object", "a number, not a record object"]
    assert problems[4] == f"nested deeper than {MAX_DEPTH} levels"
    assert problems[5] == "not valid JSON"  # past the parser's own recursion limit


def test_append_ends_a_torn_line_first_and_new_files_are_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    fh = open_append(path, new=True)
    append_record(fh, {"type": "run", "v": math.nan})
    fh.close()
    with pytest.raises(FileExistsError):
        open_append(path, new=True)
    with path.open("a") as raw:
        raw.write('{"type": "ca')  # a crash mid-write
    fh = open_append(path)
    append_record(fh, {"type": "resume"})
    fh.close()
    text = path.read_text()
    assert text.endswith('{"type": "ca\n{"type": "resume"}\n')
    parsed = parse_lines(path.read_bytes())
    assert parsed.torn and [ln.record["type"] for ln in parsed.lines] == ["run", "resume"]


def test_abandon_closes_and_removes_only_when_asked(tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept.jsonl", tmp_path / "gone.jsonl"
    for path, remove in ((kept, False), (gone, True)):
        fh = open_append(path, new=True)
        abandon_file(fh, path, remove=remove)
        assert fh.closed
    assert kept.exists() and not gone.exists()
    abandon_file(None, gone, remove=True)  # nothing opened, nothing there: no error
