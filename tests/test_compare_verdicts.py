"""`projbench compare` gives no verdict it cannot back: never from too few samples or from timings
that `run` flagged unstable (the verdict column says why), shows times in the milliseconds that
`run` prints, and refuses two result sets with no case in common instead of passing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from projbench.cli import cli
from projbench.compare import compare_runs
from projbench.report.run_files import format_value
from projbench.results import ResultsWriter

WIDE = {"COLUMNS": "400"}  # one table row per line


def times(n: int, ms: float, seed: int) -> list[float]:
    """``n`` per-call times in seconds around ``ms`` milliseconds (~3 % noise)."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in ms * 1e-3 * np.exp(rng.normal(0.0, 0.03, n))]


def speed_case(samples: list[float], D: int = 4096, **flags: Any) -> dict[str, Any]:
    """A speed case as `run` records it: median in ms in the stats, samples in seconds."""
    stats = {"forward_ms": float(np.median(samples)) * 1e3, "forward_unstable": False,
             "forward_rel_iqr": 0.02, "unstable": False, **flags}
    return {"key": f"k{D}", "suite": "speed", "projection": "fastjl",
            "params": {"D": D, "d": 100, "batch": 1, "dtype": "float32", "device": "cpu"},
            "status": "ok", "stats": stats, "samples": {"forward_s": samples}}


def write(path: Path, *cases: dict[str, Any]) -> Path:
    with ResultsWriter(path, config={}) as w:
        for c in cases:
            w.write_case(c)
    return path


def compare_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["compare", *args], env=WIDE)


def test_three_unstable_samples_get_no_improvement_however_small_p(tmp_path) -> None:
    a = write(tmp_path / "a.jsonl", speed_case(times(3, 150.0, 1), forward_unstable=True,
                                                forward_rel_iqr=0.6, unstable=True))
    b = write(tmp_path / "b.jsonl", speed_case(times(40, 0.45, 2)))
    (row,) = compare_runs(a, b).rows
    assert row.ratio < 0.01 and row.p_value is not None and row.p_value < 0.05  # looks decisive
    assert row.verdict == "unclear"
    assert row.reason == ("too few samples (3 in A, 40 in B; a verdict needs 5 per side); "
                          "A: flagged unstable by run, relative IQR 0.60")
    result = compare_cli(str(a), str(b))
    assert result.exit_code == 0, result.output
    assert "unclear: too few samples (3 in A, 40 in B" in result.output
    assert "0 regression(s), 0 improvement(s)" in result.output
    assert "1 without a verdict (too few samples or unstable timings)" in result.output


def test_a_loaded_machine_on_either_side_means_no_regression(tmp_path) -> None:
    a = write(tmp_path / "a.jsonl", speed_case(times(40, 1.0, 3)))
    b = write(tmp_path / "b.jsonl", speed_case(times(40, 2.0, 4), loaded=True, load_per_cpu=1.6,
                                                unstable=True))
    (row,) = compare_runs(a, b).rows
    assert row.p_value < 1e-6 and row.ratio == pytest.approx(2.0, rel=0.05)
    assert row.verdict == "unclear" and row.reason == "B: timed on a loaded machine (1.6 load per CPU)"
    failing = compare_cli(str(a), str(b), "--fail-on-regression")
    assert failing.exit_code == 0, failing.output  # nothing trustworthy regressed
    assert "unclear: B: timed on a loaded machine" in failing.output


def test_enough_stable_samples_still_get_their_verdict(tmp_path) -> None:
    a = write(tmp_path / "a.jsonl", speed_case(times(40, 1.0, 5)))
    b = write(tmp_path / "b.jsonl", speed_case(times(40, 2.0, 6)))
    (row,) = compare_runs(a, b).rows
    assert row.verdict == "regression" and row.reason is None
    assert compare_cli(str(a), str(b), "--fail-on-regression").exit_code == 1


def test_times_are_shown_in_the_ms_that_run_prints(tmp_path) -> None:
    case_a, case_b = speed_case(times(40, 0.48, 7)), speed_case(times(40, 0.5, 8))
    a, b = write(tmp_path / "a.jsonl", case_a), write(tmp_path / "b.jsonl", case_b)
    table = compare_cli(str(a), str(b))
    assert table.exit_code == 0, table.output
    row = next(line for line in table.output.splitlines() if "forward ms" in line)
    cells = [cell.strip() for cell in row.split("│")]
    medians = cells[cells.index("forward ms") + 1:][:2]
    # the very cells `run` shows in its "fwd ms" column, no seconds in e-notation
    assert medians == [format_value(c["stats"]["forward_ms"]) for c in (case_a, case_b)]
    assert not any("e-" in m for m in medians)
    data = json.loads(compare_cli(str(a), str(b), "--json").stdout)  # JSON: the unit of the name
    (comparison,) = data["comparisons"]
    assert comparison["measure"] == "forward_s"
    assert comparison["a"] == pytest.approx(float(np.median(case_a["samples"]["forward_s"])))


@pytest.mark.parametrize("flags", [(), ("--fail-on-regression",), ("--json",)])
def test_no_case_in_common_is_an_error_not_an_empty_pass(tmp_path, flags) -> None:
    a = write(tmp_path / "a.jsonl", speed_case(times(40, 1.0, 9), D=4096))
    b = write(tmp_path / "b.jsonl", speed_case(times(40, 1.0, 10), D=65536))
    result = compare_cli(str(a), str(b), *flags)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "Error: no case is in both A and B (1 only in A, 1 only in B): nothing to compare; "
        "compare runs of the same suites and projections"]
