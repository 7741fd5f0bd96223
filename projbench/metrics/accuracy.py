"""The ``accuracy`` suite: subspace training θ = θ₀ + P θ_d at given d, against full training.

For each projection and d a fresh model ``make_model(arch, dataset, seed)`` is wrapped in a
:class:`projbench.SubspaceModel` (projection seed = run seed) and trained with the suite's
:class:`~projbench.recipe.Recipe`; the case records test accuracy, test loss, final training
loss, steps, epochs, the divergence flag (a NaN/inf loss stops the run: status ``diverged``)
and wall time. The **baseline** — full training of the same model with the same recipe (Li et
al.'s local baseline) — is its own case (projection ``"none"``, ``d=None``) and is also stored in
every subspace case's stats (``baseline_accuracy``, ``relative_accuracy`` = accuracy / baseline),
so each row of the table reads on its own. The baseline is trained once per suite instance and
process (memoised); in a process pool each worker may train it again (≈1 s on digits).

Grids: quick (the default of ``projbench run``) — ``mlp`` on ``digits`` (sklearn 8×8, offline,
1437 train / 360 test), d ∈ {16, 64, 256}, one seed, Adam lr 1e-2, 40 epochs (≈470 steps; a few
seconds per projection on one core). The larger lr than Li et al.'s 1e-3 is needed because so few
steps cannot move θ_d far enough at 1e-3. Full — d ∈ {8, …, 2048} (powers of two), seeds
seed, seed+1, seed+2, 100 epochs. The suite runs in float32 (``--dtype`` is ignored).

Threads: the default models are tiny, where intra-op parallelism only adds overhead (a digits MLP
step took ~13 ms with 2 threads vs ~1.3 ms with 1 on a loaded 2-core machine), so cases run with
``threads=1`` torch thread (restored afterwards); ``threads=None`` keeps torch's setting.
Case params are d, seed, epochs and lr; the rest of the recipe is the suite's (``recipe_for``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from projbench.errors import InvalidArgumentError, ResourceLimitError
from projbench.recipe import Recipe, default_weight_decay
from projbench.suites import Case, CaseOutcome, RunSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BASELINE = "none"
QUICK_DIMS: tuple[int, ...] = (16, 64, 256)
FULL_DIMS: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class AccuracySuite:
    """Test accuracy of subspace training at given d, relative to full training."""

    name: ClassVar[str] = "accuracy"
    description: ClassVar[str] = (
        "subspace training θ=θ₀+Pθ_d at given d (default mlp on digits): test accuracy, loss, "
        "steps, divergence, relative to full training of the same model"
    )
    table_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("test acc", "test_accuracy"),
        ("/ baseline", "relative_accuracy"),
        ("test loss", "test_loss"),
        ("steps", "steps"),
        ("diverged", "diverged"),
        ("wall s", "wall_s"),
    )

    def __init__(
        self,
        architecture: str = "mlp",
        dataset: str = "digits",
        dims: tuple[int, ...] | None = None,
        seeds: int | None = None,
        recipe: Recipe | None = None,
        train_subset: int | None = None,
        threads: int | None = 1,
    ) -> None:
        if dims is not None and (not dims or any(int(d) < 1 for d in dims)):
            raise InvalidArgumentError(f"dims must be positive integers, got {dims!r}")
        if seeds is not None and seeds < 1:
            raise InvalidArgumentError(f"seeds must be >= 1, got {seeds}")
        self.architecture = architecture
        self.dataset = dataset
        self.dims = tuple(int(d) for d in dims) if dims is not None else None
        self.seeds = seeds
        self.recipe = recipe
        self.train_subset = train_subset
        self.threads = threads
        self._baselines: dict[str, Any] = {}

    def recipe_for(self, quick: bool) -> Recipe:
        """The suite's recipe: ``recipe`` if given, else lr 1e-2 and 40 (quick) / 100 epochs."""
        if self.recipe is not None:
            return self.recipe
        return Recipe(lr=1e-2, epochs=40 if quick else 100,
                      weight_decay=default_weight_decay(self.architecture))

    def cases(self, projections: list[str], settings: RunSettings) -> list[Case]:
        """The baseline case, then projection × d × seed (quick: d ∈ {16, 64, 256}, one seed)."""
        dims = self.dims or (QUICK_DIMS if settings.quick else FULL_DIMS)
        n_seeds = self.seeds or (1 if settings.quick else 3)
        recipe = self.recipe_for(settings.quick)
        seeds = [settings.seed + i for i in range(n_seeds)]
        arch, ds = self.architecture, self.dataset

        def params(d: int | None, seed: int) -> dict[str, Any]:
            return {"d": d, "seed": seed, "epochs": recipe.epochs, "lr": recipe.lr}

        out = [Case(self.name, BASELINE, params(None, s), arch, ds) for s in seeds]
        out += [Case(self.name, proj, params(d, s), arch, ds)
                for proj in projections for d in dims for s in seeds]
        return out

    def _run(self, case: Case, settings: RunSettings, projection: str | None, d: int | None) -> Any:
        from projbench.training_runs import RunSpec, train_run

        p = case.params
        recipe = self.recipe_for(settings.quick).with_(epochs=p.get("epochs"), lr=p.get("lr"))
        options: dict[str, Any] = {}
        if projection is not None:
            from projbench.manager import get_registry

            accepted = set(get_registry("projections").get(projection).option_names())
            options = {k: v for k, v in settings.options.items() if k in accepted}
        spec = RunSpec(case.architecture or self.architecture, case.dataset or self.dataset, int(p["seed"]),
                       recipe, projection=projection, d=d, options=tuple(sorted(options.items())),
                       train_subset=self.train_subset, device=settings.device,
                       threads=self.threads or torch.get_num_threads())
        return spec, train_run(spec, settings.data_dir)

    def _baseline(self, case: Case, settings: RunSettings) -> Any:
        base_case = Case(self.name, BASELINE, {**case.params, "d": None}, case.architecture, case.dataset)
        key = f"{base_case.key}:{settings.device}:{settings.data_dir}"
        if key not in self._baselines:
            self._baselines[key] = self._run(base_case, settings, None, None)[1]
        return self._baselines[key]

    def run_case(self, case: Case, settings: RunSettings) -> CaseOutcome:
        from projbench.metrics.timing import device_unavailable

        reason = device_unavailable(settings.device)
        if reason:
            return CaseOutcome(stats={}, status="skipped", error=reason)
        if self.threads is None:
            return self._run_case(case, settings)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._run_case(case, settings)
        finally:
            torch.set_num_threads(previous)

    def _run_case(self, case: Case, settings: RunSettings) -> CaseOutcome:
        p = case.params
        baseline = self._baseline(case, settings)
        if case.projection == BASELINE:
            result = baseline
            d = None
        else:
            d = int(p["d"])
            try:
                _, result = self._run(case, settings, case.projection, d)
            except ResourceLimitError as exc:
                return CaseOutcome(stats={}, status="skipped", error=str(exc))
        base_acc = baseline.test_accuracy
        stats: dict[str, Any] = {
            "d": d, "seed": int(p["seed"]), "test_accuracy": result.test_accuracy,
            "test_loss": result.test_loss, "train_loss": result.train_loss, "steps": result.steps,
            "epochs": result.epochs, "diverged": result.status == "diverged",
            "diverged_at_step": result.diverged_at_step, "wall_s": result.wall_s,
            "baseline_accuracy": base_acc,
            "relative_accuracy": result.test_accuracy / base_acc if base_acc > 0 else math.nan,
        }
        samples = {"epoch_train_loss": [h["train_loss"] for h in result.history]}
        diverged = result.status == "diverged"
        return CaseOutcome(stats=stats, samples=samples, status="diverged" if diverged else "ok",
                           error=f"non-finite loss at step {result.diverged_at_step}" if diverged else None)

    def figure(self, records: list[dict[str, Any]]) -> Figure | None:
        """Test accuracy vs d (log) per projection, mean ± std over seeds, with the baseline and
        90 % of it."""
        from matplotlib.figure import Figure

        recs = [r for r in records if r.get("suite", self.name) == self.name
                and r.get("status") == "ok" and r.get("stats")]
        sub = [r for r in recs if r.get("projection") != BASELINE and r["stats"].get("d") is not None]
        if not sub:
            return None
        fig = Figure(figsize=(6.5, 4.2), layout="constrained")
        ax = fig.subplots()
        for proj in sorted({r["projection"] for r in sub}):
            by_d: dict[int, list[float]] = {}
            for r in sub:
                if r["projection"] == proj:
                    by_d.setdefault(int(r["stats"]["d"]), []).append(float(r["stats"]["test_accuracy"]))
            ds = sorted(by_d)
            mean = [sum(by_d[d]) / len(by_d[d]) for d in ds]
            std = [float(torch.tensor(by_d[d], dtype=torch.float64).std(unbiased=False)) for d in ds]
            ax.errorbar(ds, mean, yerr=std, marker="o", ms=4, capsize=3, label=proj)
        bases = [float(r["stats"]["baseline_accuracy"]) for r in recs
                 if isinstance(r["stats"].get("baseline_accuracy"), int | float)]
        if bases:
            base = sum(bases) / len(bases)
            ax.axhline(base, color="k", ls="--", lw=1, label=f"full training {base:.3f}")
            ax.axhline(0.9 * base, color="r", ls="-.", lw=1, label="90% of full training")
        archs = sorted({f"{r.get('architecture')}/{r.get('dataset')}" for r in sub})
        ax.set_xscale("log")
        ax.set_xlabel("subspace dimension d")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"Subspace training accuracy ({', '.join(archs)})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        return fig
