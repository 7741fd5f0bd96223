"""What a result records about the machine it was made on: the CPU's vector unit, whose
rounding makes one recipe give slightly different accuracies on two CPUs."""

from __future__ import annotations

import torch

from projbench.recipe import Recipe
from projbench.results import environment_info
from projbench.training_runs import RunSpec, execute_run


def test_run_headers_and_trained_runs_record_the_cpu_capability() -> None:
    capability = torch.backends.cpu.get_cpu_capability()
    assert capability  # e.g. "AVX2", "AVX512", "DEFAULT"
    assert environment_info()["machine"]["cpu_capability"] == capability
    spec = RunSpec(architecture="fc", dataset="digits", seed=0, recipe=Recipe(epochs=1, max_steps=2))
    record = execute_run(spec)
    assert record["status"] == "ok", record
    assert record["worker"]["cpu_capability"] == capability
    assert "cpu_capability" not in record["identity"]  # a fact about the machine, not the run
