"""The study table from an engine's state: one row per (pair, variant, projection) with
d_int90 (mean, interval, per seed), the baseline, cost, convergence, the directly trained
networks and the bytes to ship; and the stability rows per evaluated d.

Nothing here trains or changes the engine. The byte columns are computed once per row: the full
model's state_dict size on the meta device (no memory), and the exported payload of the
subspace model at d = d_int90.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

from projbench.errors import ProjbenchError
from projbench.search import SpreadStats, bracket_interval, search_bracket
from projbench.study.budget import convergence_counts
from projbench.study.spec import axis_value_text

if TYPE_CHECKING:
    from projbench.study.engine import Group, StudyEngine


def table_rows(engine: StudyEngine) -> list[dict[str, Any]]:
    """One row per (pair, variant, projection): the study table's content."""
    out = []
    sizes: dict[int, tuple[int | None, int | None]] = {}  # per pair: building a model costs ~30 ms
    for group in engine.groups:
        pair = engine.spec.pairs[group.pair]
        if group.pair not in sizes:
            sizes[group.pair] = (_parameter_count(pair), _state_dict_bytes(pair))
        num_params, full_bytes = sizes[group.pair]
        base_ids = {s.run_id for specs in group.baseline_specs.values() for s in specs}
        for label in pair.projections:
            chains = [c for c in engine.chains if c.group == group.index and c.projection == label]
            crossings = [c.crossing for c in chains if c.crossing is not None]
            ds = SpreadStats.of(c.d for c in crossings)
            interp = SpreadStats.of(c.interpolated for c in crossings)
            run_ids = set(base_ids).union(*(c.run_ids for c in chains))
            recs = [engine.results[r] for r in run_ids if r in engine.results]
            wall = sum(float((r.get("stats") or {}).get("run_wall_s") or 0.0) for r in recs)
            reached = sum(1 for c in crossings if c.d is not None)
            lo, hi = bracket_interval(crossings)
            not_converged, convergence_known = convergence_counts(recs)
            best = max((c.best_accuracy for c in crossings if c.best_accuracy is not None), default=None)
            failed = next((c.failed for c in chains if c.failed), None)
            status = _row_status(chains, reached, failed)
            hint = _row_hint(status, chains, pair.search, group.target, ds.minimum)
            out.append(
                {
                    "architecture": pair.architecture,
                    "dataset": pair.task,
                    "D": num_params,
                    "variant": group.variant_label,
                    "theta0": group.theta0_label,
                    "theta0_accuracy": group.theta0_accuracy,
                    "scaling": group.scaling,
                    **{f"axis_{k}": axis_value_text(k, v, group.theta0_label)
                       for k, v in group.variant.items()},
                    "projection": label,
                    "projection_name": engine.spec.projection(label).name,
                    "seeds": len(chains),
                    "reached": reached,
                    "searching": sum(1 for c in chains if not c.done),
                    **_searching_bracket(chains),
                    "d_int90_mean": ds.mean,
                    "d_int90_std": ds.std,
                    "d_int90_min": ds.minimum,
                    "d_int90_max": ds.maximum,
                    "d_int90_lo": lo,
                    "d_int90_hi": hi,
                    "not_converged": not_converged,
                    "convergence_known": convergence_known,
                    "per_seed": {c.seed: (c.crossing.d if c.crossing else None) for c in chains},
                    "interpolated_mean": interp.mean,
                    "interpolated_std": interp.std,
                    "d_int90_over_D": (ds.mean / num_params)
                    if ds.mean is not None and num_params
                    else None,
                    "baseline_accuracy": group.baseline_accuracy,
                    "target_accuracy": group.target,
                    "best_accuracy": best,
                    "runs": len(recs),
                    "wall_s": wall,
                    "device": pair.run["device"],
                    "device_hours": wall / 3600.0,
                    "status": status,
                    "message": failed or group.failed or hint,
                    "curve": _accuracy_curve(crossings),
                    "threshold": pair.search["threshold"],
                    **direct_summary(engine, group),
                    **_shipping(pair, engine.spec.projection(label), ds.mean, full_bytes, group),
                }
            )
    return out


