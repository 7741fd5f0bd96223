"""d_int90 at every evaluated training budget, and convergence, from a study's learning curves.

Every run records test accuracy after the epochs of its recipe's ``eval_epochs``
(:meth:`projbench.recipe.Recipe.eval_points`). So one study answers "what would d_int90 have
been after e epochs?" for each evaluated e, without training again:

* the target at budget e is ``threshold`` × the baseline accuracy at epoch e (mean over
  seeds; with a global baseline, the best of its learning rates *at that epoch*);
* a chain's d_int90 at budget e is the smallest d it trained whose accuracy at epoch e reaches
  that target, and its **bracket** is (largest trained d below it that fails, that d).

For a grid search every grid d is trained, so the value at each budget is exactly what a grid
study of that budget would give. A bisection chose its d values by the accuracy at the *final*
budget, so at another budget the visited d values may bracket the crossing loosely: each row
gives the widest bracket ratio hi/lo over seeds (≤ 1 + rtol: as tight as the search itself).

**Convergence.** A run has *not converged* when its test accuracy still rose by more than
:data:`NOT_CONVERGED_MARGIN` (absolute) over the last half of its training: from the last
evaluation at or before half of its epochs to its final evaluation. A run with no evaluation
in the first half (e.g. one epoch) is *unknown*.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

#: accuracy gained over the last half of training above which a run has not converged
NOT_CONVERGED_MARGIN = 0.005
_EPOCH_TOL = 1e-6


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def curve_of(record: dict[str, Any]) -> list[tuple[float, float]]:
    """(epoch, test accuracy) of a run's learning curve, in order; [] when it has none."""
    curve = (record.get("samples") or {}).get("curve") or []
    out = []
    for point in curve:
        if not isinstance(point, dict):
            continue
        epoch, acc = _finite(point.get("epoch")), _finite(point.get("test_accuracy"))
        if epoch is not None:
            out.append((epoch, acc if acc is not None else 0.0))
    return sorted(out)


def accuracy_at(record: dict[str, Any], epoch: float) -> float | None:
    """Test accuracy of a run after ``epoch`` epochs, or None when it was not evaluated then."""
    for e, acc in curve_of(record):
        if abs(e - epoch) < _EPOCH_TOL:
            return acc
    return None


def converged(record: dict[str, Any], margin: float = NOT_CONVERGED_MARGIN) -> bool | None:
    """False when accuracy rose by more than ``margin`` over the last half of training; None
    when the curve has no point in the first half."""
    curve = curve_of(record)
    if len(curve) < 2:
        return None
    last_epoch, final = curve[-1]
    earlier = [acc for e, acc in curve[:-1] if e <= last_epoch / 2 + _EPOCH_TOL]
    if not earlier:
        return None
    return final - earlier[-1] <= margin


def budgets(records: list[dict[str, Any]]) -> list[float]:
    """The epochs at which every one of ``records`` was evaluated (ascending)."""
    common: set[float] | None = None
    for r in records:
        epochs = {round(e, 6) for e, _ in curve_of(r)}
        common = epochs if common is None else common & epochs
    return sorted(common or ())


def crossing_at(
    evaluated: dict[int, dict[str, Any]], epoch: float, target: float
) -> tuple[int | None, int | None]:
    """(d_int90, largest failing d below it) at ``epoch`` from the runs ``evaluated`` (d ->
    record); (None, largest d) when none reaches ``target``."""
    accs = {d: accuracy_at(r, epoch) for d, r in evaluated.items()}
    passing = sorted(d for d, a in accs.items() if a is not None and a >= target)
    if not passing:
        return None, max(accs) if accs else None
    below = [d for d in accs if d < passing[0]]
    return passing[0], (max(below) if below else None)


def _baseline_at(engine: Any, group: Any, epoch: float) -> float | None:
    means = []
    for specs in group.baseline_specs.values():
        accs = [accuracy_at(engine.results.get(s.run_id) or {}, epoch) for s in specs]
        if any(a is None for a in accs):
            return None
        means.append(statistics.fmean(a for a in accs if a is not None))
    return max(means) if means else None


def budget_rows(engine: Any) -> list[dict[str, Any]]:
    """One row per (pair, variant, projection, evaluated budget): d_int90 mean, min and max over
    seeds, the seeds that reached the target, the widest bracket ratio, the baseline accuracy at
    that budget and how many of the row's runs had not converged by their end."""
    out = []
    for group in engine.groups:
        pair = engine.spec.pairs[group.pair]
        for label in pair.projections:
            chains = [c for c in engine.chains if c.group == group.index and c.projection == label]
            runs = {
                c.seed: {
                    d: engine.results[rid]
                    for rid in c.run_ids
                    if rid in engine.results
                    for d in [int(engine.results[rid].get("identity", {}).get("d") or 0)]
                }
                for c in chains
                if c.done and c.failed is None
            }
            records = [r for by_d in runs.values() for r in by_d.values()]
            base = [engine.results[s.run_id] for specs in group.baseline_specs.values()
                    for s in specs if s.run_id in engine.results]
            for epoch in budgets(records + base):
                base_acc = _baseline_at(engine, group, epoch)
                if base_acc is None:
                    continue
                target = float(pair.search["threshold"]) * base_acc
                found = [crossing_at(by_d, epoch, target) for by_d in runs.values()]
                ds = [d for d, _ in found if d is not None]
                ratios = [d / lo for d, lo in found if d is not None and lo]
                out.append({
                    "architecture": pair.architecture,
                    "dataset": pair.task,
                    "variant": group.variant_label,
                    "projection": label,
                    "epochs": int(epoch) if float(epoch).is_integer() else epoch,
                    "seeds": len(found),
                    "reached": len(ds),
                    "d_int90_mean": statistics.fmean(ds) if ds else None,
                    "d_int90_min": min(ds) if ds else None,
                    "d_int90_max": max(ds) if ds else None,
                    "bracket_ratio_max": max(ratios) if ratios else None,
                    "baseline_accuracy": base_acc,
                    "target_accuracy": target,
                    "method": pair.search["method"],
                })
    return out


