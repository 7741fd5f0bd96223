"""Studies on the real data sets in $PROJBENCH_DATA (slow: run with -m slow)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from projbench.executors import ProcessPool
from projbench.intrinsic import find_intrinsic_dim

DATA = os.environ.get("PROJBENCH_DATA")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA, reason="set PROJBENCH_DATA to the folder with MNIST/ and CIFAR-10"),
]




@pytest.mark.parametrize(("arch", "dataset"), [("lenet", "cifar10"), ("fc", "mnist")])
def test_one_pair_study_on_real_data(arch: str, dataset: str, tmp_path: Path) -> None:
    if not (Path(DATA or "") / ("cifar-10-batches-py" if dataset == "cifar10" else "MNIST")).exists():
        pytest.skip(f"{dataset} files are not in {DATA}")
    pool = ProcessPool(2)
    try:
        out = find_intrinsic_dim(arch, dataset, ["fastjl"], seeds=[0, 1], search="grid", grid=[50, 3000],
                                 baseline="local", recipe={"lr": 3e-3, "epochs": 1}, train_subset=5000,
                                 out=tmp_path / "s", pool=pool, data_dir=DATA)
    finally:
        pool.close()
    row = out.rows[0]
    chance = 0.1
    assert row["baseline_accuracy"] > 2 * chance, row  # LeNet on 5k CIFAR-10 images, 1 epoch: ~0.28
    assert row["status"] in ("ok", "not reached") and row["runs"] == 2 + 4
    accs = row["curve"]
    assert sum(accs[3000]) / 2 > sum(accs[50]) / 2  # more dimensions, better accuracy
