"""``projbench intrinsic-dim``: d_int90 of one (architecture, dataset) pair — a one-pair study,
so it shares the study's executors, resumable folder, table and figures.

Its defaults give a first number on every built-in pair without tuning:

* the search range ends at D: a d_max (or grid points) above the model's D is clipped to D,
  with one line saying so;
* the recipe, when not given: Adam at lr :data:`DEFAULT_LR` = 1e-2 and
  epochs = max(10, ⌈:data:`MIN_STEPS` / ⌈N / batch⌉⌉), i.e. 10 epochs, or more on a small
  training set so that every run takes at least 500 optimisation steps (digits, N = 1,437:
  42 epochs). Li et al.'s lr 1e-3 goes with their 100 epochs: at 10 epochs a subspace run at
  1e-3 is far from converged (mlp on digits, fastfood d = 1,000: 0.59 test accuracy at 1e-3,
  0.95 at 1e-2, against 0.96-0.98 for full training), and the search then blames d_max;
* a search that does not reach its target is followed by one probe run at the largest d that
  can be built (D, else D/2, …): if even that misses the target the recipe is at fault (raise
  lr or epochs), otherwise d_max is (raise it). The probe's record is kept in
  ``probes.json`` beside the study file, so a rerun does not train it again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from projbench.commands.common import (
    RunProgress,
    check_fwht_backend,
    data_dir_option,
    executor_options,
    fwht_backend_option,
    make_pool_from,
    print_outcome,
    stop_pool,
    stops_on_signals,
)
from projbench.errors import InvalidArgumentError

#: the learning rate intrinsic-dim uses when --lr is not given (see the module docstring)
DEFAULT_LR = 1e-2
#: the fewest optimisation steps per run the default number of epochs gives
MIN_STEPS = 500
#: the epochs of Li et al.'s recipe shortened as the study presets do; more on small datasets
BASE_EPOCHS = 10
#: how many ever smaller d (D, D/2, …) the probe tries when a projection cannot be built at D
PROBE_TRIES = 4
PROBE_FILE = "probes.json"


def parse_grid(raw: str | None) -> list[int] | None:
    """``"10,100,1e3"`` -> [10, 100, 1000]; None stays None."""
    if raw is None:
        return None
    values: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise InvalidArgumentError(f"--grid expects comma-separated integers, got {part!r}") from None
        if not value >= 1 or value != int(value):
            raise InvalidArgumentError(f"--grid values must be positive integers, got {part!r}")
        values.append(int(value))
    if not values:
        raise InvalidArgumentError("--grid is empty; give e.g. --grid 10,100,1000")
    return sorted(set(values))


def folder_name(arch: str, dataset: str, projections: list[str], per_layer: bool, burn_in: int = 0) -> str:
    """``intrinsic-ARCH-DATASET-PROJ…[-per-layer][-burn-in-STEPS]``, safe as a folder name."""
    extra = (["per-layer"] if per_layer else []) + ([f"burn-in-{burn_in}"] if burn_in else [])
    stem = "-".join(["intrinsic", arch, dataset, *projections, *extra])
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem)


def default_epochs(n_train: int, batch_size: int) -> int:
    """max(BASE_EPOCHS, ⌈MIN_STEPS / ⌈N / batch⌉⌉): at least MIN_STEPS steps per run."""
    import math

    return max(BASE_EPOCHS, math.ceil(MIN_STEPS / math.ceil(n_train / batch_size)))


def clip_search(
    num_params: int, d_min: int, d_max: int, grid: list[int] | None, search: str
) -> tuple[int, list[int] | None, str | None]:
    """(d_max, grid) limited to D = ``num_params``, and the line that says what was clipped
    (None when nothing was). A search left with nothing to try is refused."""
    if search == "grid":
        from projbench.search import DEFAULT_GRID

        full = list(grid) if grid is not None else list(DEFAULT_GRID)
        kept = [d for d in full if d <= num_params]
        if not kept:
            raise InvalidArgumentError(
                f"every grid point exceeds D = {num_params:,}; give a --grid with values <= D"
            )
        dropped = [d for d in full if d > num_params]
        note = (f"grid points above D = {num_params:,} dropped ({', '.join(f'{d:,}' for d in dropped)})"
                if dropped else None)
        return d_max, kept, note
    if d_min >= num_params:
        raise InvalidArgumentError(f"--d-min {d_min:,} must be below D = {num_params:,}")
    if d_max > num_params:
        return num_params, grid, f"d_max {d_max:,} exceeds D = {num_params:,}: searching d <= D"
    return d_max, grid, None


def _finite(value: float | None, name: str, positive: bool = False) -> None:
    import math

    if value is None:
        return
    if not math.isfinite(value) or (positive and value <= 0) or value < 0:
        raise InvalidArgumentError(
            f"{name} must be a finite number{' > 0' if positive else ' >= 0'}, got {value}"
        )


@click.command("intrinsic-dim")
@click.option("--arch", required=True, help="Architecture (see `projbench list architectures`).")
@click.option("--dataset", required=True, help="Dataset (see `projbench list datasets`), e.g. mnist.")
@click.option(
    "--proj",
    "projections",
    multiple=True,
    default=("fastfood",),
    metavar="NAME",
    help="Projection(s); repeat or comma-separate [default: fastfood, Li et al.'s].",
)
@click.option(
    "--seeds",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="Number of seeds (0..N-1); each seeds model init, projection and data order.",
)
@click.option(
    "--search",
    type=click.Choice(["bisect", "grid"]),
    default="bisect",
    show_default=True,
    help="k-section on a log scale in [d-min, d-max], or Li et al.'s grid.",
)
@click.option(
    "--grid",
    "grid_raw",
    default=None,
    metavar="D1,D2,...",
    help="Grid of d for --search grid (default 10,20,50,...,10000).",
)
@click.option("--d-min", default=10, show_default=True, type=click.IntRange(1), help="Search lower end.")
@click.option(
    "--d-max", default=10000, show_default=True, type=click.IntRange(2), help="Search upper end (at most D)."
)
@click.option(
    "--rtol", default=0.1, show_default=True, type=float, help="The search stops when d_hi <= d_lo*(1+rtol)."
)
@click.option(
    "--points-per-round",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="d values per search round, trained concurrently (1 = bisection).",
)
@click.option(
    "--threshold",
    default=0.9,
    show_default=True,
    type=float,
    help="d_int is the smallest d with accuracy >= threshold x baseline.",
)
@click.option(
    "--baseline",
    type=click.Choice(["global", "local"]),
    default="global",
    show_default=True,
    help="global: best full training over lr/3, lr, 3lr; local: full training, same recipe.",
)
@click.option(
    "--epochs",
    default=None,
    type=click.IntRange(1),
    help=f"Epochs per run [{BASE_EPOCHS}, or more so that a run takes >= {MIN_STEPS} steps].",
)
@click.option("--lr", default=None, type=float, help=f"Learning rate [{DEFAULT_LR:g}].")
@click.option("--batch-size", default=None, type=click.IntRange(1), help="Minibatch size [128].")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default=None, help="Optimiser [adam].")
@click.option(
    "--weight-decay", default=None, type=float, help="L2 [Li et al.: 1e-5 FC, 1e-4 LeNet family, else 0]."
)
@click.option("--max-steps", default=None, type=click.IntRange(1), help="Cap on steps per run.")
@click.option(
    "--train-subset",
    default=None,
    type=click.IntRange(1),
    help="Train on a fixed random subset of this many examples (quick runs).",
)
@click.option("--per-layer", is_flag=True, help="One projection per parameter tensor.")
@click.option(
    "--burn-in",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    metavar="STEPS",
    help="Full-training steps that move θ₀ before each subspace run (Larsen et al. 2021).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option(
    "--out",
    "out_dir",
    default="runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Parent folder; the study folder is OUT/intrinsic-ARCH-DATASET-PROJ.",
)
@data_dir_option
@click.option(
    "-o",
    "--option",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Projection option, e.g. -o q=0.05.",
)
@executor_options
@fwht_backend_option
@stops_on_signals
def intrinsic_dim(
    arch: str,
    dataset: str,
    projections: tuple[str, ...],
    seeds: int,
    search: str,
    grid_raw: str | None,
    d_min: int,
    d_max: int,
    rtol: float,
    points_per_round: int,
    threshold: float,
    baseline: str,
    epochs: int | None,
    lr: float | None,
    batch_size: int | None,
    optimizer: str | None,
    weight_decay: float | None,
    max_steps: int | None,
    train_subset: int | None,
    per_layer: bool,
    burn_in: int,
    device: str,
    out_dir: str,
    data_dir: str | None,
    option_pairs: tuple[str, ...],
    jobs: int,
    executor: str,
    address: str | None,
    cpus_per_task: float,
    gpus_per_task: float,
    fwht_backend: str | None,
) -> None:
    """Intrinsic dimension d_int90 of ARCH on DATASET for each projection (Li et al. 2018).

    Trains the full model (baseline) and the model in random subspaces of dimension d,
    θ = θ₀ + P θ_d, and reports the smallest d reaching 90% of the baseline's test accuracy,
    per seed, as mean ± std, and interpolated on log d. A one-pair study: every run is recorded
    in OUT/intrinsic-ARCH-DATASET-PROJ/study.jsonl; rerunning the same command resumes from it,
    and a changed setting (e.g. --train-subset) is refused there. Ctrl-C, SIGTERM or SIGHUP stop
    the workers and exit with one line (status 128 + the signal); the folder keeps every
    finished run, so the same command resumes it.

    Defaults that work on every built-in pair: d_max (and the grid) clipped to D; Adam at lr
    1e-2 for 10 epochs, or more epochs so that each run takes at least 500 steps. A search that
    misses its target is followed by one probe run at d = D (or the largest d the projection
    can build): it says whether to raise d_max or to fix the recipe (--lr, --epochs).

    \b
    Examples:
      projbench intrinsic-dim --arch mlp --dataset digits
      projbench intrinsic-dim --arch mlp --dataset digits --burn-in 100
      projbench intrinsic-dim --arch fc --dataset mnist --proj fastfood --proj fastjl \\
          --seeds 3 --epochs 5 --jobs 2 --out runs/
    """
    from projbench.benchmark import validate_options
    from projbench.cliutils import parse_options, resolve_device, split_names
    from projbench.commands.study import _check_names
    from projbench.intrinsic import intrinsic_spec
    from projbench.report.run_files import stderr_console
    from projbench.study.driver import run_study

    names = list(dict.fromkeys(split_names(projections)))
    for value, name, positive in (
        (rtol, "--rtol", True),
        (threshold, "--threshold", True),
        (lr, "--lr", True),
        (weight_decay, "--weight-decay", False),
    ):
        _finite(value, name, positive)
    options = parse_options(option_pairs)
    validate_options(names, options)  # also rejects unknown projection names
    device = resolve_device(device)
    console = stderr_console()
    num_params = _parameter_count(arch, dataset)
    d_max, grid, clipped = clip_search(num_params, d_min, d_max, parse_grid(grid_raw), search)
    if clipped:
        console.print(clipped, highlight=False)
    recipe = default_recipe(
        dataset, data_dir, train_subset,
        {"epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer": optimizer,
         "weight_decay": weight_decay, "max_steps": max_steps},
    )
    spec = intrinsic_spec(
        arch,
        dataset,
        names,
        seeds=seeds,
        recipe=recipe,
        search=search,
        grid=grid,
        d_min=d_min,
        d_max=d_max,
        rtol=rtol,
        points_per_round=points_per_round,
        threshold=threshold,
        baseline=baseline,
        per_layer=per_layer,
        options=options,
        train_subset=train_subset,
        device=device,
        fwht_backend=check_fwht_backend(fwht_backend),
    )
    if burn_in:
        spec.axes = {"burn_in": [burn_in]}  # the study axis: burn_in full steps before each subspace run
    _check_names(spec)
    folder = Path(out_dir) / folder_name(arch, dataset, names, per_layer, burn_in)
    pool = None
    try:
        pool = make_pool_from(executor, jobs, address, cpus_per_task, gpus_per_task)
        r = spec.pairs[0].recipe
        console.print(
            f"recipe: {r['optimizer']} lr {r['lr']:g}, {r['epochs']} epochs of batch {r['batch_size']}"
            + (f", at most {r['max_steps']} steps" if r["max_steps"] else "")
            + (f", {burn_in} burn-in steps" if burn_in else "")
            + f"; ~{spec.run_count()} runs on {pool.workers} worker(s) ({pool.name}); recording to "
            f"{folder / 'study.jsonl'}",
            highlight=False,
        )
        with RunProgress(console, spec.run_count()) as progress:
            outcome = run_study(spec, folder, pool=pool, data_dir=data_dir, on_record=progress)
        explain_unreached(outcome, pool, data_dir, num_params, folder, console)
    except KeyboardInterrupt:  # a signal (stops_on_signals): stop the workers, keep the folder
        stop_pool(pool)
        raise
    finally:
        if pool is not None:
            pool.close()
    paths = print_outcome(
        outcome,
        console,
        fmt="table",
        reference=None,
        figures=folder / "figures",
        title=f"d_int90 of {arch} on {dataset}",
    )
    from projbench.report.study import d_int90_text

    for row in outcome.rows:
        interp = row["interpolated_mean"]
        click.echo(
            f"d_int90 {row['projection']}: {d_int90_text(row)}"
            + (f"; interpolated {interp:,.0f}" if interp is not None else "")
            + (f"; {row['message']}" if row.get("message") else "")
        )
    console.print(
        f"baseline accuracy {outcome.rows[0]['baseline_accuracy'] or float('nan'):.4f} ({baseline}); "
        f"{outcome.trained} runs trained, {outcome.reused} reused, {outcome.engine.wall_s:.1f} s"
    )
    click.echo(str(folder / "study.jsonl"))
    for p in paths:
        click.echo(str(p))
    if outcome.failed_runs or any(r["status"] == "failed" for r in outcome.rows):
        raise SystemExit(1)


def _parameter_count(arch: str, dataset: str) -> int:
    """D of ``arch`` on ``dataset``; unknown names or an unsupported pair: one-line errors."""
    from projbench.manager import get_registry
    from projbench.training_runs import parameter_count

    get_registry("architectures").get(arch)
    get_registry("datasets").get(dataset)
    return parameter_count(arch, dataset)


def default_recipe(
    dataset: str, data_dir: str | None, train_subset: int | None, given: dict[str, Any]
) -> dict[str, Any]:
    """The recipe fields given on the command line, with intrinsic-dim's defaults for lr
    (:data:`DEFAULT_LR`) and epochs (:func:`default_epochs` of the run's training-set size)."""
    from projbench.study.plan import split_sizes, subset_size
    from projbench.training import Recipe

    recipe = dict(given)
    if recipe.get("lr") is None:
        recipe["lr"] = DEFAULT_LR
    if recipe.get("epochs") is None:
        n_train = subset_size(split_sizes(dataset, data_dir).train, train_subset)
        recipe["epochs"] = default_epochs(n_train, recipe.get("batch_size") or Recipe().batch_size)
    return recipe


# ------------------------------------------------------------------------------------------
# a search that missed its target: one probe at the largest d says why
# ------------------------------------------------------------------------------------------
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
    import json

    try:
        data = json.loads((folder / PROBE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_probes(folder: Path, probes: dict[str, Any]) -> None:
    import json
    import os

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
