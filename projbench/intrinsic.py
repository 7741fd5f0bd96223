"""Baselines and the intrinsic-dimension search d_int90 (Li et al. 2018, DESIGN §8).

Definitions (Li et al.):

* **local baseline** — full training of the same model (all D parameters, no projection) with
  the *same* recipe (optimiser, lr, epochs, batch, L2) as the subspace runs; its accuracy is the
  mean over seeds.
* **global baseline** — the best full-training accuracy over a small standard recipe set
  (:func:`global_baseline_recipes`: the subspace recipe at lr/3, lr and 3·lr); per recipe the
  mean over seeds, then the maximum over recipes. It is ≥ the local baseline.
* **d_int90** — the smallest d whose subspace test accuracy is ≥ ``threshold`` (0.9) × baseline.

Search, separately for each (projection, seed):

* ``"bisect"`` (default): bisection on a log scale in [d_min, d_max], assuming accuracy grows
  with d: d_max is trained first (not passing → "not reached"), then d_min (passing → d_min),
  then d = round(√(lo·hi)) until hi ≤ lo·(1 + rtol) or hi − lo ≤ 1. The crossing is hi.
* ``"grid"``: Li et al.'s grid; every grid d is trained; the crossing is the smallest passing d.

Every crossing also gets an **interpolated** value: linear interpolation of accuracy vs log d
between the last failing d (just below the crossing) and the crossing,
log d* = log d_lo + (thr − a_lo)/(a_hi − a_lo)·(log d_hi − log d_lo). Per projection the summary
has the per-seed crossings, their mean and standard deviation (ddof = 1), and the same for the
interpolated values. A diverged run counts as not passing.

Each trained (projection, d, seed) — and each baseline run — is one ``case`` record of a
JSON-lines results file (:mod:`projbench.results`), keyed by (architecture, dataset,
projection, d, seed, recipe, per_layer, options); a rerun with the same file reuses every
recorded case instead of training it again, so an interrupted search resumes where it stopped.
The trainer is injectable (``trainer=``): any callable ``RunSpec -> TrainResult``.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from projbench.errors import InvalidArgumentError
from projbench.suites import Case
from projbench.training import Data, ProgressFn, Recipe, TrainResult, train

SUITE = "intrinsic"
BASELINE_PROJECTION = "none"
SEARCHES = ("bisect", "grid")
BASELINES = ("global", "local")
#: Li et al.-style grid of subspace dimensions (log-spaced, 10 … 10 000)
DEFAULT_GRID: tuple[int, ...] = (10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)


@dataclass(frozen=True)
class RunSpec:
    """One training run. ``projection=None`` (and ``d=None``) means full training (baseline)."""

    architecture: str | None
    dataset: str | None
    projection: str | None
    d: int | None
    seed: int
    recipe: Recipe
    per_layer: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_baseline(self) -> bool:
        return self.projection is None

    def params(self) -> dict[str, Any]:
        return {
            "d": self.d, "seed": self.seed, "recipe": self.recipe.to_dict(),
            "per_layer": self.per_layer, "options": dict(self.options),
            "role": "baseline" if self.is_baseline else "subspace",
        }

    def case(self) -> Case:
        return Case(suite=SUITE, projection=self.projection or BASELINE_PROJECTION, params=self.params(),
                    architecture=self.architecture, dataset=self.dataset)

    @property
    def key(self) -> str:
        """Stable cache key (:attr:`projbench.suites.Case.key` of :meth:`case`)."""
        return self.case().key


Trainer = Callable[[RunSpec], TrainResult]


def global_baseline_recipes(recipe: Recipe) -> list[Recipe]:
    """The global baseline's recipe set: ``recipe`` at lr/3, lr and 3·lr (same everything else)."""
    return [recipe.with_(lr=recipe.lr / 3), recipe, recipe.with_(lr=recipe.lr * 3)]


# ------------------------------------------------------------------------------------------
# The default trainer: make_model (+ SubspaceModel) + train on a registered dataset
# ------------------------------------------------------------------------------------------
def _subset(data: Data, n: int | None, seed: int = 0) -> Data:
    x, y = data
    if n is None or n >= x.shape[0]:
        return x, y
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


