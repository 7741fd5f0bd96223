"""The study table's d_int90 cell says why a seed has no value: its search ended below the
target ("not reached") or has not ended ("still searching", a study in progress)."""

from __future__ import annotations

import shutil
from pathlib import Path

from projbench.report.study import d_int90_text
from projbench.study.driver import replay_study

RESULTS = Path(__file__).resolve().parent.parent / "results"


def row(**fields: object) -> dict[str, object]:
    base = {"status": "ok", "seeds": 3, "reached": 3, "searching": 0, "d_int90_mean": 700.0,
            "d_int90_std": 30.0, "d_int90_lo": 638, "d_int90_hi": 750}
    return {**base, **fields}


def test_every_seed_reached() -> None:
    assert d_int90_text(row()) == "700 [638, 750] (n=3)"


def test_a_seed_whose_search_ended_below_the_target_is_not_reached() -> None:
    assert d_int90_text(row(status="partly reached", reached=2)) == "700 [638, 750] (n=2, 1 not reached)"


def test_a_seed_still_searching_is_not_called_unreached() -> None:
    text = d_int90_text(row(status="incomplete", reached=2, searching=1))
    assert text == "700 [638, 750] (n=2, 1 still searching)"
    both = d_int90_text(row(status="incomplete", seeds=4, reached=2, searching=1))
    assert both.endswith("(n=2, 1 not reached, 1 still searching)")


def test_rows_stored_before_the_searching_count_read_as_before() -> None:
    stored = row(status="partly reached", reached=2)
    del stored["searching"]
    assert d_int90_text(stored) == "700 [638, 750] (n=2, 1 not reached)"


def test_a_study_cut_short_counts_its_unfinished_searches(tmp_path: Path) -> None:
    """A complete committed study with its last runs removed replays as in progress: the
    seeds whose searches lost runs are counted as still searching, none as not reached."""
    folder = tmp_path / "burn-in"
    shutil.copytree(RESULTS / "study-burn-in", folder, ignore=shutil.ignore_patterns("figures", "*.lock"))
    complete, _ = replay_study(folder)
    assert all(r["searching"] == 0 for r in complete.rows)
    lines = (folder / "study.jsonl").read_text().splitlines(keepends=True)
    runs = [i for i, line in enumerate(lines) if '"type": "run"' in line]
    (folder / "study.jsonl").write_text("".join(lines[: runs[-6]]))  # the last six runs and the end line gone
    outcome, _ = replay_study(folder)
    searching = [r for r in outcome.rows if r["searching"]]
    assert searching and all(r["status"] == "incomplete" for r in searching)
    assert any(r["d_int90_mean"] is not None for r in searching)  # a row with a value and a seed to go
    for r in searching:
        if r["d_int90_mean"] is not None:
            assert "still searching" in d_int90_text(r) and "not reached" not in d_int90_text(r)
