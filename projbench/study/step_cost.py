"""Per-step cost of a study's runs: measured on the device, then scaled to runs and a study.

:func:`measure_step_cost` times a few optimisation steps of the full model and of a
SubspaceModel (one projection at one d), and a few evaluation batches of each (of at most
:data:`MAX_EVAL_BATCH` examples: b_eval is that size), on the run's device with the run's
torch thread count and random data of the dataset's shape (time does not depend on values).
Each timed loop aims at :data:`MEASURE_BUDGET_S` seconds after one warm-up.

From those times, with b the measured batch size:

* another batch size b' is scaled as t_full(b') = t_full(b)·b'/b and
  t_sub(b') = t_sub(b) − t_full(b) + t_full(b') (the projection's cost is per step, not per
  example) — :func:`step_seconds`;
* a run of S steps, ``burn_in`` full-model steps and E evaluations over N_test examples costs
  S·t_step + burn_in·t_full + E·⌈N_test / b_eval⌉·t_eval — :func:`run_seconds`;
* a group of runs costs the sum over its runs, (fewest, most) — :func:`total_seconds`; T
  device-seconds (CPU- or GPU-hours) take T / N wall seconds on N workers
  (:func:`wall_seconds`), which holds only while N workers have N × threads cores: N jobs on
  fewer cores do not scale. Worker start-up (importing torch, ~3 s) and data loading are left
  out.

The timings are those of the machine the measurement runs on, at its current load
(:func:`load_inflation` bounds how much a busy machine inflates them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.recipe import Recipe

if TYPE_CHECKING:
    from projbench.study.plan import RunGroup

__all__ = [
    "MAX_EVAL_BATCH",
    "MEASURE_BUDGET_S",
    "StepCost",
    "load_inflation",
    "measure_step_cost",
    "run_seconds",
    "step_seconds",
    "total_seconds",
    "wall_seconds",
]

#: seconds each timed loop aims at (full steps, subspace steps, and evaluation batches of each)
MEASURE_BUDGET_S = 1.5
#: timed optimisation steps per measurement: at least, at most (a model whose first step takes
#: longer than the budget is timed on that step alone)
MIN_TIMED_STEPS, MAX_TIMED_STEPS = 2, 50
#: the largest evaluation batch timed; evaluation is costed as batches of at most this size
MAX_EVAL_BATCH = 256


# ------------------------------------------------------------------------------------------
# cost arithmetic (pure)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCost:
    """Measured seconds per optimisation step (``batch_size`` examples) of the full model and of
    its SubspaceModel (``projection`` at ``d``), and per evaluation batch (``eval_batch``
    examples) of each; ``device`` and ``threads`` say where."""

    full_step_s: float
    subspace_step_s: float | None
    full_eval_s: float
    subspace_eval_s: float | None
    batch_size: int
    eval_batch: int
    projection: str
    d: int
    device: str
    threads: int
    note: str = ""


def step_seconds(cost: StepCost, kind: str, batch_size: int) -> float | None:
    """Seconds per step at ``batch_size``: the full model's time scales with the batch,
    t_full(b') = t_full(b)·b'/b; a subspace step adds its measured projection overhead
    t_sub(b) − t_full(b), which does not depend on the batch."""
    full = cost.full_step_s * batch_size / cost.batch_size
    if kind != "subspace":
        return full
    if cost.subspace_step_s is None:
        return None
    return full + max(cost.subspace_step_s - cost.full_step_s, 0.0)


def run_seconds(group: RunGroup, cost: StepCost, n_test: int) -> float | None:
    """One run of ``group``: S·t_step + burn_in·t_full + E·⌈N_test / b_eval⌉·t_eval."""
    step = step_seconds(cost, group.kind, group.batch_size)
    evaluation = cost.subspace_eval_s if group.kind == "subspace" else cost.full_eval_s
    if step is None or evaluation is None:
        return None
    burn = group.burn_in * (step_seconds(cost, "full", group.batch_size) or 0.0)
    return group.steps * step + burn + group.evaluations * math.ceil(n_test / cost.eval_batch) * evaluation


def total_seconds(groups: Sequence[RunGroup], cost: StepCost, n_test: int) -> tuple[float, float] | None:
    """(fewest, most) device-seconds of all the runs of ``groups``; None when a kind's cost is
    unknown (e.g. the projection could not be built at the measured d)."""
    lo = hi = 0.0
    for g in groups:
        seconds = run_seconds(g, cost, n_test)
        if seconds is None:
            return None
        lo += g.count[0] * seconds
        hi += g.count[1] * seconds
    return lo, hi


def wall_seconds(device_seconds: float, workers: int) -> float:
    """Wall time on ``workers`` concurrent runs: T / N (no start-up, perfect packing)."""
    if workers < 1:
        raise InvalidArgumentError(f"workers must be >= 1, got {workers}")
    return device_seconds / workers


def load_inflation(load_average: float, cores: int) -> float:
    """How much slower a single-threaded timing may be on a loaded machine: with L runnable
    threads besides ours on C cores, ours gets about C / (L + 1) of a core when L + 1 > C, so
    timings inflate by max(1, (L + 1) / C). (The load average counts our own process too once
    it has run a while; this is a rough upper figure, not a correction.)"""
    return max(1.0, (load_average + 1.0) / max(cores, 1))


# ------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------
def _timed_steps(model: Any, batch: tuple[Any, Any], recipe: Recipe, device: str, budget_s: float) -> float:
    """Seconds per optimisation step of ``model`` (the real :func:`projbench.training.train`
    loop, no evaluation): one warm-up step, then n steps with n from the warm-up's time and
    ``budget_s``."""
    from projbench.training import train

    x, y = batch

    def run(steps: int) -> float:
        data = (x.repeat(steps, *([1] * (x.dim() - 1))), y.repeat(steps))
        plain = recipe.with_(epochs=1, max_steps=steps, schedule="none")
        return train(model, data, None, plain, seed=0, device=device).wall_s

    warm = run(1)
    if warm >= budget_s:  # a slow model: the warm-up step is the measurement (an upper figure)
        return warm
    steps = int(min(max(budget_s / max(warm, 1e-6), MIN_TIMED_STEPS), MAX_TIMED_STEPS))
    return run(steps) / steps


def _timed_eval(model: Any, batch: tuple[Any, Any], device: str, budget_s: float) -> float:
    """Seconds per evaluation batch (:func:`projbench.training.evaluate`), after one warm-up."""
    from projbench.training import evaluate

    t0 = time.perf_counter()
    evaluate(model, batch, batch[0].shape[0], device)
    warm = time.perf_counter() - t0
    if warm >= budget_s / 3:
        return warm
    repeats = int(min(max(budget_s / 3 / max(warm, 1e-6), 1), 20))
    t0 = time.perf_counter()
    for _ in range(repeats):
        evaluate(model, batch, batch[0].shape[0], device)
    return (time.perf_counter() - t0) / repeats


def _random_batch(dataset: str, n: int, dtype: Any) -> tuple[Any, Any]:
    """``n`` random inputs of ``dataset``'s shape and random labels (time does not depend on values)."""
    import torch

    from projbench.manager import get_registry

    ds = get_registry("datasets").get(dataset)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *ds.input_shape, generator=gen).to(dtype)
    return x, torch.randint(0, int(ds.num_classes), (n,), generator=gen)


