"""Every committed, finished study folder under results/ still resumes with today's code and
preset: the same spec (nothing differs), every run it plans already recorded, zero new runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from projbench.study.driver import run_study
from projbench.study.spec_files import load_spec
from projbench.study.store import read_study

RESULTS = Path(__file__).resolve().parent.parent / "results"
#: folders of studies still being run (a resume would train their missing runs)
IN_PROGRESS = {"study-robustness-converged"}
FOLDERS = sorted(p.name for p in RESULTS.glob("study-*") if p.name not in IN_PROGRESS)


class RefusingPool:
    """A pool that trains nothing: any run submitted is a run the folder lacks."""

    name = "refusing"
    workers = 1

    def submit(self, fn: Any, spec: Any, *args: Any) -> Any:
        raise AssertionError(f"the committed study would train {spec.label()} again")


def _refuse_training(*args: Any) -> dict[str, Any]:
    raise AssertionError("nothing may be trained")


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_committed_study_resumes_with_zero_new_runs(folder: str, tmp_path: Path) -> None:
    stored = read_study(RESULTS / folder)
    if not stored.ended:
        pytest.skip(f"{folder} is not finished")
    copy = tmp_path / folder
    shutil.copytree(RESULTS / folder, copy, ignore=shutil.ignore_patterns("figures", "*.lock"))
    weights = {p.name: p.read_bytes() for p in (copy / "theta0").glob("*.pt")}  # pretrained θ₀, if any
    spec = load_spec(str(stored.spec["name"]))  # the preset as shipped now
    outcome = run_study(spec, copy, pool=RefusingPool(), run_fn=_refuse_training, check_inputs=False)
    assert outcome.trained == 0 and outcome.failed_runs == 0 and outcome.reused > 0
    assert {p.name: p.read_bytes() for p in (copy / "theta0").glob("*.pt")} == weights