def _searching_bracket(chains: list[Any]) -> dict[str, int | None]:
    """``search_lo``/``search_hi``: where the unfinished searches of a row stand together — the
    smallest of their largest failing d and the largest of their smallest passing d
    (:func:`projbench.search.search_bracket`); both None unless every unfinished search has
    both ends."""
    brackets = [search_bracket(c.search.passed) if c.search is not None else (None, None)
                for c in chains if not c.done]
    if not brackets or any(lo is None or hi is None for lo, hi in brackets):
        return {"search_lo": None, "search_hi": None}
    return {"search_lo": min(lo for lo, _ in brackets if lo is not None),
            "search_hi": max(hi for _, hi in brackets if hi is not None)}


def _row_status(chains: list[Any], reached: int, failed: str | None) -> str:
    """A row's status: the first of failed (a seed's search failed), incomplete (a seed's search
    has not finished), ok (every seed reached the target), partly reached, not reached."""
    if failed:
        return "failed"
    if any(not c.done for c in chains):
        return "incomplete"
    if reached == len(chains):
        return "ok"
    return "partly reached" if reached else "not reached"


def _row_hint(status: str, chains: list[Any], search: dict[str, Any], target: float | None,
              d_lowest: float | None) -> str | None:
    """What to change for a row whose search missed its target (:func:`_unreached_hint`), or
    whose bisection passed at its lower bound already (``d_lowest``: the smallest d_int90 of the
    seeds); None otherwise."""
    if status in ("not reached", "partly reached"):
        return _unreached_hint(chains, search, target)
    bisect = search["method"] == "bisect"
    if status == "ok" and d_lowest is not None and bisect and d_lowest <= search["d_min"]:
        return f"d_min {search['d_min']} already passes: lower d_min"
    return None


def _unreached_hint(chains: list[Any], search: dict[str, Any], target: float | None) -> str:
    """What a row whose search missed its target can change. The best accuracy seen says how
    far off it was; whether a larger d would pass or the recipe does not train this model in a
    subspace at all needs one run near d = D, which ``projbench intrinsic-dim`` makes (its
    probe), so both remedies are named."""
    bisect = search["method"] == "bisect"
    widen = f"raise d_max above {search['d_max']}" if bisect else "extend the grid upwards"
    missed = [c.crossing for c in chains if c.crossing is not None and c.crossing.d is None]
    seen = [(max(cr.evaluated), cr.best_accuracy) for cr in missed
            if cr.evaluated and cr.best_accuracy is not None]
    if not seen or target is None:
        return widen
    largest = max(d for d, _ in seen)
    best = max(a for _, a in seen)
    return (f"best {best:.3f} < target {target:.3f} within d <= {largest:,}: {widen}, or, if a run "
            "near d = D misses too, fix the recipe (lr, epochs)")


def _accuracy_curve(crossings: list[Any]) -> dict[int, list[float]]:
    """{d: the accuracy of each seed whose search evaluated d}, by increasing d."""
    evaluated: dict[int, list[float]] = {}
    for crossing in crossings:
        for d, accuracy in crossing.evaluated.items():
            evaluated.setdefault(d, []).append(accuracy)
    return dict(sorted(evaluated.items()))


def direct_summary(engine: StudyEngine, group: Group) -> dict[str, Any]:
    """d_direct90 — the smallest directly trained network reaching the target — and the
    direct curve {D: [mean accuracy of the best lr, std over seeds, that lr]}."""
    if not group.direct:
        return {}
    curve: dict[int, list[float]] = {}
    complete = True
    for _, size, lr, specs in group.direct:
        recs = [engine.results.get(sp.run_id) for sp in specs]
        if any(r is None for r in recs):
            complete = False
            continue
        accs = [engine._acc(r, group.pair) for r in recs if r is not None]
        mean = statistics.fmean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        if size not in curve or mean > curve[size][0]:
            curve[size] = [mean, std, lr]
    d_direct = None
    if group.target is not None:
        passing = [size for size, (mean, _, _) in curve.items() if mean >= group.target]
        d_direct = min(passing) if passing else None
    return {
        "d_direct90": d_direct,
        "direct_curve": dict(sorted(curve.items())),
        "direct_complete": complete,
    }


