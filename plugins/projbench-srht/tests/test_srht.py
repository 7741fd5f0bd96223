"""The example plugin is found through its entry point and passes projbench's contract checks."""

from __future__ import annotations

import torch
from click.testing import CliRunner

import projbench
from projbench.cli import cli
from projbench.manager import get_registry


def test_srht_is_registered_by_its_own_plugin() -> None:
    assert "srht" in projbench.list_plugins("projections")
    assert get_registry("projections").owner("srht") == "srht"


def test_srht_matches_its_dense_matrix_and_transpose() -> None:
    P = projbench.make_projection("srht", d=6, D=13, seed=3, dtype=torch.float64)
    M = P.to_dense()
    theta = torch.randn(4, 6, dtype=torch.float64)
    y = torch.randn(4, 13, dtype=torch.float64)
    torch.testing.assert_close(P(theta), theta @ M.T)
    torch.testing.assert_close(P.adjoint(y), y @ M)


def test_srht_passes_projbench_contract_checks() -> None:
    from projbench.testing import run_all_checks

    run_all_checks("srht", d=8, D=40)


def test_srht_runs_through_the_cli(tmp_path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--proj", "srht", "--suite", "distortion", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert list(tmp_path.glob("*.jsonl"))
