"""What a study will cost before it runs (``projbench study SPEC --dry-run``).

Per (architecture, dataset) pair, with N the training examples (the dataset's training split,
or ``train_subset`` when smaller), b the batch size and N_test the test examples:

* **runs** — baselines: one per seed and distinct baseline recipe (the global baseline trains
  lr/3, lr and 3·lr, so 3 × seeds per recipe; variants that differ only in burn-in share them);
  θ₀ pretrainings: one per distinct pretraining (on its ``train_subset``, else N examples);
  subspace runs: one search per (projection, seed, variant), each taking between
  :func:`chain_run_range` runs (the fewest and the most over every outcome that reaches the
  target; a search that does not reach it stops after its first round); direct networks:
  sizes × learning rates × seeds per distinct recipe (at most: equal sizes are trained once).
* **steps per run** — S = epochs · ⌈N / b⌉, capped at ``max_steps``; a subspace run after
  burn-in also takes ``burn_in`` full-model steps.
* **evaluations per run** — E, the learning curve's evaluation points
  (:meth:`projbench.recipe.Recipe.eval_points`), each a forward pass over ⌈N_test / b_eval⌉
  batches.
* **cost** — per-step and per-evaluation times measured on the pair's device
  (:func:`projbench.study.step_cost.measure_step_cost`, with the subspace model at
  :func:`mid_d`), and from them each run's, the pair's and the study's device-seconds and the
  wall time on the executor's workers (:mod:`projbench.study.step_cost` gives the arithmetic).

:func:`plan_pair` puts these together for one pair; :func:`plan_table` and
:func:`summary_lines` are what ``study --dry-run`` prints.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from projbench.errors import InvalidArgumentError, ProjbenchError
from projbench.recipe import Recipe
from projbench.search import KSectionSearch
from projbench.study.step_cost import (
    MEASURE_BUDGET_S,
    StepCost,
    load_inflation,
    measure_step_cost,
    run_seconds,
    total_seconds,
    wall_seconds,
)

#: (train, test) examples of the built-in datasets, used when their files are not here
KNOWN_SPLIT_SIZES: dict[str, tuple[int, int]] = {
    "digits": (1437, 360),
    "mnist": (60000, 10000),
    "fashion-mnist": (60000, 10000),
    "cifar10": (50000, 10000),
}
#: above this many simulated outcomes, :func:`chain_run_range` samples d* log-uniformly
_MAX_EXACT_OUTCOMES = 4096


# ------------------------------------------------------------------------------------------
# sizes, steps and run counts (pure)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitSizes:
    """Examples in the training and test splits; ``source`` says where the numbers come from."""

    train: int
    test: int
    source: str


def split_sizes(dataset: str, data_dir: str | None = None, classes: Sequence[int] = ()) -> SplitSizes:
    """The sizes of ``dataset``'s splits (restricted to ``classes`` when given): counted from
    the loaded data (the dataset registry's loader), else, when its files are missing, the
    built-in table :data:`KNOWN_SPLIT_SIZES` (× k/10 for k of 10 classes)."""
    from projbench.datasets import load_dataset, select_classes
    from projbench.errors import DataNotFoundError

    def count(split: str) -> int:
        data = load_dataset(dataset, split, data_dir)
        return int((select_classes(data, classes) if classes else data)[1].shape[0])

    try:
        return SplitSizes(count("train"), count("test"), "data")
    except DataNotFoundError as err:
        if dataset not in KNOWN_SPLIT_SIZES:
            raise InvalidArgumentError(f"cannot tell the size of dataset {dataset!r}: {err}") from None
        train, test = KNOWN_SPLIT_SIZES[dataset]
        share = len(classes) / 10 if classes else 1.0
        return SplitSizes(round(train * share), round(test * share), "standard split (files not found)")


def subset_size(n: int, subset: int | None) -> int:
    """Examples a run uses: ``min(subset, n)``, or ``n`` without a subset."""
    return n if subset is None else min(int(subset), n)


def steps_per_run(n_train: int, recipe: Recipe) -> int:
    """S = epochs · ⌈N / batch⌉, capped at ``max_steps``."""
    total = recipe.epochs * math.ceil(n_train / recipe.batch_size)
    return min(total, recipe.max_steps) if recipe.max_steps is not None else total


def evaluations_per_run(n_train: int, recipe: Recipe) -> int:
    """E: the learning curve's evaluation points, the last step included."""
    return len(recipe.eval_points(math.ceil(n_train / recipe.batch_size), steps_per_run(n_train, recipe)))


def _search_outcomes(d_min: int, d_max: int) -> list[int]:
    """Crossing dimensions d* in [d_min, d_max]: every integer, or a log-uniform sample of
    :data:`_MAX_EXACT_OUTCOMES` with both ends and their neighbours when the range is wider."""
    if d_max - d_min <= _MAX_EXACT_OUTCOMES:
        return list(range(d_min, d_max + 1))
    n = _MAX_EXACT_OUTCOMES
    ratio = math.log(d_max / d_min)
    sample = {round(d_min * math.exp(ratio * i / (n - 1))) for i in range(n)}
    return sorted(sample | {d_min, d_min + 1, d_max - 1, d_max})


def _runs_until_done(search: KSectionSearch, d_star: int) -> int:
    """Runs a search takes when exactly the d ≥ ``d_star`` reach the target."""
    runs = 0
    while batch := search.propose():
        for d in batch:
            search.observe(d, 1.0 if d >= d_star else 0.0)
            runs += 1
    return runs


def chain_run_range(search: Mapping[str, Any]) -> tuple[int, int]:
    """(fewest, most) subspace runs of one search over every crossing d* in [d_min, d_max].

    A grid trains all its points. A bisection (:class:`~projbench.search.KSectionSearch`) is
    simulated for each d*: round 0 (d_max, and d_min when k ≥ 2), then d_min, then rounds of k
    points until hi ≤ lo·(1 + rtol); about 2 + k·⌈log_{k+1}(log(d_max/d_min)/log(1 + rtol))⌉ at
    most. A search that does not reach the target within d_max stops after round 0 (1 or 2 runs).
    """
    if search["method"] == "grid":
        n = len(set(search["grid"] or ()))
        return n, n
    d_min, d_max = int(search["d_min"]), int(search["d_max"])
    rtol, k = float(search["rtol"]), int(search["points_per_round"])
    counts = [
        _runs_until_done(KSectionSearch(0.5, d_min, d_max, rtol, k), d_star)
        for d_star in _search_outcomes(d_min, d_max)
    ]
    return min(counts), max(counts)


def mid_d(search: Mapping[str, Any], num_params: int) -> int:
    """The d the subspace step is timed at: √(d_min·d_max) (bisection) or the grid's median,
    at most D."""
    if search["method"] == "grid":
        d = int(statistics.median_low(sorted(search["grid"])))
    else:
        d = round(math.sqrt(int(search["d_min"]) * int(search["d_max"])))
    return max(1, min(d, num_params))


@dataclass(frozen=True)
class RunGroup:
    """``count`` runs alike: ``steps`` optimisation steps (plus ``burn_in`` full-model steps) at
    ``batch_size``, ``evaluations`` test passes; ``kind`` is baseline, subspace or direct.
    Subspace groups give ``count`` as the (fewest, most) range of their searches."""

    kind: str
    count: tuple[int, int]
    steps: int
    batch_size: int
    evaluations: int
    burn_in: int = 0


def _variant_recipe(pair_recipe: Mapping[str, Any], variant: Mapping[str, Any]) -> Recipe:
    from projbench.study.spec_fields import NON_RECIPE_AXES

    return Recipe(**{**pair_recipe, **{k: v for k, v in variant.items() if k not in NON_RECIPE_AXES}})


def _key(recipe: Recipe) -> str:
    import json

    return json.dumps(recipe.identity_dict(), sort_keys=True, default=repr)


def pair_run_groups(spec: Any, index: int, n_train: int) -> list[RunGroup]:
    """The runs of pair ``index`` of ``spec`` (a :class:`~projbench.study.spec.StudySpec`),
    grouped by kind and recipe, for ``n_train`` training examples (see the module docstring)."""
    pair = spec.pairs[index]
    seeds = len(spec.seeds)
    lo, hi = chain_run_range(pair.search)
    from projbench.transfer import resolve_theta0

    baselines: dict[str, Recipe] = {}
    direct: dict[str, Recipe] = {}
    pretrain: dict[str, tuple[Recipe, int]] = {}
    groups: list[RunGroup] = []
    for variant in spec.variants():
        recipe = _variant_recipe(pair.recipe, variant)
        table = resolve_theta0(variant.get("theta0", pair.theta0), "", dataset=pair.dataset,
                               recipe=pair.recipe, run=pair.run)
        if table is not None and table["from"] == "pretrain":
            source = Recipe(**table["recipe"])
            pretrain.setdefault(repr(table), (source, int(table.get("train_subset") or n_train)))
        theta0_key = "" if table is None else repr(table)  # fine-tuning baselines are other runs
        labels = [recipe]
        if pair.search["baseline"] == "global":
            labels = [recipe.with_(lr=recipe.lr / 3), recipe, recipe.with_(lr=recipe.lr * 3)]
        baselines.update({f"{theta0_key}{_key(r)}": r for r in labels})
        for lr in (spec.direct.get("lrs") or [recipe.lr]) if spec.direct else []:
            direct.setdefault(_key(recipe.with_(lr=float(lr))), recipe.with_(lr=float(lr)))
        chains = len(pair.projections) * seeds
        groups.append(RunGroup("subspace", (chains * lo, chains * hi), steps_per_run(n_train, recipe),
                               recipe.batch_size, evaluations_per_run(n_train, recipe),
                               int(variant.get("burn_in", 0))))
    sizes = int(spec.direct.get("sizes", 0)) if spec.direct else 0
    for kind, recipes, per in (("baseline", baselines, seeds), ("direct", direct, sizes * seeds)):
        for r in recipes.values():
            groups.append(RunGroup(kind, (per, per), steps_per_run(n_train, r), r.batch_size,
                                   evaluations_per_run(n_train, r)))
    for source, n in pretrain.values():
        groups.append(RunGroup("pretrain", (1, 1), steps_per_run(n, source), source.batch_size,
                               evaluations_per_run(n, source)))
    return [g for g in groups if g.count[1] > 0]


def run_totals(groups: Sequence[RunGroup]) -> dict[str, tuple[int, int]]:
    """Runs per kind, (fewest, most)."""
    out: dict[str, tuple[int, int]] = {}
    for g in groups:
        lo, hi = out.get(g.kind, (0, 0))
        out[g.kind] = (lo + g.count[0], hi + g.count[1])
    return out


# ------------------------------------------------------------------------------------------
# a study's plan
# ------------------------------------------------------------------------------------------
@dataclass
class PairPlan:
    """The plan of one pair: sizes, run groups, the measured cost (None when not measured,
    ``problem`` says why) and the device-seconds (fewest, most)."""

    label: str
    D: int
    sizes: SplitSizes
    n_train: int
    n_test: int
    groups: list[RunGroup]
    cost: StepCost | None
    seconds: tuple[float, float] | None
    device: str
    problem: str = ""

    @property
    def runs(self) -> dict[str, tuple[int, int]]:
        return run_totals(self.groups)


def plan_pair(spec: Any, index: int, data_dir: str | None = None, *, measure: bool = True,
              budget_s: float = MEASURE_BUDGET_S) -> PairPlan:
    """Sizes, runs and (with ``measure``) the measured cost of pair ``index`` of ``spec``."""
    from projbench.training_runs import parameter_count

    pair = spec.pairs[index]
    num_params = parameter_count(pair.architecture, pair.dataset, num_classes=pair.num_classes)
    sizes = split_sizes(pair.dataset, data_dir, pair.classes)
    n_train = subset_size(sizes.train, pair.run["train_subset"])
    n_test = subset_size(sizes.test, pair.run["test_subset"])
    groups = pair_run_groups(spec, index, n_train)
    device = str(pair.run["device"])
    plan = PairPlan(pair.label, num_params, sizes, n_train, n_test, groups, None, None, device)
    if not measure:
        return plan
    entry = spec.projection(pair.projections[0])
    try:
        plan.cost = measure_step_cost(
            pair.architecture, pair.dataset, entry.name, entry.options,
            d=mid_d(pair.search, num_params), recipe=Recipe(**pair.recipe), device=device,
            dtype=pair.run["dtype"], threads=int(pair.run["threads"]), per_layer=bool(pair.run["per_layer"]),
            budget_s=budget_s,
        )
    except ProjbenchError as err:
        plan.problem = str(err)
        return plan
    plan.seconds = total_seconds(groups, plan.cost, n_test)
    if plan.seconds is None:
        plan.problem = plan.cost.note
    return plan


# ------------------------------------------------------------------------------------------
# what `study --dry-run` prints
# ------------------------------------------------------------------------------------------
def executor_workers(
    executor: str, jobs: int, address: str | None, cpus_per_task: float, gpus_per_task: float
) -> int | None:
    """Concurrent runs of an executor, without starting it: ``--jobs`` for local processes; for a
    local Ray, its CPUs (``--jobs``, else the local machine's) over ``--cpus-per-task`` (and this
    machine's GPUs over ``--gpus-per-task``); None for a remote Ray cluster (unknown here)."""
    import os

    if executor != "ray":
        return jobs
    if address is not None:
        return None
    cpus = jobs if jobs > 1 else (os.cpu_count() or 1)
    by_cpu = int(cpus // cpus_per_task) if cpus_per_task else cpus
    if gpus_per_task:
        import torch

        by_gpu = int(torch.cuda.device_count() // gpus_per_task)
        return max(1, min(by_cpu, by_gpu))
    return max(1, by_cpu)


def _hours(seconds: tuple[float, float] | None) -> str:
    if seconds is None:
        return "-"
    lo, hi = (s / 3600 for s in seconds)
    return f"{hi:.3g}" if math.isclose(lo, hi, rel_tol=1e-3) else f"{lo:.3g}-{hi:.3g}"


def _range(count: tuple[int, int]) -> str:
    return str(count[0]) if count[0] == count[1] else f"{count[0]}-{count[1]}"


def plan_table(plans: Sequence[PairPlan]) -> Any:
    """A rich table: per pair, sizes, steps, runs by kind, measured per-step cost, per-run and
    total device-hours."""
    from rich.table import Table

    table = Table(title="plan and estimated cost", title_justify="left")
    for h in ("pair", "D", "N train/test", "steps/run", "evals/run", "baselines", "subspace runs",
              "direct", "ms/step full", "ms/step subspace (proj, d)", "s/run base / sub", "device-h"):
        table.add_column(h, overflow="fold")
    for plan in plans:
        runs, cost = plan.runs, plan.cost
        sub = next((g for g in plan.groups if g.kind == "subspace"), None)
        base = next((g for g in plan.groups if g.kind == "baseline"), None)
        per_run = "-"
        if cost is not None and sub is not None and base is not None:
            b, s = run_seconds(base, cost, plan.n_test), run_seconds(sub, cost, plan.n_test)
            per_run = f"{b:.3g} / " + (f"{s:.3g}" if s is not None else "-") if b is not None else "-"
        sub_ms = "-"
        if cost is not None:
            sub_ms = (f"{cost.subspace_step_s * 1e3:.3g}" if cost.subspace_step_s is not None else "n/a") + (
                f" ({cost.projection}, {cost.d:,})")
        steps = sorted({g.steps for g in plan.groups})
        evals = sorted({g.evaluations for g in plan.groups})
        table.add_row(
            plan.label, f"{plan.D:,}", f"{plan.n_train:,}/{plan.n_test:,}",
            "/".join(f"{s:,}" for s in steps), "/".join(map(str, evals)),
            _range(runs.get("baseline", (0, 0))), _range(runs.get("subspace", (0, 0))),
            _range(runs.get("direct", (0, 0))),
            f"{cost.full_step_s * 1e3:.3g}" if cost else "-", sub_ms, per_run,
            f"{_hours(plan.seconds)} {'GPU' if plan.device.startswith('cuda') else 'CPU'}",
        )
    return table


def summary_lines(plans: Sequence[PairPlan], workers: int | None, executor: str, jobs: int) -> list[str]:
    """The total (CPU- and GPU-hours, wall time on the executor) and the notes that qualify it."""
    import os

    lines: list[str] = []
    totals: dict[str, list[float]] = {}
    for plan in plans:
        if plan.seconds is not None:
            kind = "GPU" if plan.device.startswith("cuda") else "CPU"
            acc = totals.setdefault(kind, [0.0, 0.0])
            acc[0] += plan.seconds[0]
            acc[1] += plan.seconds[1]
    device_s = [sum(v[0] for v in totals.values()), sum(v[1] for v in totals.values())]
    hours = "; ".join(f"{_hours((lo, hi))} {kind}-hours" for kind, (lo, hi) in totals.items()) or "unknown"
    lines.append(f"estimated total: {hours} (fewest-most runs the searches can take)")
    if workers is None:
        lines.append("wall time on the Ray cluster: the device-hours over its concurrent runs")
    elif totals:
        wall = _hours((wall_seconds(device_s[0], workers), wall_seconds(device_s[1], workers)))
        how = "inline" if executor == "local" and jobs == 1 else f"{workers} concurrent runs ({executor})"
        lines.append(f"estimated wall time: {wall} h on {how}")
        cores = os.cpu_count() or 1
        threads = max((int(p.cost.threads) for p in plans if p.cost), default=1)
        if workers * threads > cores:
            lines.append(
                f"note: {workers} runs × {threads} thread(s) on {cores} cores do not scale: "
                f"expect at best the device-hours / {max(cores // threads, 1)}, and slower steps"
            )
    for plan in plans:
        if plan.problem:
            lines.append(f"{plan.label}: not measured: {plan.problem}")
        elif plan.cost is not None and plan.cost.note:
            lines.append(f"{plan.label}: {plan.cost.note}")
        if plan.sizes.source != "data":
            lines.append(f"{plan.label}: N from the {plan.sizes.source}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    cores = os.cpu_count() or 1
    lines.append(
        f"per-step costs measured here with the runs' thread count, at load average {load:.2f} on {cores} "
        f"cores (a busy machine inflates them, by up to ~{load_inflation(load, cores):.1f}x now); the "
        "subspace step with each pair's first projection at a mid d; worker start-up (~3 s each) and "
        "data loading not counted"
    )
    return lines


__all__ = [
    "KNOWN_SPLIT_SIZES",
    "PairPlan",
    "RunGroup",
    "SplitSizes",
    "chain_run_range",
    "evaluations_per_run",
    "executor_workers",
    "mid_d",
    "pair_run_groups",
    "plan_pair",
    "plan_table",
    "run_totals",
    "split_sizes",
    "steps_per_run",
    "subset_size",
    "summary_lines",
]