def convergence_counts(records: list[dict[str, Any]]) -> tuple[int, int]:
    """(runs that had not converged, runs whose convergence is known) among ``records``."""
    flags = [converged(r) for r in records]
    known = [f for f in flags if f is not None]
    return sum(1 for f in known if not f), len(known)


BUDGET_COLUMNS = [
    ("architecture", "architecture"),
    ("dataset", "dataset"),
    ("variant", "variant"),
    ("projection", "projection"),
    ("epochs", "epochs"),
    ("baseline acc", "baseline_accuracy"),
    ("d_int90 (mean)", "d_int90_mean"),
    ("min", "d_int90_min"),
    ("max", "d_int90_max"),
    ("reached", "reached"),
    ("seeds", "seeds"),
    ("bracket hi/lo (max)", "bracket_ratio_max"),
]


def error_bars(reached: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """(below, above) the mean d_int90 of each budget row: above, up to the highest seed's
    value; below, down to the lowest seed's value divided by the row's widest bracket hi/lo.
    A seed's true crossing lies anywhere in (passing d / bracket, passing d], so at budgets the
    search visited only coarsely (a bisection steered by the final budget) the bar shows how
    far below the drawn point d_int90 may be."""
    below = [r["d_int90_mean"] - r["d_int90_min"] / max(float(r.get("bracket_ratio_max") or 1.0), 1.0)
             for r in reached]
    above = [r["d_int90_max"] - r["d_int90_mean"] for r in reached]
    return below, above


def budget_figure(rows: list[dict[str, Any]], out_dir: Any) -> list[Any]:
    """``d_int90_vs_budget_<arch>_<dataset>.png`` per pair: d_int90 (mean over seeds) against
    training epochs (log-log), one line per (variant, projection), with the bars of
    :func:`error_bars` (seeds and the search's bracket); budgets where a seed did not reach the
    target are drawn as open markers at the largest d tried. A pair none of whose seeds has ended
    its search gets no figure."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from projbench.report.figures import save_figure
    from projbench.report.study_figures import slug

    paths = []
    out = Path(out_dir)
    pairs = sorted({(r["architecture"], r["dataset"]) for r in rows})
    for arch, ds in pairs:
        fig, ax = plt.subplots(figsize=(6, 4))
        mine = [r for r in rows if (r["architecture"], r["dataset"]) == (arch, ds)]
        lines = sorted({(r["variant"], r["projection"]) for r in mine})
        drawn = False
        for variant, proj in lines:
            pts = [r for r in rows if (r["architecture"], r["dataset"], r["variant"], r["projection"])
                   == (arch, ds, variant, proj)]
            reached = [r for r in pts if r["d_int90_mean"] is not None]
            label = proj if variant == "-" else f"{proj} ({variant})"
            if reached:
                x = [r["epochs"] for r in reached]
                y = [r["d_int90_mean"] for r in reached]
                ax.errorbar(x, y, yerr=list(error_bars(reached)), marker="o", capsize=3, label=label)
                drawn = True
            partial = [r for r in pts if r["reached"] < r["seeds"]]
            if partial:
                ax.scatter([r["epochs"] for r in partial],
                           [r["d_int90_max"] or 1 for r in partial], marker="o", facecolors="none",
                           edgecolors="grey", label=f"{label}: some seeds not reached")
                drawn = True
        if not drawn:  # no seed has ended its search at any budget yet: no empty figure
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training budget (epochs)")
        ax.set_ylabel("d_int90 (mean; bars: seeds and search bracket)")
        ax.set_title(f"d_int90 against training budget — {arch}/{ds}")
        ax.legend(fontsize=8)
        paths.append(save_figure(fig, out / f"d_int90_vs_budget_{slug(arch)}_{slug(ds)}.png"))
        plt.close(fig)
    return paths


__all__ = [
    "BUDGET_COLUMNS",
    "NOT_CONVERGED_MARGIN",
    "accuracy_at",
    "budget_figure",
    "budget_rows",
    "budgets",
    "converged",
    "convergence_counts",
    "crossing_at",
    "curve_of",
    "error_bars",
]