def measure_step_cost(
    architecture: str,
    dataset: str,
    projection: str,
    options: Mapping[str, Any] | None = None,
    *,
    d: int,
    recipe: Recipe,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int = 1,
    per_layer: bool = False,
    budget_s: float = MEASURE_BUDGET_S,
) -> StepCost:
    """Time optimisation steps and evaluation batches of ``make_model(architecture, dataset)``
    and of its SubspaceModel (``projection`` at ``d``) on ``device`` with ``threads`` torch
    threads; random data of the dataset's shape. Each timed loop aims at ``budget_s`` seconds
    (so about 4·budget_s in all, plus building the models). A projection that cannot be built
    at ``d`` (e.g. over its memory budget) leaves the subspace times None, with the reason in
    ``note``."""
    import torch

    from projbench.architectures import make_model
    from projbench.cliutils import resolve_device
    from projbench.subspace import SubspaceModel

    resolve_device(device)  # a CUDA device without CUDA: one line
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train_batch = _random_batch(dataset, recipe.batch_size, torch_dtype)
        eval_n = min(recipe.eval_batch_size, MAX_EVAL_BATCH)
        eval_batch = _random_batch(dataset, eval_n, torch_dtype)
        model = make_model(architecture, dataset, seed=0).to(dtype=torch_dtype)
        full_eval = _timed_eval(model.to(device), eval_batch, device, budget_s)
        full_step = _timed_steps(model, train_batch, recipe, device, budget_s)
        sub_step = sub_eval = None
        note = ""
        try:
            fresh = make_model(architecture, dataset, seed=0).to(dtype=torch_dtype)
            sm = SubspaceModel(fresh, projection, d, seed=0, per_layer=per_layer, device=device,
                               **dict(options or {}))
            sub_eval = _timed_eval(sm, eval_batch, device, budget_s)
            sub_step = _timed_steps(sm, train_batch, recipe, device, budget_s)
        except ProjbenchError as err:
            note = f"{projection} at d={d} not measured: {err}"
        return StepCost(full_step, sub_step, full_eval, sub_eval, recipe.batch_size, eval_n, projection,
                        d, device, threads, note)
    finally:
        torch.set_num_threads(previous)
