"""A third-party projection whose code hangs or crashes its process during the contract checks
that ``run`` and ``study`` apply first is refused in one line (its checks run in a child process
with a deadline, ``PROJBENCH_CONTRACT_TIMEOUT``); nothing is created. Built-ins keep running their
checks in the driver, and give the same verdicts in a child.

The plugins are real on-disk distributions (module + ``.dist-info`` with an entry point in the
``projbench`` group) on the ``PYTHONPATH`` of a real ``projbench`` subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from projbench.benchmark import ProjectionCheckError, check_projection_contracts, contract_timeout
from projbench.errors import InvalidArgumentError
from projbench.suites import RunSettings

CLI = "import sys; sys.argv[0] = 'projbench'; from projbench.cli import main; main()"

# A dense Gaussian projection whose forward hangs, crashes or breaks linearity, as the file
# trap_mode.txt beside it says (no file: it is fine).
TRAP = '''
import ctypes, pathlib, time, torch, projbench

MODE = pathlib.Path(__file__).with_name("trap_mode.txt")

class Trap(projbench.Projection):
    """Dense Gaussian; forward per trap_mode.txt: hang, segfault, nonlinear, or fine."""
    name = "trap"

    def __init__(self, d, D, *, seed=0, device=None, dtype=torch.float32):
        super().__init__(d, D, seed=seed, device=device, dtype=dtype)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("matrix", (torch.randn(D, d, generator=g, dtype=torch.float64) / D**0.5)
                             .to(device=device, dtype=dtype))

    def forward(self, theta):
        mode = MODE.read_text().strip() if MODE.exists() else "fine"
        if mode == "hang":
            time.sleep(1000)
        elif mode == "segfault":
            ctypes.string_at(0)
        out = theta @ self.matrix.T
        return out + 1.0 if mode == "nonlinear" else out

    def adjoint(self, y):
        return y @ self.matrix

@projbench.hookimpl
def projbench_register_projections(registry):
    registry.add(Trap)
'''

STUDY = """
seeds = 1
projections = ["trap"]
[search]
method = "grid"
grid = [8]
[recipe]
epochs = 1
max_steps = 2
[[pairs]]
architecture = "mlp"
dataset = "digits"
"""


@pytest.fixture
def site(tmp_path: Path, install_fake_distribution) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    install_fake_distribution(root, "trap", "trap_plugin", TRAP, "trap")
    return root


def run_cli(root: Path, cwd: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROJBENCH_DISABLE_PLUGINS", "PROJBENCH_PREFER", "PROJBENCH_CONTRACT_TIMEOUT")}
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def said(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def command(kind: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "out"
    if kind == "run":
        return ["run", "--proj", "trap", "--suite", "distortion", "--out", str(out)]
    spec = tmp_path / "trap.toml"
    spec.write_text(STUDY)
    return ["study", str(spec), "--out", str(out), "--no-figures"]


@pytest.mark.parametrize(("kind", "mode"), [
    ("run", "hang"), pytest.param("study", "hang", marks=pytest.mark.slow),
    pytest.param("run", "segfault", marks=pytest.mark.slow),
    pytest.param("study", "segfault", marks=pytest.mark.slow),
])
def test_a_projection_that_hangs_or_crashes_in_its_checks_is_refused_in_one_line(
        site: Path, tmp_path: Path, kind: str, mode: str) -> None:
    (site / "trap_mode.txt").write_text(mode)
    start = time.monotonic()
    proc = run_cli(site, tmp_path, *command(kind, tmp_path), PROJBENCH_CONTRACT_TIMEOUT="1")
    assert time.monotonic() - start < 240  # the projection sleeps for 1000 s
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = said(proc)
    assert line.startswith("Error: projection 'trap' (plugin 'trap') ")
    if mode == "hang":
        assert "did not finish the contract checks of projbench.testing within 1 s" in line
        assert "PROJBENCH_CONTRACT_TIMEOUT" in line
    else:
        assert "crashed the process running the contract checks" in line
        assert "was killed by SIGSEGV" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_projection_that_passes_its_checks_in_the_child_is_measured(site: Path, tmp_path: Path) -> None:
    proc = run_cli(site, tmp_path, *command("run", tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "3 cases: 3 ok" in proc.stderr


def test_a_bad_contract_timeout_is_one_line_and_no_file(site: Path, tmp_path: Path) -> None:
    proc = run_cli(site, tmp_path, *command("run", tmp_path), PROJBENCH_CONTRACT_TIMEOUT="soon")
    assert proc.returncode == 1
    assert said(proc) == ["Error: PROJBENCH_CONTRACT_TIMEOUT must be a positive number of seconds, "
                          "got 'soon'"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "soon"])
def test_contract_timeout_refuses_what_is_not_a_positive_number(monkeypatch, raw: str) -> None:
    monkeypatch.setenv("PROJBENCH_CONTRACT_TIMEOUT", raw)
    with pytest.raises(InvalidArgumentError, match="PROJBENCH_CONTRACT_TIMEOUT must be a positive"):
        contract_timeout()
    monkeypatch.setenv("PROJBENCH_CONTRACT_TIMEOUT", "2.5")
    assert contract_timeout() == 2.5
    monkeypatch.delenv("PROJBENCH_CONTRACT_TIMEOUT")
    assert contract_timeout() == 60.0


# ------------------------------------------------------------------------------------------
# the same verdicts in the driver and in a child process
# ------------------------------------------------------------------------------------------
@pytest.fixture
def trap_on_path(site: Path, monkeypatch, fresh_manager) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(site))
    for name in ("PROJBENCH_DISABLE_PLUGINS", "PROJBENCH_PREFER", "PROJBENCH_CONTRACT_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    yield
    sys.modules.pop("trap_plugin", None)


def test_builtins_pass_their_checks_in_the_driver_and_in_a_child() -> None:
    for isolate in (False, True):
        check_projection_contracts(["fastjl", "sparse"], RunSettings(), isolate=isolate)


def test_a_contract_violation_reads_the_same_in_the_driver_and_in_a_child(site: Path, trap_on_path) -> None:
    (site / "trap_mode.txt").write_text("nonlinear")
    messages = []
    for isolate in (False, True):
        with pytest.raises(ProjectionCheckError) as info:
            check_projection_contracts(["trap"], RunSettings(), isolate=isolate)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("projection 'trap' (plugin 'trap') fails the contract checks")
