"""The d_int90 of one (architecture, dataset) pair: a one-pair study (Li et al. 2018).

:func:`intrinsic_spec` builds the :class:`~projbench.study.spec.StudySpec` of a single pair from
keyword arguments, and :func:`find_intrinsic_dim` runs it on any task pool (inline by default)
into a study folder (resumable) or in memory. Definitions — local/global baseline, the target,
the search and the interpolated crossing — are in :mod:`projbench.study.engine` and
:mod:`projbench.search`; the training runs in :mod:`projbench.training_runs`. The defaults
``projbench intrinsic-dim`` adds (search clipped to D, recipe, folder name) are in
:mod:`projbench.intrinsic_defaults`, the probe that explains a missed target in
:mod:`projbench.intrinsic_probe`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from projbench.recipe import Recipe
from projbench.search import DEFAULT_GRID
from projbench.study.spec import StudySpec
from projbench.study.spec_resolve import resolve
from projbench.training_runs import RunSpec, execute_run


def intrinsic_spec(
    architecture: str,
    dataset: str,
    projections: Sequence[str],
    *,
    seeds: Sequence[int] | int = (0, 1, 2),
    recipe: Recipe | dict[str, Any] | None = None,
    search: str = "bisect",
    grid: Sequence[int] | None = None,
    d_min: int = 10,
    d_max: int = 10000,
    rtol: float = 0.1,
    points_per_round: int = 1,
    threshold: float = 0.9,
    baseline: str = "global",
    per_layer: bool = False,
    options: dict[str, Any] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int = 1,
    fwht_backend: str | None = None,
) -> StudySpec:
    """The one-pair study that measures d_int90 of ``architecture`` on ``dataset``.

    ``options`` go to every projection that accepts them. ``recipe`` fields not given take Li
    et al.'s defaults (with the architecture's L2).
    """
    from projbench.manager import get_registry

    recipe_fields = recipe.to_dict() if isinstance(recipe, Recipe) else dict(recipe or {})
    entries: list[Any] = []
    for name in projections:
        accepted = set(get_registry("projections").get(name).option_names())
        opts = {k: v for k, v in (options or {}).items() if k in accepted}
        entries.append({"label": name, "name": name, "options": opts} if opts else name)
    name = f"intrinsic-{architecture}-{dataset}"
    run = {
        "train_subset": train_subset,
        "test_subset": test_subset,
        "device": device,
        "dtype": dtype,
        "threads": threads,
        "per_layer": per_layer,
        "fwht_backend": fwht_backend,
    }
    data: dict[str, Any] = {
        "name": name,
        "seeds": list(seeds) if not isinstance(seeds, int) else seeds,
        "projections": entries,
        "search": {
            "method": search,
            "d_min": d_min,
            "d_max": d_max,
            "rtol": rtol,
            "grid": list(grid) if grid is not None else (list(DEFAULT_GRID) if search == "grid" else None),
            "points_per_round": points_per_round,
            "threshold": threshold,
            "baseline": baseline,
        },
        "recipe": {k: v for k, v in recipe_fields.items() if v is not None},
        "run": {k: v for k, v in run.items() if v is not None},
        "pairs": [{"architecture": architecture, "dataset": dataset}],
    }
    return resolve(data, name)


def find_intrinsic_dim(
    architecture: str,
    dataset: str,
    projections: Sequence[str],
    *,
    out: str | os.PathLike[str] | None = None,
    pool: Any | None = None,
    data_dir: str | None = None,
    run_fn: Callable[..., dict[str, Any]] = execute_run,
    on_record: Callable[[dict[str, Any], RunSpec], None] | None = None,
    **settings: Any,
) -> Any:
    """d_int90 of each projection (a :class:`projbench.study.StudyOutcome`; its ``rows`` hold
    the table). ``settings`` are those of :func:`intrinsic_spec`. With ``out`` every run is
    recorded in that study folder and a rerun resumes from it; ``pool`` defaults to inline."""
    from projbench.executors import InlinePool
    from projbench.study.driver import StudyOutcome, run_study
    from projbench.study.engine import StudyEngine

    spec = intrinsic_spec(architecture, dataset, projections, **settings)
    pool = pool or InlinePool()
    if out is not None:
        return run_study(spec, out, pool=pool, data_dir=data_dir, on_record=on_record, run_fn=run_fn)
    engine = StudyEngine(spec, pool=pool, data_dir=data_dir, on_record=on_record, run_fn=run_fn).run()
    from pathlib import Path

    return StudyOutcome(spec, engine, Path("."), 0, engine.rows())


__all__ = ["find_intrinsic_dim", "intrinsic_spec"]
