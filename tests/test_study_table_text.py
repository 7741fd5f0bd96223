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


def test_a_row_whose_seeds_all_search_shows_where_they_stand() -> None:
    pending = {"status": "incomplete", "reached": 0, "searching": 3, "d_int90_mean": None}
    assert d_int90_text(row(**pending, search_lo=56, search_hi=316)) == "searching: [56, 316] so far"
    assert d_int90_text(row(**pending, search_lo=None, search_hi=10000)) == "incomplete"
    assert d_int90_text(row(**pending)) == "incomplete"  # rows stored before the bracket


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
        if r["search_lo"] is not None:  # a bracket, when shown, is a proper interval
            assert r["search_lo"] < r["search_hi"]
    assert all(r["search_lo"] is None and r["search_hi"] is None for r in complete.rows)


def test_an_unfinished_study_shows_the_bracket_of_its_searches(tmp_path: Path) -> None:
    """Cut a complete study back to each seed's first bracketing runs: a row with no finished
    seed says where its searches stand, and the final d_int90 of every seed lies inside."""
    folder = tmp_path / "burn-in"
    shutil.copytree(RESULTS / "study-burn-in", folder, ignore=shutil.ignore_patterns("figures", "*.lock"))
    complete, _ = replay_study(folder)
    lines = (folder / "study.jsonl").read_text().splitlines(keepends=True)
    for cut in range(len(lines) - 1, 0, -1):  # the longest prefix with a row of only searching seeds
        (folder / "study.jsonl").write_text("".join(lines[:cut]))
        outcome, _ = replay_study(folder)
        pending = [r for r in outcome.rows if r["reached"] == 0 and r["search_lo"] is not None]
        if pending:
            break
    else:
        raise AssertionError("no prefix of the study leaves a row with every seed bracketed")
    for r in pending:
        assert d_int90_text(r) == f"searching: [{r['search_lo']:,}, {r['search_hi']:,}] so far"
        key = ("architecture", "dataset", "variant", "projection")
        final = next(c for c in complete.rows if all(c[k] == r[k] for k in key))
        assert all(r["search_lo"] < d <= r["search_hi"] for d in final["per_seed"].values() if d is not None)
