"""The README says what projbench is before how to install it, gives a plain pip line, and
explains every column the report tables show (kept in sync with the registered suites)."""

from __future__ import annotations

from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_says_what_before_how() -> None:
    text = README.read_text()
    assert text.index("benchmark toolkit for **random projections") < text.index("make run")
    assert "pip install -e ." in text


@pytest.mark.parametrize("suite", ["distortion", "speed", "memory", "accuracy"])
def test_readme_explains_every_table_column(suite) -> None:
    from projbench.manager import get_registry

    text = README.read_text()
    section = text[text.index("| suite | column | meaning |"):]
    section = section[:section.index("\n\n")]
    for header, _key in get_registry("suites").get(suite).table_columns:
        assert header.replace("|", "\\|") in section, f"README does not explain {suite} column {header!r}"


def test_run_result_counts_unstable_cases() -> None:
    from projbench.runner import RunResult

    result = RunResult(path=Path("x"), records=[{"status": "ok", "stats": {"unstable": True}},
                                                {"status": "ok", "stats": {"unstable": False}}])
    assert result.unstable() == 1
