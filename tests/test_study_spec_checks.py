"""`projbench study` checks everything before it makes the study folder: every spec value's type
and range, the projections' contract checks, the data, the Ray cluster and the --out folder.
A mistake is one line (no traceback) with a non-zero exit, and no folder is left behind that a
corrected spec would be refused as "a different study". Refusals that stop before any work run the
command line in-process (``cli_in_process``); whatever starts workers, plugins or a study runs it
in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SEARCH = """\
[search]
method = "grid"
grid = [4, 64]
baseline = "local"
"""


def spec_text(
    *, top: str = "", seeds: str = "1", projections: str = '["fastjl"]', search: str = SEARCH,
    run: str = "", tables: str = "",
) -> str:
    """A tiny study on the embedded digits (three short runs), with pieces replaced."""
    return (
        f"{top}\nseeds = {seeds}\nprojections = {projections}\n{search}"
        "[recipe]\nlr = 1e-2\nepochs = 2\nmax_steps = 5\nbatch_size = 64\n"
        f"[run]\n{run}\n{tables}\n"
        '[[pairs]]\narchitecture = "mlp"\ndataset = "digits"\n'
    )


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PROJBENCH_DOWNLOAD": "0", **(env or {})}
    cmd = [sys.executable, "-m", "projbench.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command (asserting there is exactly one)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def refuse(tmp_path: Path, cli_in_process: Callable[..., Any]) -> Callable[..., str]:
    """``refuse(text, *extra)``: run the study ``text`` into tmp_path/out; assert it is refused
    in one line and made no folder; return the line."""

    def refused(text: str | bytes, *extra: str) -> str:
        spec = tmp_path / "study.toml"
        spec.write_bytes(text if isinstance(text, bytes) else text.encode())
        out = tmp_path / "out"
        line = one_line_error(cli_in_process("study", str(spec), "--out", str(out), "--no-figures", *extra))
        assert not out.exists(), line
        return line

    return refused


CUDA = subprocess.run(
    [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True, text=True
).stdout.strip() == "True"

BAD_SPECS = {
    "per_layer as a quoted string": (spec_text(run='per_layer = "false"'), ["per_layer", "true or false"]),
    "negative train_subset": (spec_text(run="train_subset = -5"), ["train_subset", "-5"]),
    "train_subset beyond the dataset": (spec_text(run="train_subset = 10000000"), ["train_subset", "1,437"]),
    "train_subset as a word": (spec_text(run='train_subset = "all"'), ["train_subset", "'all'"]),
    "zero test_subset": (spec_text(run="test_subset = 0"), ["test_subset"]),
    "zero threads": (spec_text(run="threads = 0"), ["threads", "1..256"]),
    "threads as a word": (spec_text(run='threads = "two"'), ["threads", "'two'"]),
    "threads beyond any machine": (spec_text(run="threads = 100000"), ["threads", "100000"]),
    "a hundred billion seeds": (spec_text(seeds="100000000000"), ["seeds", "10000"]),
    "repeated seeds": (spec_text(seeds="[1, 1]"), ["seeds"]),
    "projection options as a list": (
        spec_text(projections='[{label = "x", name = "fastjl", options = [1, 2]}]'), ["options", "[1, 2]"]
    ),
    "search as a number": (spec_text(top="search = 5", search=""), ["search", "table"]),
    "description as a number": (spec_text(top="description = 5"), ["description", "string"]),
    "name as a list": (spec_text(top="name = [1]"), ["name", "[1]"]),
    "unknown device": (spec_text(run='device = "gpu"'), ["device", "'gpu'"]),
    "unknown FWHT backend": (spec_text(run='fwht_backend = "nope"'), ["fwht_backend", "nope"]),
    "zero batch size on an axis": (spec_text(tables="[axes]\nbatch_size = [0]"), ["batch_size"]),
    "negative learning rate on an axis": (spec_text(tables="[axes]\nlr = [-1]"), ["lr", "-1"]),
    "negative burn-in on an axis": (spec_text(tables="[axes]\nburn_in = [-3]"), ["burn_in", "-3"]),
    "a repeated axis value": (spec_text(tables="[axes]\nlr = [0.01, 0.01]"), ["lr", "more than once"]),
    "a pair that is not a table": (spec_text(top="pairs = [1]").split("[[pairs]]")[0], ["pairs[0]"]),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_a_bad_spec_value_is_refused_in_one_line_before_any_folder(
    case: str, refuse: Callable[..., str]
) -> None:
    text, words = BAD_SPECS[case]
    line = refuse(text)
    assert line.startswith("Error: ") and all(w in line for w in words), line


@pytest.mark.skipif(CUDA, reason="CUDA is available here")
def test_cuda_without_cuda_is_refused_in_one_line(refuse: Callable[..., str]) -> None:
    assert "CUDA is not available" in refuse(spec_text(run='device = "cuda"'))


def test_a_study_file_that_is_not_utf8_is_refused_in_one_line(refuse: Callable[..., str]) -> None:
    text = spec_text(top='description = "caf\xe9"').encode("latin-1")
    assert "not UTF-8" in refuse(text)


@pytest.mark.parametrize(
    ("option", "value"), [("--threads", "100000"), ("--seeds", "100000000000")]
)
def test_out_of_range_command_line_overrides_are_refused_in_one_line(
    option: str, value: str, refuse: Callable[..., str]
) -> None:
    line = refuse(spec_text(), option, value)
    assert option in line and value in line


def test_after_a_refusal_the_corrected_spec_runs_in_the_same_folder(
    tmp_path: Path, refuse: Callable[..., str]
) -> None:
    refuse(spec_text(run='per_layer = "false"'))
    spec = tmp_path / "study.toml"
    spec.write_text(spec_text(run="per_layer = false"))
    proc = cli("study", str(spec), "--out", str(tmp_path / "out"), "--no-figures")
    assert proc.returncode == 0, proc.stderr
    assert "3 runs trained" in proc.stderr


# ------------------------------------------------------------------------------------------
# projections that break the contract, as a third-party plugin
# ------------------------------------------------------------------------------------------
BROKEN_PLUGIN = '''
import torch, projbench

class Squares(projbench.Projection):
    """Returns the square of what a projection should return."""
    name = "squares"
    def forward(self, theta):
        return torch.cat([theta, theta.new_zeros(*theta.shape[:-1], self.D - self.d)], -1) ** 2
    def adjoint(self, y):
        return y[..., : self.d]

class NaNs(projbench.Projection):
    """Returns NaN everywhere."""
    name = "nans"
    def forward(self, theta):
        return theta.new_full((*theta.shape[:-1], self.D), float("nan"))
    def adjoint(self, y):
        return y.new_full((*y.shape[:-1], self.d), float("nan"))

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(Squares)
    registry.add(NaNs)
'''


@pytest.fixture
def broken_plugin(tmp_path: Path) -> dict[str, str]:
    """A real on-disk distribution registering two broken projections; the env that finds it."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "brokenproj_plugin.py").write_text(textwrap.dedent(BROKEN_PLUGIN))
    info = root / "brokenproj-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenproj\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[projbench]\nbrokenproj = brokenproj_plugin\n")
    return {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.parametrize("name", [pytest.param("squares", marks=pytest.mark.slow), "nans"])
def test_study_refuses_a_projection_that_fails_the_contract_checks(
    tmp_path: Path, broken_plugin: dict[str, str], name: str
) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(spec_text(projections=f'["{name}"]'))
    out = tmp_path / "out"
    line = one_line_error(cli("study", str(spec), "--out", str(out), env=broken_plugin))
    assert f"projection {name!r} (plugin 'brokenproj') fails the contract checks" in line
    assert not out.exists()


@pytest.mark.slow
def test_intrinsic_dim_refuses_a_projection_that_fails_the_contract_checks(
    tmp_path: Path, broken_plugin: dict[str, str]
) -> None:
    args = ["intrinsic-dim", "--arch", "mlp", "--dataset", "digits", "--proj", "nans", "--seeds", "1",
            "--search", "grid", "--grid", "4,64", "--max-steps", "5", "--out", str(tmp_path / "out")]
    line = one_line_error(cli(*args, env=broken_plugin))
    assert "projection 'nans' (plugin 'brokenproj') fails the contract checks" in line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------
# data, cluster, folders
# ------------------------------------------------------------------------------------------
def test_missing_data_is_one_line_and_makes_no_folder(tmp_path: Path, refuse: Callable[..., str]) -> None:
    empty = tmp_path / "no-data"
    empty.mkdir()
    text = spec_text().replace('"mlp"', '"fc"').replace('"digits"', '"mnist"')
    line = refuse(text, "--data-dir", str(empty))
    assert "'mnist'" in line and "not found" in line


def test_an_unreachable_ray_cluster_is_one_line_after_the_timeout(refuse: Callable[..., str]) -> None:
    pytest.importorskip("ray")
    ray = ("--executor", "ray", "--address", "127.0.0.1:1", "--ray-timeout", "2")
    line = refuse(spec_text(), *ray)
    assert "no Ray cluster answers at 127.0.0.1:1 within 2 s" in line


@pytest.mark.slow
def test_the_ray_timeout_comes_from_the_environment_too(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = tmp_path / "study.toml"
    spec.write_text(spec_text())
    out = tmp_path / "out"
    args = ("study", str(spec), "--out", str(out), "--executor", "ray", "--address", "127.0.0.1:1")
    assert "within 1.5 s" in one_line_error(cli(*args, env={"PROJBENCH_RAY_TIMEOUT": "1.5"}, timeout=120))
    bad = one_line_error(cli(*args, env={"PROJBENCH_RAY_TIMEOUT": "soon"}, timeout=120))
    assert "PROJBENCH_RAY_TIMEOUT" in bad and "'soon'" in bad
    assert not out.exists()


def test_a_symlinked_out_is_followed_to_its_folder(tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(spec_text())
    target = tmp_path / "elsewhere" / "real"
    link = tmp_path / "link"
    link.symlink_to(target)  # dangling until the study makes the folder
    proc = cli("study", str(spec), "--out", str(link), "--no-figures")
    assert proc.returncode == 0, proc.stderr
    assert (target / "study.jsonl").is_file()
    assert proc.stdout.splitlines()[0] == str((target / "study.jsonl").resolve())


def test_a_study_file_linked_out_of_the_folder_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "study.toml"
    spec.write_text(spec_text())
    out = tmp_path / "out"
    out.mkdir()
    (out / "study.jsonl").symlink_to(tmp_path / "outside.jsonl")
    line = one_line_error(cli("study", str(spec), "--out", str(out)))
    assert "symbolic link" in line and "outside the study folder" in line
    assert not (tmp_path / "outside.jsonl").exists()


def test_report_of_a_folder_whose_stored_spec_has_wrong_types_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "damaged"
    folder.mkdir()
    spec = {"name": "x", "seeds": "many", "projections": ["fastjl"], "axes": {}, "direct": {},
            "pairs": [{"architecture": "mlp", "dataset": "digits", "projections": ["fastjl"],
                       "search": {}, "recipe": {}, "run": {"threads": "two"}}]}
    header = {"type": "study", "schema": 1, "study_id": "x", "time": "t", "spec": spec, "env": {}}
    (folder / "study.jsonl").write_text(json.dumps(header) + "\n")
    line = one_line_error(cli("report", str(folder)))
    assert "stored study spec is damaged" in line and "seeds" in line
