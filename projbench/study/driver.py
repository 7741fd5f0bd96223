"""Run a study into a folder (creating or resuming it), or replay one from its folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from projbench.study.engine import StudyEngine
from projbench.study.spec import StudySpec
from projbench.study.spec_resolve import resolve
from projbench.study.store import StudyFile, StudyMismatchError, StudyStore, read_study
from projbench.training_runs import RunSpec, execute_run


@dataclass
class StudyOutcome:
    """A finished (or replayed) study: its engine (groups, chains, results) and table rows."""

    spec: StudySpec
    engine: StudyEngine
    folder: Path
    reused: int
    rows: list[dict[str, Any]]

    @property
    def trained(self) -> int:
        return self.engine.trained

    @property
    def failed_runs(self) -> int:
        return len(self.engine.failed)


def _env(pool: Any) -> dict[str, Any]:
    from projbench.results import environment_info

    env = environment_info()
    env["executor"] = {"kind": getattr(pool, "name", "none"), "workers": getattr(pool, "workers", 0)}
    return env


class StudyProvenance:
    """The provenance each of a study's runs must have here (computed in the driver, once
    per (architecture, dataset, projection, backend)); see :mod:`projbench.provenance`."""

    def __init__(self, data_dir: str | None) -> None:
        self.data_dir = data_dir
        self._cache: dict[tuple[Any, ...], dict[str, Any]] = {}

    def of(self, identity: dict[str, Any]) -> dict[str, Any]:
        from projbench.provenance import run_provenance

        theta0 = identity.get("theta0")
        pretrained = isinstance(theta0, dict) and theta0.get("from") == "pretrain"
        source = theta0.get("dataset") if pretrained and isinstance(theta0, dict) else None
        key = (str(identity.get("architecture")), str(identity.get("dataset")), identity.get("projection"),
               identity.get("fwht_backend"), source)
        if key not in self._cache:
            self._cache[key] = run_provenance(key[0], key[1], key[2], self.data_dir, key[3],
                                              theta0_dataset=None if source is None else str(source))
        return self._cache[key]

    def check_spec(self, spec: StudySpec) -> None:
        """Compute every pair's provenance now (and that of each θ₀ pretraining's data):
        missing data or an unknown name fails here, before any folder is made."""
        for pair in spec.pairs:
            sources: set[str | None] = {None}
            for variant in spec.variants():
                table = variant.get("theta0", pair.theta0)
                if isinstance(table, dict) and table.get("from") == "pretrain":
                    sources.add(str(table.get("dataset", pair.dataset)))
            for label in pair.projections:
                for source in sources:
                    theta0 = {"from": "pretrain", "dataset": source} if source else None
                    self.of({"architecture": pair.architecture, "dataset": pair.dataset,
                             "projection": spec.projection(label).name,
                             "fwht_backend": pair.run.get("fwht_backend"), "theta0": theta0})

    def differences(self, record: dict[str, Any]) -> list[str]:
        from projbench.provenance import provenance_differences

        return provenance_differences(record.get("provenance"), self.of(record.get("identity") or {}))

    def refuse_stale(self, previous: StudyFile) -> None:
        """Refuse to resume a folder whose finished runs were made with other data, another
        FWHT backend or another plugin behind a name."""
        for record in previous.runs.values():
            if record.get("status") not in ("ok", "diverged"):
                continue
            diffs = self.differences(record)
            if diffs:
                raise StudyMismatchError(
                    f"{previous.path.parent} holds runs made with other inputs ({'; '.join(diffs[:3])}); "
                    "use another --out folder, or restore the original data, FWHT backend and plugins"
                )


def run_study(
    spec: StudySpec,
    out: str | os.PathLike[str],
    *,
    pool: Any,
    data_dir: str | None = None,
    on_record: Callable[[dict[str, Any], RunSpec], None] | None = None,
    run_fn: Callable[..., dict[str, Any]] = execute_run,
    check_inputs: bool | None = None,
) -> StudyOutcome:
    """Run ``spec`` on ``pool`` into folder ``out``; resumes a folder holding the same study.

    Before anything is written, every pair's data is loaded and fingerprinted
    (:class:`StudyProvenance`); a folder whose finished runs were made with other data, FWHT
    backend or plugins is refused, and a new run whose worker saw other inputs than the driver
    is recorded as failed. ``check_inputs`` (default: when ``run_fn`` is the real
    :func:`execute_run`) turns these checks on.
    """
    if check_inputs is None:
        check_inputs = run_fn is execute_run
    provenance = StudyProvenance(data_dir) if check_inputs else None
    from projbench.study.checks import check_transfer

    check_transfer(spec)  # classes, θ₀ sources and scalings against the models' shapes: no data
    if provenance is not None:
        provenance.check_spec(spec)
        check_transfer(spec, data_dir, load_data=True)
    store = StudyStore(
        out, spec.to_dict(), _env(pool), validate=provenance.refuse_stale if provenance else None
    )
    finished = store.finished
    engine = StudyEngine(
        spec, results=finished, pool=pool, store=store, data_dir=data_dir, on_record=on_record, run_fn=run_fn,
        provenance=provenance.differences if provenance else None, theta0_dir=Path(out) / "theta0",
    )
    interrupted = True
    try:
        engine.run()
        interrupted = False
    finally:
        rows = engine.rows() if not interrupted else []
        store.close(
            None
            if interrupted
            else {
                "trained": engine.trained,
                "reused": len(finished),
                "failed": len(engine.failed),
                "wall_s": engine.wall_s,
                "driver_overhead_per_run_s": engine.driver_overhead_per_run_s,
                "rows": rows,
            }
        )
    used = {rid for c in engine.chains for rid in c.run_ids} | {
        s.run_id for g in engine.groups for specs in g.baseline_specs.values() for s in specs
    } | {g.pretrain.run_id for g in engine.groups if g.pretrain is not None}
    return StudyOutcome(spec, engine, Path(out), len(used & set(finished)), rows)


def replay_study(folder: str | os.PathLike[str]) -> tuple[StudyOutcome, Any]:
    """Rebuild a study's table from its folder alone (nothing is trained)."""
    study = read_study(folder)
    spec_dict = study.spec
    spec = spec_from_stored(spec_dict)
    spec.notes = _current_notes(spec.name, spec.notes)
    engine = StudyEngine(
        spec, results={k: v for k, v in study.runs.items() if v.get("status") in ("ok", "diverged")}
    )
    engine.failed = {k: v for k, v in study.runs.items() if v.get("status") == "failed"}
    engine.run()
    return StudyOutcome(spec, engine, Path(folder), len(engine.results), engine.rows()), study


def _current_notes(name: str, stored: str) -> str:
    """The notes of preset ``name`` as shipped now (notes explain a budget and may be corrected
    after a study ran; they are not part of its identity), else the stored notes."""
    from projbench.study.spec_files import preset_names, read_toml

    if name not in preset_names():
        return stored
    return str(read_toml(name)[0].get("notes", stored))


def spec_from_stored(stored: dict[str, Any]) -> StudySpec:
    """The StudySpec of a stored (resolved) spec dict."""
    from projbench.study.spec import PairSpec, ProjectionEntry

    spec = StudySpec(
        stored.get("name", "study"),
        stored.get("description", ""),
        stored.get("notes", ""),
        list(stored["seeds"]),
        [ProjectionEntry(**p) for p in stored["projections"]],
        [PairSpec(**p) for p in stored["pairs"]],
        dict(stored.get("axes") or {}),
        dict(stored.get("direct") or {}),
        dict(stored.get("measure") or {}),
    )
    return spec


__all__ = ["StudyOutcome", "replay_study", "resolve", "run_study", "spec_from_stored"]
