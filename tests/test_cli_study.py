"""`projbench study` and `projbench intrinsic-dim` from the command line: output, resume,
refusals, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from projbench.cli import cli
from projbench.study.store import read_study

ARGS = [
    "intrinsic-dim",
    "--arch",
    "mlp",
    "--dataset",
    "digits",
    "--proj",
    "fastjl",
    "--seeds",
    "1",
    "--search",
    "grid",
    "--grid",
    "4,64",
    "--epochs",
    "20",
    "--lr",
    "1e-2",
    "--baseline",
    "local",
    "--train-subset",
    "256",
]


def test_intrinsic_dim_prints_resumes_and_refuses_other_settings(tmp_path: Path) -> None:
    args = [*ARGS, "--out", str(tmp_path)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    lines = first.stdout.strip().splitlines()
    assert lines[0].startswith("d_int90 fastjl:")
    folder = Path(lines[1]).parent
    assert Path(lines[1]).name == "study.jsonl" and any(p.endswith(".png") for p in lines[2:])
    assert len(read_study(folder).runs) == 3  # baseline + 2 grid points
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0 and second.stdout.splitlines()[0] == lines[0]
    assert len(read_study(folder).runs) == 3  # everything reused
    other = CliRunner().invoke(cli, [*ARGS[:-1], "300", "--out", str(tmp_path)])
    assert other.exit_code == 1 and "train_subset" in other.output and "Traceback" not in other.output


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--rtol", "nan", "--rtol"),
        ("--weight-decay", "nan", "--weight-decay"),
        ("--threshold", "inf", "--threshold"),
        ("--grid", "abc", "--grid"),
        ("--proj", "nope", "nope"),
    ],
)
def test_intrinsic_dim_bad_values_are_one_line_errors(
    tmp_path: Path, flag: str, value: str, words: str
) -> None:
    result = CliRunner().invoke(cli, [*ARGS, flag, value, "--out", str(tmp_path)])
    assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_diverging_baseline_stops_the_pair_and_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*ARGS, "--lr", "1e8", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "baseline" in result.output and ("diverged" in result.output or "chance" in result.output)
    runs = read_study(next(tmp_path.iterdir())).runs.values()
    assert all(r["identity"]["role"] == "baseline" for r in runs)  # nothing searched


def test_study_list_and_errors(tmp_path: Path) -> None:
    listed = CliRunner().invoke(cli, ["study", "--list"])
    assert listed.exit_code == 0
    names = {line.split("\t")[0] for line in listed.stdout.splitlines()}
    assert {"smoke", "cpu-budget", "li2018", "all-architectures"} <= names
    for args, words in (
        (["study", "smok", "--out", str(tmp_path / "x")], "Did you mean 'smoke'"),
        (["study", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "x")], "does not exist"),
        (["study", "smoke"], "--out"),
        (["study", "smoke", "--out", str(tmp_path / "x"), "--gpus-per-task", "1"], "ray"),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'seeds = 2\nprojections = ["fastjl"]\n[[pairs]]\narchitecture = "mlp"\ndataset = "digits"\n'
        "[search]\nd_max = 99999999\n"
    )
    result = CliRunner().invoke(cli, ["study", str(bad), "--out", str(tmp_path / "y")])
    assert result.exit_code == 1 and "exceeds D" in result.output
    dry = CliRunner().invoke(cli, ["study", "cpu-budget", "--dry-run"])
    assert dry.exit_code == 0 and "fc/mnist" in dry.stdout


def test_fwht_backend_is_validated_and_part_of_the_run_identity(tmp_path: Path) -> None:
    from projbench.recipe import Recipe
    from projbench.training_runs import RunSpec

    bad = CliRunner().invoke(
        cli, [*ARGS, "--proj", "fastfood", "--fwht-backend", "nope", "--out", str(tmp_path)]
    )
    assert bad.exit_code != 0 and "nope" in bad.output and "Traceback" not in bad.output
    base = RunSpec("mlp", "digits", 0, Recipe(), projection="fastfood", d=8)
    assert "fwht_backend" not in base.identity  # the default keeps the ids of earlier studies
    assert base.with_(fwht_backend="fht-cpu").run_id != base.run_id
    pytest.importorskip("fht_cpu")
    ok = CliRunner().invoke(
        cli, [*ARGS[:6], "fastfood", *ARGS[7:], "--fwht-backend", "fht-cpu", "--out", str(tmp_path / "f")]
    )
    assert ok.exit_code == 0, ok.output
    runs = read_study(next((tmp_path / "f").iterdir())).runs.values()
    sub = [r for r in runs if r["identity"]["role"] == "subspace"]
    assert sub and all(r["identity"]["fwht_backend"] == "fht-cpu" for r in sub)
