"""The helpers of ``benchmarks/bench_ratios.py`` (statistics only; no timing assertions)."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("benchmarks.bench_ratios")
from benchmarks import bench_ratios as br


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    r = br.paired_ratio([2.0, 4.0, 9.0, 3.0], [1.0, 2.0, 3.0, 1.0])
    assert r["ratio"] == pytest.approx(2.5)  # per-round ratios 2, 2, 3, 3
    assert r["q1"] <= r["ratio"] <= r["q3"]


def test_summary_flags_a_wide_spread_as_unstable() -> None:
    steady = br.summary([1.0, 1.01, 0.99, 1.0, 1.02])
    noisy = br.summary([1.0, 3.0, 0.5, 2.0, 1.0])
    assert not steady["unstable"] and noisy["unstable"]
    assert steady["median_ms"] == pytest.approx(1000.0)


def test_plan_flops_match_the_torch_backend_plan() -> None:
    # 2^16 in radix-16 passes: 4 passes of 2·16 flops per element
    assert br.plan_flops_per_element(1 << 16) == 4 * 32
    # 2^20: the 16 in-cache bits (4 radix-16 passes) plus 4 outer bits split into ≤ 3-bit blocks
    assert br.plan_flops_per_element(1 << 20) == 4 * 32 + 2 * (4 + 4)
    assert br.plan_flops_per_element(8) == 16  # dense GEMM: 2n flops per element


def test_textbook_fastfood_is_the_same_matrix() -> None:
    import projbench

    p = projbench.make_projection("fastfood", d=20, D=300, seed=4)
    old = br.TextbookFastfood(20, 300, seed=4)
    torch.testing.assert_close(old(torch.eye(20)).T, p.to_dense(), rtol=1e-4, atol=1e-5)
    assert math.isfinite(float(p.to_dense().abs().max()))


def test_partial_run_renders_only_its_sections(tmp_path) -> None:
    """A ``--sections subspace`` run writes a Markdown table of what it measured (it used to
    write "(partial run)"), with the flags that made it in the title."""
    import json
    from pathlib import Path

    payload = br.main(["--sections", "quality", "--quick", "--out-dir", str(tmp_path), "--tag", "t"])
    md = Path(tmp_path, "bench_ratios_cpu_t.md").read_text()
    assert "--sections quality" in md.splitlines()[0]
    assert "**JL quality**" in md and "**FWHT**" not in md and "**Subspace step" not in md
    assert {"fastfood", "fastfood-stacked", "fastjl"} <= set(payload["quality"]["rows"])
    stacked = payload["quality"]["rows"]["fastfood-stacked"]
    ideal_std = payload["quality"]["ideal"]["ideal_std"]
    assert abs(stacked["mean"] - 1) < 0.05 and abs(stacked["std"] - ideal_std) < 0.02
    assert json.loads(Path(tmp_path, "bench_ratios_cpu_t.json").read_text())["quality"]
