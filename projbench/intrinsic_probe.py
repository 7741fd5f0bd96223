"""Why a d_int90 search missed its target: one probe run at the largest d that can be built.

A search that does not reach its target within d <= d_max is followed by one subspace run at
the largest d that can be built — D, else D/2, D/4, … (at most :data:`PROBE_TRIES` values, a
projection over its memory budget failing at once) — unless the search already tried d = D.
If even that run misses the target, the recipe is at fault (raise lr or epochs; lower lr when
it diverged); otherwise d_max is (raise it, or extend the grid). :func:`explain_unreached`
puts that advice in the row's message. The probe's record is kept in :data:`PROBE_FILE` beside
the study file, so a rerun does not train it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

#: how many ever smaller d (D, D/2, …) the probe tries when a projection cannot be built at D
PROBE_TRIES = 4
PROBE_FILE = "probes.json"


def _unreached_chain(engine: Any, row: dict[str, Any]) -> Any | None:
    """The first chain of ``row`` (same variant and projection) whose search missed the target."""
    for chain in engine.chains:
        group = engine.groups[chain.group]
        if (
            chain.projection == row["projection"]
            and group.variant_label == row["variant"]
            and chain.crossing is not None
            and chain.crossing.d is None
        ):
            return chain
    return None


def _probe_candidates(num_params: int, tried: int) -> list[int]:
    """D, D/2, D/4, … (at most PROBE_TRIES values), each above the largest d already tried."""
    out: list[int] = []
    d = num_params
    while d > tried and len(out) < PROBE_TRIES:
        out.append(d)
        d //= 2
    return out


def _load_probes(folder: Path) -> dict[str, Any]:
    """Probe records kept from earlier invocations (an unreadable file counts as none)."""
    try:
        data = json.loads((folder / PROBE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_probes(folder: Path, probes: dict[str, Any]) -> None:
    """Keep the probe records in :data:`PROBE_FILE` (replaced whole; a failure is ignored)."""
    tmp = folder / (PROBE_FILE + ".tmp")
    try:
        tmp.write_text(json.dumps(probes, default=repr), encoding="utf-8")
        os.replace(tmp, folder / PROBE_FILE)
    except OSError:
        pass  # a cache: losing it only costs the probe run again


def _probe(engine: Any, chain: Any, candidates: list[int], pool: Any, data_dir: str | None,
           folder: Path) -> tuple[int, dict[str, Any]] | None:
    """Train the chain's subspace run at the first candidate d whose run does not fail (a
    projection over its memory budget fails at once); (d, record), or None."""
    from projbench.training_runs import execute_run

    probes = _load_probes(folder)
    for d in candidates:
        spec = engine.subspace_spec(chain, d)
        record = probes.get(spec.run_id)
        if not isinstance(record, dict) or record.get("status") not in ("ok", "diverged"):
            record = pool.submit(execute_run, spec, data_dir).result()
        if record.get("status") in ("ok", "diverged"):
            probes[spec.run_id] = record
            _save_probes(folder, probes)
            return d, record
    return None


def unreached_message(
    *, d_probe: int | None, accuracy: float | None, diverged: bool, target: float, baseline: float,
    tried: int, num_params: int, recipe: Any, method: str = "bisect",
) -> str:
    """What to change when a search missed ``target``, from the probe at ``d_probe``: reached
    there -> raise d_max (extend the grid); missed even there (or at D itself) -> fix the
    recipe, not the search range."""
    bound = "d_max" if method == "bisect" else "the grid"
    fix = f"raise --lr (now {recipe.lr:g}) or --epochs (now {recipe.epochs}), not {bound}"
    if d_probe is None or accuracy is None:
        return (f"not reached within d <= {tried:,}, and no larger d could be built to tell why: "
                f"raise {bound} (up to D = {num_params:,}) or {fix}")
    at = f"d = {d_probe:,}" + (" = D" if d_probe == num_params else "")
    if diverged:
        return f"not reached, and training diverged even at {at}: lower --lr (now {recipe.lr:g})"
    if accuracy >= target:
        widen = f"raise --d-max (e.g. --d-max {d_probe})" if method == "bisect" else (
            f"extend --grid up to {d_probe}")
        return (f"not reached within d <= {tried:,}, but {at} reaches {accuracy:.3f} >= target "
                f"{target:.3f}: {widen}")
    share = f"{target / baseline:.0%} of baseline {baseline:.3f}" if baseline > 0 else "the target"
    return (f"even {at} reaches only {accuracy:.3f} < target {target:.3f} ({share}): "
            f"the recipe does not train this model in a subspace; {fix}")


def explain_unreached(
    outcome: Any, pool: Any, data_dir: str | None, num_params: int, folder: Path, console: Any
) -> None:
    """Replace the 'raise d_max' hint of every row whose search missed its target by what one
    probe run at the largest buildable d (or the d = D the search already tried) says."""
    from projbench.study.engine import run_accuracy

    engine = outcome.engine
    for row in outcome.rows:
        if row["status"] not in ("not reached", "partly reached"):
            continue
        chain = _unreached_chain(engine, row)
        if chain is None:
            continue
        group = engine.groups[chain.group]
        tried = max(chain.crossing.evaluated)
        choice = engine.spec.pairs[group.pair].search.get("accuracy", "final")
        found: tuple[int, dict[str, Any]] | None
        if tried >= num_params:
            rec = engine.results.get(engine.subspace_spec(chain, tried).run_id)
            found = (tried, rec) if rec is not None else None
        else:
            candidates = _probe_candidates(num_params, tried)
            console.print(
                f"{row['projection']}: target missed within d <= {tried:,}; one probe run at "
                f"d = {candidates[0]:,} tells a small d_max from a recipe that does not train",
                highlight=False,
            )
            found = _probe(engine, chain, candidates, pool, data_dir, folder)
        row["message"] = unreached_message(
            d_probe=found[0] if found else None,
            accuracy=run_accuracy(found[1], choice) if found else None,
            diverged=bool(found and found[1].get("status") == "diverged"),
            target=float(group.target),
            baseline=float(group.baseline_accuracy),
            tried=tried,
            num_params=num_params,
            recipe=group.recipe,
            method=engine.spec.pairs[group.pair].search["method"],
        )
