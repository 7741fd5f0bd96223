"""The memory suite's measurement has no side effects a caller can see: Python output stays
visible while native profiler output is silenced, and the CUDA peak counter is not reset."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from projbench.metrics.memory import peak_cpu_profiler
    out, err = sys.stdout, sys.stderr

    def step():
        print("PY-STDOUT-VISIBLE", flush=True)
        print("PY-STDERR-VISIBLE", file=sys.stderr, flush=True)
        torch.ones(1 << 18).sum()

    for _ in range(2):
        peak = peak_cpu_profiler(step)
    assert sys.stdout is out and sys.stderr is err, "sys streams not restored"
    print("PEAK", peak)
    print("AFTER-VISIBLE", file=sys.stderr)
""")


def test_profiler_silences_native_output_but_not_python() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("PY-STDOUT-VISIBLE") == 2
    assert proc.stderr.count("PY-STDERR-VISIBLE") == 2 and "AFTER-VISIBLE" in proc.stderr
    assert "profiler_start" not in proc.stderr + proc.stdout  # kineto's C++ lines
    peak = int(proc.stdout.split("PEAK")[1].split()[0])
    assert peak >= (1 << 18) * 4  # the ones() tensor at least


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_memory_measurement_keeps_the_cuda_peak_counter() -> None:
    from projbench import make_projection
    from projbench.metrics.memory import measure_step_memory

    big = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
    del big
    before = torch.cuda.max_memory_allocated()
    P = make_projection("fastjl", 16, 4096, device="cuda")
    mem = measure_step_memory(P)
    assert mem["peak_step_bytes"] > 0
    if mem["peak_method"] == "torch_profiler":
        assert torch.cuda.max_memory_allocated() >= before
    else:  # the documented fallback records what it reset
        assert mem["cuda_peak_before_bytes"] >= before
