"""projbench compare: B/A ratios with bootstrap intervals and Mann-Whitney p-values on synthetic
results whose answer is known (2x slower, 2x faster, unchanged; too few samples to tell)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import mannwhitneyu

from projbench.cli import cli
from projbench.compare import compare_runs, compare_samples
from projbench.results import ResultsWriter

RNG = {"rng": np.random.default_rng(1234)}


def times(n: int, scale: float) -> list[float]:
    """Per-call times in seconds: 1 ms x scale with ~5 % lognormal noise."""
    return [float(x) for x in 1e-3 * scale * np.exp(RNG["rng"].normal(0.0, 0.05, n))]


def speed_case(D: int, forward: list[float]) -> dict:
    return {"key": f"k{D}", "suite": "speed", "projection": "fastjl",
            "params": {"D": D, "d": 100, "batch": 1, "dtype": "float32", "device": "cpu"},
            "status": "ok", "stats": {"forward_ms": float(np.median(forward)) * 1e3},
            "samples": {"forward_s": forward}}


def write(path, cases) -> None:
    with ResultsWriter(path, config={}) as w:
        for c in cases:
            w.write_case(c)


@pytest.fixture
def ab(tmp_path):
    RNG["rng"] = np.random.default_rng(1234)  # the same draws whatever the test order
    a = {1: times(40, 1.0), 2: times(40, 1.0), 3: times(40, 1.0), 4: times(3, 1.0)}
    b = {1: times(40, 2.0), 2: times(40, 0.5), 3: times(40, 1.0), 4: times(3, 2.0)}
    mem = {"key": "m", "suite": "memory", "projection": "fastjl", "params": {"D": 64, "d": 8}, "status": "ok"}
    write(tmp_path / "a.jsonl", [speed_case(D, a[D]) for D in a]
          + [{**mem, "stats": {"state_bytes": 1000, "peak_step_bytes": 500}},
             {**speed_case(99, times(5, 1.0)), "key": "only-a"}])
    write(tmp_path / "b.jsonl", [speed_case(D, b[D]) for D in b]
          + [{**mem, "stats": {"state_bytes": 1000, "peak_step_bytes": 800}}])
    return tmp_path / "a.jsonl", tmp_path / "b.jsonl", a, b


def test_known_ratios_and_verdicts(ab) -> None:
    a_path, b_path, a, b = ab
    result = compare_runs(a_path, b_path)
    rows = {(r.suite, r.params["D"], r.measure): r for r in result.rows}
    assert result.only_a == 1 and result.only_b == 0
    for D, truth, verdict in ((1, 2.0, "regression"), (2, 0.5, "improvement")):
        r = rows[("speed", D, "forward_s")]
        assert r.ratio == pytest.approx(np.median(b[D]) / np.median(a[D]), rel=1e-12)
        assert r.ci_low < truth < r.ci_high and not r.ci_low <= 1.0 <= r.ci_high
        assert r.p_value == pytest.approx(mannwhitneyu(a[D], b[D], alternative="two-sided").pvalue)
        assert r.verdict == verdict and r.n_a == r.n_b == 40
    same = rows[("speed", 3, "forward_s")]
    # same distribution: never flagged (a 95 % interval may still miss 1 by chance; the ratio is
    # within min_change, so the change is not practically relevant either way)
    assert abs(same.ratio - 1) < 0.05 and same.verdict in ("same", "unclear")
    few = rows[("speed", 4, "forward_s")]  # 3 vs 3 samples: p >= 0.1, never significant
    assert few.p_value >= 0.1 and few.verdict == "unclear"
    assert ("speed", 1, "forward_ms") not in rows  # the median is compared through its samples
    assert rows[("memory", 64, "state_bytes")].verdict == "same"
    peak = rows[("memory", 64, "peak_step_bytes")]
    assert peak.ratio == pytest.approx(1.6) and peak.verdict == "changed" and peak.ci_low is None
    assert {r.params["D"] for r in result.regressions} == {1}
    assert {r.params["D"] for r in result.improvements} == {2}


def test_bootstrap_interval_is_repeatable_and_covers_the_truth() -> None:
    a, b = times(30, 1.0), times(30, 1.3)
    first = compare_samples(a, b)
    assert compare_samples(a, b) == first  # seeded
    _ratio, low, high, p, verdict = first
    assert low < 1.3 < high and verdict == "regression" and p < 0.05


def test_cli_compare_table_json_and_exit_status(ab) -> None:
    a_path, b_path, _, _ = ab
    runner = CliRunner()
    table = runner.invoke(cli, ["compare", str(a_path), str(b_path)])
    assert table.exit_code == 0, table.output
    assert "regression" in table.output and "improvement" in table.output
    assert "1 regression(s), 1 improvement(s); 1 case(s) only in A, 0 only in B" in table.output
    data = json.loads(runner.invoke(cli, ["compare", str(a_path), str(b_path), "--json"]).stdout)
    assert data["only_a"] == 1 and len(data["comparisons"]) == 6
    failing = runner.invoke(cli, ["compare", str(a_path), str(b_path), "--fail-on-regression"])
    assert failing.exit_code == 1
    clean = runner.invoke(cli, ["compare", str(a_path), str(a_path), "--fail-on-regression"])
    assert clean.exit_code == 0 and "0 regression(s)" in clean.output


def test_bad_inputs_are_one_line_errors(tmp_path, ab) -> None:
    a_path, _, _, _ = ab
    runner = CliRunner()
    missing = runner.invoke(cli, ["compare", str(a_path), str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1 and "no such results file" in missing.output
    bad = runner.invoke(cli, ["compare", str(a_path), str(a_path), "--alpha", "2"])
    assert bad.exit_code == 1 and "0 < alpha < 1" in bad.output and "Traceback" not in bad.output
