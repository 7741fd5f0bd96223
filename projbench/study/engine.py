"""The study engine: turns a :class:`~projbench.study.spec.StudySpec` into training runs on a
task pool and the runs' results into d_int90 values.

Work is organised in **groups** — (pair, variant), where a variant is one combination of the
study's axes — and **chains** — (group, projection, seed), one d_int90 search each
(:mod:`projbench.search`). A group first needs its baselines: full training per seed (and, for
the global baseline, at lr/3, lr and 3·lr); they are shared by all of the group's chains (and by
any other group with the same run identity). The target is ``threshold`` × the baseline accuracy
(local: mean over seeds; global: the best recipe's mean). A baseline that failed, diverged or
is near chance (below 1 / number of classes + 0.1 for any seed) stops its group with a message instead of
searching against a meaningless target.

**A trained θ₀** (a pair's or a variant's ``theta0``, :mod:`projbench.transfer`): a group whose
θ₀ is pretrained first needs that pretraining — one run, shared by every group (and seed) with
the same pretraining identity, whose weights are kept in ``theta0_dir/<its run id>.pt``. Only
then are its baselines (full fine-tuning from θ₀) and searches (subspace fine-tuning) queued. A
finished pretraining whose file is missing is trained again; one that failed or diverged stops
its groups with a message.

Scheduling: every chain whose target is known proposes its next round of d values; every run
that is needed and neither finished nor in flight is queued; the queue feeds the pool up to its
number of workers, earlier pairs (in the study's order) first and, within a pair, in the order
the runs were found; then the engine waits for the first result, records it
(:class:`~projbench.study.store.StudyStore`) and repeats. So the first pair's table is
complete before the last pair's runs start, and an interrupted study has finished whole pairs
rather than a little of everything. Independent
chains and the k points of a k-section round all run concurrently, so a study fills as many
workers as it has independent runs. Because a chain advances only on a complete round, the d
values tried — hence the d_int90 values — do not depend on the pool or on completion order.

With ``pool=None`` the engine *replays* a study from stored results only (``projbench report``
uses this): nothing is trained, chains stop where their results stop.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from projbench.recipe import Recipe
from projbench.search import Crossing, Search, make_search
from projbench.study.spec import StudySpec, variant_text
from projbench.study.spec_fields import NON_RECIPE_AXES
from projbench.training_runs import RunSpec, execute_run
from projbench.transfer import Theta0, resolve_theta0

MAX_ATTEMPTS = 3
#: direct networks span [d_min, DIRECT_RANGE_FACTOR x d_max] parameters (capped at D)
DIRECT_RANGE_FACTOR = 10
#: a baseline seed below chance + CHANCE_MARGIN (absolute accuracy) has not learnt the task
CHANCE_MARGIN = 0.1


@dataclass
class Group:
    """(pair, variant): shared baselines and the target accuracy."""

    index: int
    pair: int
    variant: dict[str, Any]
    recipe: Recipe
    burn_in: int
    baseline_specs: dict[str, list[RunSpec]]  # recipe label -> one spec per seed
    direct: list[tuple[dict[str, Any], int, float, list[RunSpec]]] = field(default_factory=list)
    target: float | None = None
    baseline_accuracy: float | None = None
    baseline_recipe: dict[str, Any] | None = None
    failed: str | None = None
    #: where θ₀ comes from (None: a fresh initialisation) and the subspace runs' scaling
    theta0: Theta0 | None = None
    scaling: str = "none"
    #: the pretraining this group's θ₀ needs first, and its test accuracy on its own task
    pretrain: RunSpec | None = None
    theta0_accuracy: float | None = None

    @property
    def theta0_label(self) -> str:
        """``scratch``, ``pretrain mnist[0-4]`` or ``checkpoint NAME``."""
        return self.theta0.label() if self.theta0 is not None else "scratch"

    @property
    def variant_label(self) -> str:
        return variant_text(self.variant, self.theta0_label)


@dataclass
class Chain:
    """One search: (group, projection label, seed)."""

    group: int
    projection: str
    seed: int
    search: Search | None = None
    round: list[int] = field(default_factory=list)
    crossing: Crossing | None = None
    failed: str | None = None
    run_ids: set[str] = field(default_factory=set)

    @property
    def done(self) -> bool:
        return self.crossing is not None or self.failed is not None


class StudyEngine:
    """Plans and drives one study; see the module docstring.

    ``on_record(record, spec)`` is called for each run trained by this invocation;
    ``data_dir`` is passed to every run. ``run_fn`` defaults to :func:`execute_run` (tests may
    pass another picklable function). ``theta0_dir`` is the folder of pretrained θ₀ weights
    (a study's ``OUT/theta0``; None when replaying).
    """

    def __init__(
        self,
        spec: StudySpec,
        *,
        results: dict[str, dict[str, Any]] | None = None,
        pool: Any | None = None,
        store: Any | None = None,
        data_dir: str | None = None,
        on_record: Callable[[dict[str, Any], RunSpec], None] | None = None,
        run_fn: Callable[..., dict[str, Any]] = execute_run,
        num_classes: Callable[[str], int] | None = None,
        provenance: Callable[[dict[str, Any]], list[str]] | None = None,
        theta0_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.spec = spec
        self.theta0_dir = None if theta0_dir is None else Path(theta0_dir)
        self.results: dict[str, dict[str, Any]] = dict(results or {})
        self.pool = pool
        self.store = store
        self.data_dir = data_dir
        self.on_record = on_record
        self.run_fn = run_fn
        self._num_classes = num_classes or _registry_num_classes
        self._provenance = provenance
        self.failed: dict[str, dict[str, Any]] = {}
        self.inflight: dict[Future[Any], tuple[RunSpec, int]] = {}
        self.inflight_ids: set[str] = set()
        self._queue: list[tuple[int, int, RunSpec]] = []  # (pair index, discovery order, spec)
        self._queued_ids: set[str] = set()
        self.trained = 0
        self.wait_s = 0.0
        self.exec_s = 0.0
        self.wall_s = 0.0
        self._resubmit: list[tuple[RunSpec, int]] = []
        self.groups, self.chains = self._plan()

    # -- planning ------------------------------------------------------------------------
    def _plan(self) -> tuple[list[Group], list[Chain]]:
        groups: list[Group] = []
        chains: list[Chain] = []
        for p_index, pair in enumerate(self.spec.pairs):
            for variant in self.spec.variants():
                recipe_changes = {k: v for k, v in variant.items() if k not in NON_RECIPE_AXES}
                recipe = Recipe(**{**pair.recipe, **recipe_changes})
                burn_in = int(variant.get("burn_in", 0))
                theta0, pretrain = self._theta0(p_index, variant)
                scaling = str(variant.get("scaling", pair.run.get("scaling", "none")))
                recipes = {"local": recipe}
                if pair.search["baseline"] == "global":
                    recipes = {
                        "lr/3": recipe.with_(lr=recipe.lr / 3),
                        "local": recipe,
                        "3lr": recipe.with_(lr=recipe.lr * 3),
                    }
                base = {
                    label: [self._base_spec(p_index, r, s, theta0) for s in self.spec.seeds]
                    for label, r in recipes.items()
                }
                group = Group(len(groups), p_index, variant, recipe, burn_in, base, theta0=theta0,
                              scaling=scaling, pretrain=pretrain)
                group.direct = self._direct_specs(p_index, recipe)
                groups.append(group)
                for label in pair.projections:
                    for seed in self.spec.seeds:
                        chains.append(Chain(group.index, label, seed))
        return groups, chains

    def _theta0(self, pair_index: int, variant: dict[str, Any]) -> tuple[Theta0 | None, RunSpec | None]:
        """The group's θ₀ source (the variant's ``theta0``, else the pair's) and, for a
        pretraining, its run, keeping its weights in ``theta0_dir/<run id>.pt``."""
        pair = self.spec.pairs[pair_index]
        raw = variant["theta0"] if "theta0" in variant else pair.theta0
        table = resolve_theta0(raw, f"{pair.label} ", dataset=pair.dataset, recipe=pair.recipe, run=pair.run)
        if table is None:
            return None, None
        theta0 = Theta0.from_spec(table)
        if theta0.source != "pretrain":
            return theta0, None
        pretrain = self._base_spec(pair_index, Recipe(**pair.recipe), 0, theta0).pretrain_spec()
        if self.theta0_dir is None:
            return theta0, pretrain
        path = self.theta0_dir / f"{pretrain.run_id}.pt"
        return theta0.with_path(path), pretrain.with_(save_weights=str(path))

    def _direct_specs(
        self, pair_index: int, recipe: Recipe
    ) -> list[tuple[dict[str, Any], int, float, list[RunSpec]]]:
        """Directly trained smaller networks whose D spans [d_min, 10·d_max] (log-spaced), each at
        every learning rate of ``[direct] lrs`` (default: the recipe's) and every seed."""
        if not self.spec.direct:
            return []
        from projbench.architectures import count_parameters_for, size_for_parameters
        from projbench.training_runs import parameter_count

        pair = self.spec.pairs[pair_index]
        s = pair.search
        lo, hi = (s["d_min"], s["d_max"]) if s["method"] == "bisect" else (min(s["grid"]), max(s["grid"]))
        # direct networks must be able to reach the target: span up to 10 x the largest d
        # searched (capped at the full model's D), log-spaced
        hi = min(DIRECT_RANGE_FACTOR * hi,
                 parameter_count(pair.architecture, pair.dataset, num_classes=pair.num_classes))
        n = int(self.spec.direct["sizes"])
        seen: dict[int, dict[str, Any]] = {}
        for i in range(n):
            target = round(math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1)))
            opts = size_for_parameters(pair.architecture, pair.dataset, max(target, 1))
            size = count_parameters_for(pair.architecture, pair.dataset, num_classes=pair.num_classes, **opts)
            seen.setdefault(size, opts)
        lrs = self.spec.direct.get("lrs") or [recipe.lr]
        out = []
        for size, opts in sorted(seen.items()):
            for lr in lrs:
                specs = [
                    self._base_spec(pair_index, recipe.with_(lr=float(lr)), seed).with_(
                        arch_options=tuple(sorted(opts.items()))
                    )
                    for seed in self.spec.seeds
                ]
                out.append((opts, size, float(lr), specs))
        return out

    def _base_spec(self, pair_index: int, recipe: Recipe, seed: int, theta0: Theta0 | None = None) -> RunSpec:
        pair = self.spec.pairs[pair_index]
        run = pair.run
        return RunSpec(
            pair.architecture,
            pair.dataset,
            seed,
            recipe,
            train_subset=run["train_subset"],
            test_subset=run["test_subset"],
            device=run["device"],
            dtype=run["dtype"],
            threads=int(run["threads"]),
            fwht_backend=run.get("fwht_backend"),
            classes=tuple(pair.classes),
            theta0=theta0,
        )

    def subspace_spec(self, chain: Chain, d: int) -> RunSpec:
        group = self.groups[chain.group]
        entry = self.spec.projection(chain.projection)
        base = self._base_spec(group.pair, group.recipe, chain.seed, group.theta0)
        return base.with_(
            projection=entry.name,
            d=int(d),
            options=tuple(sorted(entry.options.items())),
            per_layer=bool(self.spec.pairs[group.pair].run["per_layer"]),
            burn_in=group.burn_in,
            scaling=group.scaling,
        )

    # -- results -------------------------------------------------------------------------
    def _get(self, spec: RunSpec, pair: int) -> dict[str, Any] | None:
        """The finished (or finally failed) record of ``spec``, else queue it (once) with the
        priority of pair ``pair``."""
        rid = spec.run_id
        if (
            rid not in self.results
            and rid not in self.failed
            and rid not in self.inflight_ids
            and rid not in self._queued_ids
            and self.pool is not None
        ):
            self._queue.append((pair, len(self._queued_ids) + self.trained + len(self.failed), spec))
            self._queued_ids.add(rid)
        return self.results.get(rid) or self.failed.get(rid)

    def _fill(self) -> bool:
        """Submit queued runs while the pool has a free worker, earliest pair first. True when
        a run finished during submission (an inline pool), so the caller sweeps again before
        choosing the next run."""
        capacity = max(1, int(getattr(self.pool, "workers", 1) or 1))
        while self._queue and len(self.inflight) < capacity:
            best = min(range(len(self._queue)), key=lambda i: self._queue[i][:2])
            _, _, spec = self._queue.pop(best)
            self._queued_ids.discard(spec.run_id)
            if self._submit(spec, 1):
                return True
        return False

    def _submit(self, spec: RunSpec, attempt: int) -> bool:
        """Submit one run; True when it already finished (an inline pool ran it)."""
        start = time.perf_counter()
        args = (spec, self.data_dir) + ((self.spec.measure,) if self.spec.measure else ())
        future = self.pool.submit(self.run_fn, *args)  # type: ignore[union-attr]
        if future.done():  # an inline pool ran it already: record it at once (a kill loses nothing)
            self.exec_s += time.perf_counter() - start
            self._collect(future, spec, attempt)
            return True
        self.inflight[future] = (spec, attempt)
        self.inflight_ids.add(spec.run_id)
        return False

    def _collect(self, future: Future[Any], spec: RunSpec, attempt: int) -> bool:
        """Record a finished future; False when its worker died and the run must be resubmitted."""
        try:
            record = future.result()
        except BrokenProcessPool:
            if attempt < MAX_ATTEMPTS:
                self._resubmit.append((spec, attempt + 1))
                return False
            record = _failed_record(
                spec, f"a worker process died (killed?) during this run {MAX_ATTEMPTS} times"
            )
        except Exception as exc:  # noqa: BLE001 - e.g. a Ray task error: record it, go on
            record = _failed_record(spec, f"{type(exc).__name__}: {exc}")
        self._accept(spec, record)
        return True

    def _accept(self, spec: RunSpec, record: dict[str, Any]) -> None:
        rid = spec.run_id
        diffs = self._provenance(record) if self._provenance is not None and record.get("provenance") else []
        if diffs and record.get("status") in ("ok", "diverged"):
            record = {
                **record,
                "status": "failed",
                "error": f"the worker ran with other inputs than the driver ({'; '.join(diffs)})",
            }
        if self.store is not None:
            self.store.append_run(record)
        if record.get("status") in ("ok", "diverged"):
            self.results[rid] = record
            self.trained += 1
        else:
            self.failed[rid] = record
        if self.on_record is not None:
            self.on_record(record, spec)

    @staticmethod
    def accuracy(record: dict[str, Any], choice: str = "final") -> float:
        """The test accuracy a search uses: ``final`` — the run's last evaluation; ``best`` —
        the best evaluation point of its learning curve (the final one when it has none).
        A missing, non-numeric or non-finite accuracy is 0 (a run that did not learn)."""
        return run_accuracy(record, choice)

    def _acc(self, record: dict[str, Any], pair_index: int) -> float:
        return run_accuracy(record, self.spec.pairs[pair_index].search.get("accuracy", "final"))

    # -- advancing -----------------------------------------------------------------------
    def _advance_group(self, group: Group) -> bool:
        for _, _, _, specs in group.direct:
            for spec in specs:
                self._get(spec, group.pair)
        if group.target is not None or group.failed is not None:
            return False
        if group.pretrain is not None and group.theta0_accuracy is None:
            pretrained = self._pretrained(group)
            if pretrained is None:
                return False
            if group.failed is not None:
                return True
        means: dict[str, float] = {}
        missing = False
        for label, specs in group.baseline_specs.items():
            records = [self._get(s, group.pair) for s in specs]
            if any(r is None for r in records):
                missing = True
                continue
            for s, r in zip(specs, records):
                assert r is not None
                if r.get("status") == "failed":
                    group.failed = f"baseline failed (seed {s.seed}, lr {s.recipe.lr:g}): {r.get('error')}"
                    return True
                if r.get("status") == "diverged":
                    group.failed = (
                        f"baseline diverged (seed {s.seed}, lr {s.recipe.lr:g}): "
                        f"{r.get('error')}; lower the learning rate"
                    )
                    return True
            means[label] = statistics.fmean(self._acc(r, group.pair) for r in records if r is not None)
        if missing:
            return False
        best_label = max(means, key=lambda k: means[k]) if len(means) > 1 else "local"
        base_acc = means[best_label]
        pair = self.spec.pairs[group.pair]
        chance = 1.0 / (pair.num_classes or self._num_classes(pair.dataset))
        group.baseline_accuracy = base_acc
        group.baseline_recipe = group.baseline_specs[best_label][0].recipe.to_dict()
        for spec in group.baseline_specs[best_label]:
            acc = self._acc(self.results[spec.run_id], group.pair)
            if acc < chance + CHANCE_MARGIN:
                group.failed = (
                    f"baseline accuracy {acc:.3f} (seed {spec.seed}, lr {spec.recipe.lr:g}) is near chance "
                    f"({chance:.2f}): the recipe does not train this model reliably (check lr, epochs, batch "
                    "size); no search against it"
                )
                return True
        group.target = float(pair.search["threshold"]) * base_acc
        return True

    def _pretrained(self, group: Group) -> dict[str, Any] | None:
        """The record of the group's θ₀ pretraining once finished (queued until then; trained
        again when its weights file is gone); sets ``theta0_accuracy``, or ``failed``."""
        pretrain = group.pretrain
        assert pretrain is not None
        rid = pretrain.run_id
        weights = pretrain.save_weights
        if self.pool is not None and weights and rid in self.results and not Path(weights).is_file():
            del self.results[rid]  # the weights are gone: train it again
        record = self._get(pretrain, group.pair)
        if record is None:
            return None
        if record.get("status") != "ok":
            how = "diverged" if record.get("status") == "diverged" else "failed"
            group.failed = f"θ₀ pretraining {how} ({pretrain.label()}): {record.get('error')}"
        else:
            group.theta0_accuracy = self._acc(record, group.pair)
        return record

    def _advance_chain(self, chain: Chain) -> bool:
        if chain.done:
            return False
        group = self.groups[chain.group]
        if group.failed is not None:
            chain.failed = group.failed
            return True
        if group.target is None:
            return False
        progressed = False
        if chain.search is None:
            s = self.spec.pairs[group.pair].search
            chain.search = make_search(
                s["method"],
                group.target,
                d_min=s["d_min"],
                d_max=s["d_max"],
                rtol=s["rtol"],
                grid=s["grid"],
                points_per_round=s["points_per_round"],
            )
            chain.round = chain.search.propose()
            progressed = True
        while True:
            specs = {d: self.subspace_spec(chain, d) for d in chain.round}
            records = {d: self._get(spec, group.pair) for d, spec in specs.items()}
            if any(r is None for r in records.values()):
                return progressed
            for d, r in records.items():
                assert r is not None
                chain.run_ids.add(specs[d].run_id)
                if r.get("status") == "failed":
                    chain.failed = f"run d={d} failed: {r.get('error')}"
                    return True
                chain.search.observe(d, self._acc(r, group.pair), r.get("status") == "diverged")
            chain.round = chain.search.propose()
            progressed = True
            if not chain.round:
                chain.crossing = chain.search.crossing()
                return True

    def _sweep(self) -> None:
        while True:
            changed = True
            while changed:
                changed = False
                for group in self.groups:
                    changed |= self._advance_group(group)
                for chain in self.chains:
                    changed |= self._advance_chain(chain)
            if self.pool is None or not self._fill():
                return

    def run(self) -> StudyEngine:
        """Drive the study to the end (or, without a pool, replay it from the results)."""
        start = time.perf_counter()
        self._sweep()
        while self.inflight:
            t0 = time.perf_counter()
            done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
            self.wait_s += time.perf_counter() - t0
            broken = False
            for future in done:
                spec, attempt = self.inflight.pop(future)
                self.inflight_ids.discard(spec.run_id)
                broken |= not self._collect(future, spec, attempt)
            if broken:
                self._recover()
            self._sweep()
        self.wall_s += time.perf_counter() - start
        return self

    def _recover(self) -> None:
        """A worker died: every in-flight future of the broken pool is lost; restart, resubmit."""
        lost = list(self.inflight.values())
        self.inflight.clear()
        self.inflight_ids.clear()
        restart = getattr(self.pool, "restart", None)
        if restart is not None:
            restart()
        todo = self._resubmit + [(s, a) for s, a in lost]
        self._resubmit = []
        for spec, attempt in todo:
            self._submit(spec, attempt)  # at most the pool's width: they were in flight together

    # -- summaries -----------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per (pair, variant, projection): the study table
        (:func:`projbench.study.summary.table_rows`)."""
        from projbench.study.summary import table_rows

        return table_rows(self)

    def stability_rows(self) -> list[dict[str, Any]]:
        """Per (pair, variant, projection, d): divergence, loss spikes, cond(P), accuracy
        (:func:`projbench.study.summary.stability_rows`)."""
        from projbench.study.summary import stability_rows

        return stability_rows(self)

    @property
    def driver_overhead_per_run_s(self) -> float | None:
        """Driver time per new run, excluding waiting for workers and inline execution."""
        if not self.trained:
            return None
        return max(self.wall_s - self.wait_s - self.exec_s, 0.0) / self.trained


def _number(value: Any) -> float | None:
    """A finite float from a JSON number (never from a string or a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def run_accuracy(record: dict[str, Any], choice: str = "final") -> float:
    """See :meth:`StudyEngine.accuracy`."""
    final = _number((record.get("stats") or {}).get("test_accuracy"))
    if choice == "best":
        curve = (record.get("samples") or {}).get("curve")
        points = [_number(p.get("test_accuracy")) for p in curve or [] if isinstance(p, dict)]
        finite = [p for p in points if p is not None]
        if finite:
            return max(finite)
    return final if final is not None else 0.0


def _failed_record(spec: RunSpec, error: str) -> dict[str, Any]:
    return {
        "type": "run",
        "run_id": spec.run_id,
        "identity": spec.identity,
        "status": "failed",
        "stats": {},
        "samples": {},
        "error": error,
        "worker": {},
    }


def _registry_num_classes(dataset: str) -> int:
    from projbench.manager import get_registry

    try:
        return int(get_registry("datasets").get(dataset).num_classes)
    except Exception:  # noqa: BLE001 - an unknown dataset: assume 10 classes for the chance check
        return 10


__all__ = ["Chain", "Group", "StudyEngine"]