class ModelTrainer:
    """Trains ``make_model(architecture, dataset, seed=spec.seed)``, wrapped in a
    :class:`projbench.SubspaceModel` (projection seed = ``spec.seed``) unless the spec is a
    baseline, on the dataset's train split; accuracy on its test split.

    Data are loaded once (lazily). ``train_subset``/``test_subset`` take a fixed random subset
    (seed 0) of that many examples — for quick runs. ``step_progress`` is passed to
    :func:`projbench.training.train`.
    """

    def __init__(
        self,
        architecture: str,
        dataset: str,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str | None = None,
        train_subset: int | None = None,
        test_subset: int | None = None,
        step_progress: ProgressFn | None = None,
        data: tuple[Data, Data] | None = None,
    ) -> None:
        self.architecture = architecture
        self.dataset = dataset
        self.data_dir = data_dir
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.train_subset = train_subset
        self.test_subset = test_subset
        self.step_progress = step_progress
        self._data = data
        self.calls = 0

    def data(self) -> tuple[Data, Data]:
        if self._data is None:
            from projbench.datasets import load_dataset

            tr = load_dataset(self.dataset, "train", self.data_dir)
            te = load_dataset(self.dataset, "test", self.data_dir)
            self._data = (_subset(tr, self.train_subset), _subset(te, self.test_subset))
        return self._data

    def num_parameters(self) -> int:
        """D of the architecture on this dataset."""
        from projbench.architectures import count_parameters, make_model

        return count_parameters(make_model(self.architecture, self.dataset, seed=0))

    def __call__(self, spec: RunSpec) -> TrainResult:
        from projbench.architectures import make_model

        self.calls += 1
        train_data, test_data = self.data()
        model = make_model(self.architecture, self.dataset, seed=spec.seed)
        if spec.projection is not None:
            from projbench.subspace import SubspaceModel

            if spec.d is None:
                raise InvalidArgumentError("a subspace run needs d")
            model = SubspaceModel(model, spec.projection, spec.d, seed=spec.seed,
                                  per_layer=spec.per_layer, device=self.device, **dict(spec.options))
        return train(model, train_data, test_data, spec.recipe, seed=spec.seed, device=self.device,
                     progress=self.step_progress)


# ------------------------------------------------------------------------------------------
# Cache of trained runs backed by the results file
# ------------------------------------------------------------------------------------------
def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def result_from_record(record: dict[str, Any]) -> TrainResult:
    """Rebuild a :class:`TrainResult` from a recorded ``case``."""
    s = record.get("stats") or {}
    div = s.get("diverged_at_step")
    return TrainResult(
        test_accuracy=_as_float(s.get("test_accuracy")), test_loss=_as_float(s.get("test_loss")),
        train_loss=_as_float(s.get("train_loss")), steps=int(s.get("steps") or 0),
        epochs=_as_float(s.get("epochs")), status=str(record.get("status", "ok")),
        diverged_at_step=None if div is None else int(div), wall_s=_as_float(s.get("wall_s")),
    )


def record_from_result(spec: RunSpec, result: TrainResult) -> dict[str, Any]:
    """The ``case`` record of one trained run."""
    case = spec.case()
    stats = {k: v for k, v in result.to_dict().items() if k not in ("history", "status")}
    return {
        "key": case.key, "suite": SUITE, "projection": case.projection,
        "architecture": case.architecture, "dataset": case.dataset, "params": case.params,
        "status": "diverged" if result.status == "diverged" else "ok", "error": None,
        "stats": stats, "samples": {"epoch_train_loss": [h["train_loss"] for h in result.history]},
    }


class RunCache:
    """Trains a spec once: reuses results recorded earlier (``records``) and records new ones."""

    def __init__(self, trainer: Trainer, writer: Any | None = None,
                 records: Sequence[dict[str, Any]] = (),
                 on_run: Callable[[RunSpec, TrainResult, bool], None] | None = None) -> None:
        self.trainer = trainer
        self.writer = writer
        self.on_run = on_run
        self._known: dict[str, TrainResult] = {}
        self.records: list[dict[str, Any]] = []
        for r in records:
            if r.get("suite") == SUITE and r.get("status") in ("ok", "diverged") and "key" in r:
                self._known[str(r["key"])] = result_from_record(r)
                self.records.append(r)
        self._from_file = set(self._known)
        self._reused_keys: set[str] = set()
        self.trained = 0

    @property
    def reused(self) -> int:
        """Distinct runs taken from earlier records instead of being trained."""
        return len(self._reused_keys)

    def run(self, spec: RunSpec) -> TrainResult:
        key = spec.key
        if key in self._known:
            if key in self._from_file:
                self._reused_keys.add(key)
            result = self._known[key]
            if self.on_run is not None:
                self.on_run(spec, result, True)
            return result
        result = self.trainer(spec)
        self.trained += 1
        record = record_from_result(spec, result)
        if self.writer is not None:
            self.writer.write_case(record)
        self.records.append(record)
        self._known[key] = result
        if self.on_run is not None:
            self.on_run(spec, result, False)
        return result