def stability_rows(engine: StudyEngine) -> list[dict[str, Any]]:
    """Per (pair, variant, projection, d): how many seeds diverged, loss spikes, the largest
    loss jump, the condition number of P on sampled columns, and accuracy."""
    out = []
    for chain_key in sorted({(c.group, c.projection) for c in engine.chains}):
        group = engine.groups[chain_key[0]]
        pair = engine.spec.pairs[group.pair]
        by_d: dict[int, list[dict[str, Any]]] = {}
        for c in engine.chains:
            if (c.group, c.projection) != chain_key:
                continue
            for d in c.crossing.evaluated if c.crossing else {}:
                rec = engine.results.get(engine.subspace_spec(c, d).run_id)
                if rec is not None:
                    by_d.setdefault(d, []).append(rec)
        for d, recs in sorted(by_d.items()):
            stats = [r.get("stats") or {} for r in recs]
            conds = [float(x["cond_P_sample"]) for x in stats if x.get("cond_P_sample") is not None]
            jumps = [
                float(x["max_loss_jump"])
                for x in stats
                if isinstance(x.get("max_loss_jump"), int | float) and not math.isnan(x["max_loss_jump"])
            ]
            out.append(
                {
                    "architecture": pair.architecture,
                    "dataset": pair.task,
                    "variant": group.variant_label,
                    "projection": chain_key[1],
                    "d": d,
                    "seeds": len(recs),
                    "diverged": sum(r.get("status") == "diverged" for r in recs),
                    "loss_spikes_mean": statistics.fmean(float(x.get("loss_spikes") or 0) for x in stats),
                    "max_loss_jump": max(jumps) if jumps else None,
                    "cond_P_sample": statistics.fmean(conds) if conds else None,
                    "accuracy_mean": statistics.fmean(engine._acc(r, group.pair) for r in recs),
                }
            )
    return out


def _parameter_count(pair: Any) -> int | None:
    """D, the parameter count of the pair's model; None for an architecture that is not
    installed (it still gets its row)."""
    from projbench.training_runs import parameter_count

    try:
        return parameter_count(pair.architecture, pair.dataset, num_classes=pair.num_classes)
    except ProjbenchError:
        return None


def _state_dict_bytes(pair: Any) -> int | None:
    """Size of the full model's state_dict (what shipping every parameter costs), counted on
    the meta device (shapes and dtypes only, no memory), or None for an unknown architecture."""
    try:
        import torch

        from projbench.architectures import make_model
        from projbench.subspace import state_dict_bytes

        with torch.device("meta"):
            model = make_model(pair.architecture, pair.dataset, num_classes=pair.num_classes)
        return state_dict_bytes(model)
    except ProjbenchError:
        return None


def _shipping(
    pair: Any, entry: Any, d_mean: float | None, full_bytes: int | None, group: Group | None = None,
) -> dict[str, Any]:
    """Bytes to ship the subspace-trained model at d = d_int90 (names, seeds, θ_d, buffers:
    :meth:`projbench.subspace.SubspaceModel.ship_bytes`) next to the full state_dict's size
    (``full_bytes``, computed once per pair). With the group's scaling; a θ₀ read from a
    checkpoint travels too (D more numbers); a pretrained one as its recipe (a few hundred
    bytes of header, not counted)."""
    if d_mean is None or full_bytes is None:
        return {"bytes_to_ship": None, "state_dict_bytes": None}
    try:
        from projbench.subspace import SubspaceModel
        from projbench.training_runs import tensor_count

        d = max(round(d_mean), 1)
        scaling = group.scaling if group is not None else "none"
        # the payload depends on P only through fixed-length fingerprints: build the model at
        # the smallest d it accepts (cheap for every projection) and size the file at d
        small = min(d, 1 + (tensor_count(pair.architecture, pair.dataset, num_classes=pair.num_classes)
                             if scaling == "said" else 0))
        model = SubspaceModel.from_names(
            pair.architecture, pair.dataset, entry.name, small, 0, num_classes=pair.num_classes,
            scaling=scaling, **entry.options,
        )
        stored = group is not None and group.theta0 is not None and group.theta0.source == "checkpoint"
        return {"bytes_to_ship": model.ship_bytes(include_theta0=stored, d=d), "state_dict_bytes": full_bytes}
    except (ProjbenchError, MemoryError):  # an informational column must not break the table
        return {"bytes_to_ship": None, "state_dict_bytes": None}


__all__ = ["direct_summary", "stability_rows", "table_rows"]
