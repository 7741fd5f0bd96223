"""The CPU allocator policy (projbench.allocator): real processes, real malloc, no timing.

The effect is checked where it lives, in page-fault counts: once malloc has settled, allocating
and writing a 64 MiB tensor again must not fault its pages in anew under ``retain`` (the freed
block is reused, already resident) nor grow the process, and must fault them under ``system``
(glibc unmaps blocks above 32 MiB on free) — the second half shows that the first can fail.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from projbench.allocator import POLICY_ENV, allocator_info, glibc_version, tune_cpu_allocator
from projbench.errors import InvalidArgumentError

REPO = Path(__file__).resolve().parent.parent
needs_glibc = pytest.mark.skipif(
    glibc_version() is None or not Path("/proc/self/status").exists(), reason="glibc malloc on Linux only"
)

RSS_PROBE = r"""
import json, resource
import torch
from projbench.allocator import tune_cpu_allocator

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

info = tune_cpu_allocator()
n = 16 << 20  # 64 MiB of float32
faults, sizes = [], []
for _ in range(40):  # allocate, write, free
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(n).fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    sizes.append(rss())
print(json.dumps({"info": info, "faults": faults, "rss": sizes}))
"""


def _probe(policy: str) -> dict:
    env = {**os.environ, POLICY_ENV: policy}
    out = subprocess.run([sys.executable, "-c", RSS_PROBE], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_glibc
def test_retain_reuses_freed_large_blocks_and_system_faults_them_anew() -> None:
    retain, system = _probe("retain"), _probe("system")
    assert retain["info"]["policy"] == "retain" and retain["info"]["applied"]
    assert system["info"] == {"policy": "system", "applied": False, "libc": f"glibc {glibc_version()}",
                              "reason": "malloc left as it is"}
    pages = (64 << 20) // resource.getpagesize()
    # Once settled, each cycle reuses a freed block, already resident: no page faults, and the
    # process stops growing. (Settling takes up to ~10 cycles: posix_memalign pads each request,
    # so a freed block of the same size fits only after it coalesces with a neighbour.)
    assert sum(retain["faults"][-10:]) < pages // 16, retain["faults"]
    assert retain["rss"][-1] - retain["rss"][-11] < 4 << 20, retain["rss"]
    # glibc's own policy unmaps the block on free, so every cycle faults all 64 MiB in again
    assert min(system["faults"][-10:]) >= pages, system["faults"]


def test_bad_policy_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArgumentError, match="policy must be one of retain, system; got 'fast'"):
        tune_cpu_allocator("fast")
    monkeypatch.setenv(POLICY_ENV, "turbo")
    with pytest.raises(InvalidArgumentError, match=r"\$PROJBENCH_CPU_ALLOCATOR must be one of .*'turbo'"):
        tune_cpu_allocator()


def test_cli_reports_a_bad_policy_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from projbench.cli import cli

    monkeypatch.setenv(POLICY_ENV, "turbo")
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 1
    assert "PROJBENCH_CPU_ALLOCATOR must be one of retain, system; got 'turbo'" in result.output
    assert "Traceback" not in result.output


@needs_glibc
def test_policy_is_recorded_where_runs_happen() -> None:
    """The run header (environment_info) and every trained run's worker say which policy ran."""
    from projbench.recipe import Recipe
    from projbench.results import environment_info
    from projbench.training_runs import RunSpec, execute_run

    tune_cpu_allocator("retain")
    assert allocator_info()["policy"] == "retain"
    assert environment_info()["cpu_allocator"]["policy"] == "retain"
    spec = RunSpec(architecture="fc", dataset="digits", seed=0, recipe=Recipe(epochs=1, max_steps=2))
    record = execute_run(spec)
    assert record["status"] == "ok", record
    assert record["worker"]["cpu_allocator"] == "retain"


LIBRARY_PROBE = r"""
import json, resource
import torch
import projbench
from projbench.allocator import allocator_info
from projbench.intrinsic import find_intrinsic_dim

out = find_intrinsic_dim("mlp", "digits", ["fastfood"], seeds=1, search="grid", grid=[8],
                         baseline="local", recipe={"epochs": 1, "max_steps": 5, "lr": 1e-2})
n = 16 << 20  # 64 MiB of float32
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(n).fill_(1.0)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"info": allocator_info(), "faults": faults, "rows": len(out.rows)}))
"""


@needs_glibc
def test_the_library_leaves_the_callers_malloc_alone() -> None:
    """Importing projbench and running a study inline (find_intrinsic_dim) applies no malloc
    policy: the caller's process still faults a freed 64 MiB block in anew on every cycle."""
    env = {k: v for k, v in os.environ.items() if k != POLICY_ENV}
    proc = subprocess.run([sys.executable, "-c", LIBRARY_PROBE], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rows"] == 1 and result["info"]["applied"] is False
    pages = (16 << 20) * 4 // 4096
    assert min(result["faults"][-6:]) >= pages, result["faults"]