# ------------------------------------------------------------------------------------------
# The search
# ------------------------------------------------------------------------------------------
@dataclass
class SeedCrossing:
    """The search outcome of one (projection, seed): ``d`` is None when d_max never passed."""

    seed: int
    d: int | None
    interpolated: float | None
    evaluated: dict[int, float] = field(default_factory=dict)  # d -> test accuracy
    diverged: list[int] = field(default_factory=list)


@dataclass
class ProjectionSummary:
    projection: str
    seeds: list[SeedCrossing]

    def _values(self, attr: str) -> list[float]:
        return [float(getattr(s, attr)) for s in self.seeds if getattr(s, attr) is not None]

    @property
    def reached(self) -> bool:
        return bool(self.seeds) and all(s.d is not None for s in self.seeds)

    @property
    def mean(self) -> float | None:
        v = self._values("d")
        return statistics.fmean(v) if v else None

    @property
    def std(self) -> float | None:
        v = self._values("d")
        return statistics.stdev(v) if len(v) > 1 else (0.0 if v else None)

    @property
    def interp_mean(self) -> float | None:
        v = self._values("interpolated")
        return statistics.fmean(v) if v else None

    @property
    def interp_std(self) -> float | None:
        v = self._values("interpolated")
        return statistics.stdev(v) if len(v) > 1 else (0.0 if v else None)

    def curve(self) -> dict[int, tuple[float, float, int]]:
        """d -> (mean accuracy, std over seeds, number of seeds) over every evaluated d."""
        by_d: dict[int, list[float]] = {}
        for s in self.seeds:
            for d, acc in s.evaluated.items():
                by_d.setdefault(d, []).append(acc)
        return {d: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
                for d, v in sorted(by_d.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection, "reached": self.reached,
            "per_seed": {str(s.seed): s.d for s in self.seeds},
            "per_seed_interpolated": {str(s.seed): s.interpolated for s in self.seeds},
            "mean": self.mean, "std": self.std, "interp_mean": self.interp_mean,
            "interp_std": self.interp_std,
            "curve": {str(d): list(v) for d, v in self.curve().items()},
        }

    def line(self) -> str:
        """``d_int90 <proj>: <value> (mean ± std over N seeds; interpolated …)``."""
        n = len(self.seeds)
        if self.mean is None:
            return f"d_int90 {self.projection}: not reached (no d passed in any of {n} seeds)"
        missing = sum(s.d is None for s in self.seeds)
        note = f"; not reached for {missing} seed(s)" if missing else ""
        per_seed = ", ".join("-" if s.d is None else str(s.d) for s in self.seeds)
        interp = (f"interpolated {self.interp_mean:.0f} ± {self.interp_std:.0f}"
                  if self.interp_mean is not None and self.interp_std is not None else "interpolated -")
        return (f"d_int90 {self.projection}: {self.mean:.0f} ± {self.std:.0f} (mean ± std over "
                f"{n - missing} seeds [{per_seed}]; {interp}{note})")


@dataclass
class IntrinsicDimResult:
    architecture: str | None
    dataset: str | None
    threshold: float
    baseline_kind: str
    baseline_accuracy: float
    local_baseline: float
    global_baseline: float | None
    baseline_recipe: dict[str, Any]
    projections: dict[str, ProjectionSummary]
    runs_trained: int = 0
    runs_reused: int = 0
    wall_s: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def target_accuracy(self) -> float:
        return self.threshold * self.baseline_accuracy

    def summary(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture, "dataset": self.dataset, "threshold": self.threshold,
            "baseline": self.baseline_kind, "baseline_accuracy": self.baseline_accuracy,
            "local_baseline": self.local_baseline, "global_baseline": self.global_baseline,
            "baseline_recipe": self.baseline_recipe, "target_accuracy": self.target_accuracy,
            "d_int90": {p: s.to_dict() for p, s in self.projections.items()},
            "runs_trained": self.runs_trained, "runs_reused": self.runs_reused, "wall_s": self.wall_s,
        }


def interpolate_crossing(d_lo: int, a_lo: float, d_hi: int, a_hi: float, target: float) -> float:
    """d* where the line through (log d_lo, a_lo), (log d_hi, a_hi) reaches ``target``."""
    if not (math.isfinite(a_lo) and math.isfinite(a_hi)) or a_hi <= a_lo:
        return float(d_hi)
    t = min(max((target - a_lo) / (a_hi - a_lo), 0.0), 1.0)
    return float(math.exp(math.log(d_lo) + t * (math.log(d_hi) - math.log(d_lo))))


def _accuracy(result: TrainResult) -> float:
    acc = result.test_accuracy
    return acc if math.isfinite(acc) else 0.0


def _crossing(seed: int, evaluated: dict[int, float], passed: dict[int, bool], diverged: list[int],
              target: float) -> SeedCrossing:
    """Smallest passing d, and the log-linear interpolation from the largest d below it."""
    passing = sorted(d for d, ok in passed.items() if ok)
    evaluated = dict(sorted(evaluated.items()))
    if not passing:
        return SeedCrossing(seed, None, None, evaluated, diverged)
    d_hi = passing[0]
    below = [d for d in evaluated if d < d_hi]
    if not below:  # the crossing is the smallest d tried: nothing to interpolate from
        return SeedCrossing(seed, d_hi, float(d_hi), evaluated, diverged)
    d_lo = max(below)
    interp = interpolate_crossing(d_lo, evaluated[d_lo], d_hi, evaluated[d_hi], target)
    return SeedCrossing(seed, d_hi, interp, evaluated, diverged)


def search_seed(
    run: Callable[[int], TrainResult],
    target: float,
    *,
    seed: int,
    search: str = "bisect",
    grid: Sequence[int] = DEFAULT_GRID,
    d_min: int = 10,
    d_max: int = 10000,
    rtol: float = 0.1,
) -> SeedCrossing:
    """Find the smallest passing d for one seed; ``run(d)`` trains (or recalls) that d."""
    evaluated: dict[int, float] = {}
    passed: dict[int, bool] = {}
    diverged: list[int] = []

    def check(d: int) -> bool:
        if d not in passed:
            result = run(d)
            evaluated[d] = _accuracy(result)
            ok = result.status != "diverged" and evaluated[d] >= target
            if result.status == "diverged":
                diverged.append(d)
            passed[d] = ok
        return passed[d]

    if search == "grid":
        for d in sorted(set(grid)):
            check(d)
    elif search == "bisect":
        if check(d_max) and not check(d_min):
            lo, hi = d_min, d_max
            while hi > lo * (1 + rtol) and hi - lo > 1:
                mid = min(max(round(math.sqrt(lo * hi)), lo + 1), hi - 1)
                if check(mid):
                    hi = mid
                else:
                    lo = mid
    else:
        raise InvalidArgumentError(f"search must be one of {SEARCHES}, got {search!r}")
    return _crossing(seed, evaluated, passed, diverged, target)


def _validate(search: str, baseline: str, threshold: float, d_min: int, d_max: int, rtol: float,
              grid: Sequence[int] | None, seeds: Sequence[int]) -> None:
    if search not in SEARCHES:
        raise InvalidArgumentError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if baseline not in BASELINES:
        raise InvalidArgumentError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    if not 0 < threshold <= 1:
        raise InvalidArgumentError(f"threshold must lie in (0, 1], got {threshold}")
    if search == "bisect" and not 1 <= d_min < d_max:
        raise InvalidArgumentError(f"need 1 <= d_min < d_max for bisection, got d_min={d_min}, d_max={d_max}")
    if rtol <= 0:
        raise InvalidArgumentError(f"rtol must be > 0, got {rtol}")
    if search == "grid" and (not grid or any(int(d) < 1 for d in grid)):
        raise InvalidArgumentError(f"grid must be a non-empty list of positive integers, got {grid!r}")
    if not seeds:
        raise InvalidArgumentError("give at least one seed")


def find_intrinsic_dim(
    architecture: str | None,
    dataset: str | None,
    projections: Sequence[str],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    recipe: Recipe | None = None,
    search: str = "bisect",
    grid: Sequence[int] | None = None,
    d_min: int = 10,
    d_max: int = 10000,
    rtol: float = 0.1,
    threshold: float = 0.9,
    baseline: str = "global",
    per_layer: bool = False,
    options: dict[str, Any] | None = None,
    trainer: Trainer | None = None,
    results_path: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
    on_run: Callable[[RunSpec, TrainResult, bool], None] | None = None,
) -> IntrinsicDimResult:
    """d_int90 of ``architecture`` on ``dataset`` for each projection (module docstring).

    ``trainer`` defaults to :class:`ModelTrainer` (``data_dir``, ``device``). With
    ``results_path`` every run is recorded there, and runs already recorded in that file are
    reused (resume). ``on_run(spec, result, reused)`` is called after each run.
    """
    from projbench.training import recipe_for

    recipe = recipe or recipe_for(architecture)
    grid = list(grid) if grid is not None else list(DEFAULT_GRID)
    seeds = [int(s) for s in seeds]
    _validate(search, baseline, threshold, d_min, d_max, rtol, grid, seeds)
    if not projections:
        raise InvalidArgumentError("choose at least one projection")
    if trainer is None:
        from projbench.manager import get_registry

        for name in projections:
            get_registry("projections").get(name)
        if architecture is None or dataset is None:
            raise InvalidArgumentError("architecture and dataset are needed by the default trainer")
        trainer = ModelTrainer(architecture, dataset, data_dir=data_dir, device=device)
    if isinstance(trainer, ModelTrainer):
        # Fail before any data is loaded or trained: the model must exist for this dataset,
        # and no subspace may be larger than the parameter space itself.
        num_params = trainer.num_parameters()
        largest = d_max if search == "bisect" else max(grid)
        if largest > num_params:
            raise InvalidArgumentError(
                f"the largest d searched ({largest:,}) exceeds D = {num_params:,}, the number of "
                f"parameters of {architecture!r} on {dataset!r}; lower --d-max (or the grid) to at most D"
            )
    opts = tuple(sorted((options or {}).items()))
    config = {
        "command": "intrinsic-dim", "architecture": architecture, "dataset": dataset,
        "projections": list(projections), "seeds": seeds, "recipe": recipe.to_dict(), "search": search,
        "grid": grid if search == "grid" else None, "d_min": d_min, "d_max": d_max, "rtol": rtol,
        "threshold": threshold, "baseline": baseline, "per_layer": per_layer, "options": dict(opts),
        "device": str(device) if device is not None else None,
    }
    start = time.perf_counter()
    writer = None
    previous: list[dict[str, Any]] = []
    if results_path is not None:
        from projbench.results import ResultsWriter, read_run

        if Path(results_path).exists():
            previous = read_run(results_path).cases
        writer = ResultsWriter(results_path, config=config, resume=True)
    cache = RunCache(trainer, writer, previous, on_run=on_run)
    try:
        def spec(projection: str | None, d: int | None, seed: int, r: Recipe) -> RunSpec:
            return RunSpec(architecture, dataset, projection, d, seed, r,
                           per_layer if projection is not None else False,
                           opts if projection is not None else ())

        local_accs = [_accuracy(cache.run(spec(None, None, s, recipe))) for s in seeds]
        local = statistics.fmean(local_accs)
        global_acc: float | None = None
        best_recipe = recipe
        if baseline == "global":
            best = -1.0
            for r in global_baseline_recipes(recipe):
                acc = statistics.fmean(_accuracy(cache.run(spec(None, None, s, r))) for s in seeds)
                if acc > best:
                    best, best_recipe = acc, r
            global_acc = best
        base_acc = global_acc if baseline == "global" and global_acc is not None else local
        target = threshold * base_acc

        summaries: dict[str, ProjectionSummary] = {}
        for name in projections:
            crossings = []
            for s in seeds:
                def run_d(d: int, _name: str = name, _s: int = s) -> TrainResult:
                    return cache.run(spec(_name, d, _s, recipe))

                crossings.append(search_seed(run_d, target, seed=s, search=search, grid=grid,
                                             d_min=d_min, d_max=d_max, rtol=rtol))
            summaries[name] = ProjectionSummary(name, crossings)
        result = IntrinsicDimResult(
            architecture, dataset, threshold, baseline, base_acc, local, global_acc,
            best_recipe.to_dict(), summaries, cache.trained, cache.reused,
            time.perf_counter() - start, cache.records,
        )
    except BaseException as exc:
        if writer is not None:
            writer.close({"interrupted": True, "error": repr(exc)})
        raise
    if writer is not None:
        writer.close(result.summary())
    return result


# ------------------------------------------------------------------------------------------
# Figure
# ------------------------------------------------------------------------------------------
def plot_intrinsic(result: IntrinsicDimResult, path: str | os.PathLike[str]) -> Path:
    """PNG of test accuracy vs d (log scale): one curve per projection (mean ± std over seeds
    as error bars), the baseline and the threshold·baseline line, and each d_int90 (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, summ) in enumerate(result.projections.items()):
        curve = summ.curve()
        if not curve:
            continue
        color = colors[i % len(colors)]
        ds = list(curve)
        ax.errorbar(ds, [curve[d][0] for d in ds], yerr=[curve[d][1] for d in ds], marker="o",
                    ms=4, capsize=3, color=color, label=name)
        if summ.mean is not None:
            ax.axvline(summ.mean, color=color, ls=":", lw=1)
    ax.axhline(result.baseline_accuracy, color="k", ls="--", lw=1,
               label=f"{result.baseline_kind} baseline {result.baseline_accuracy:.3f}")
    ax.axhline(result.target_accuracy, color="r", ls="-.", lw=1,
               label=f"{result.threshold:.0%} of baseline")
    ax.set_xscale("log")
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel("test accuracy")
    title = f"{result.architecture or ''} / {result.dataset or ''}".strip(" /")
    ax.set_title(f"Intrinsic dimension {title}".strip())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


#: Columns of ``projbench report`` tables for intrinsic-dimension records.
REPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("test acc", "test_accuracy"), ("test loss", "test_loss"), ("steps", "steps"),
    ("epochs", "epochs"), ("wall s", "wall_s"),
)


def figure_from_records(records: list[dict[str, Any]]) -> Any:
    """Accuracy vs d from recorded ``intrinsic`` cases (for ``projbench report``).

    One curve per projection, mean ± std over seeds at each d, the mean baseline accuracy
    and 90 % of it. Returns a matplotlib Figure, or None without subspace records.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_proj: dict[str, dict[int, list[float]]] = {}
    baselines: list[float] = []
    for r in records:
        acc = r.get("stats", {}).get("test_accuracy")
        if not isinstance(acc, int | float):
            continue
        d = (r.get("params") or {}).get("d")
        if d is None:
            baselines.append(float(acc))
        else:
            by_proj.setdefault(str(r.get("projection")), {}).setdefault(int(d), []).append(float(acc))
    if not by_proj:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in sorted(by_proj.items()):
        ds = sorted(curve)
        means = [statistics.fmean(curve[d]) for d in ds]
        stds = [statistics.pstdev(curve[d]) if len(curve[d]) > 1 else 0.0 for d in ds]
        ax.errorbar(ds, means, yerr=stds, marker="o", ms=4, capsize=3, label=name)
    if baselines:
        base = max(baselines)
        ax.axhline(base, color="k", ls="--", lw=1, label=f"best baseline {base:.3f}")
        ax.axhline(0.9 * base, color="r", ls="-.", lw=1, label="90% of baseline")
    ax.set_xscale("log")
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel("test accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


__all__ = [
    "DEFAULT_GRID",
    "REPORT_COLUMNS",
    "IntrinsicDimResult",
    "ModelTrainer",
    "ProjectionSummary",
    "RunCache",
    "RunSpec",
    "SeedCrossing",
    "Trainer",
    "figure_from_records",
    "find_intrinsic_dim",
    "global_baseline_recipes",
    "interpolate_crossing",
    "plot_intrinsic",
    "result_from_record",
    "search_seed",
]
