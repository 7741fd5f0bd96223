"""``projbench intrinsic-dim``: d_int90 of one (architecture, dataset) pair — a one-pair study,
so it shares the study's executors, resumable folder, table and figures.

The command parses its options, builds the study (:func:`projbench.intrinsic.intrinsic_spec`)
with the defaults that give a first number on every built-in pair
(:mod:`projbench.intrinsic_defaults`: the search clipped to D, Adam at lr 1e-2 for at least 500
steps), runs it, asks one probe run at the largest d why a missed target was missed
(:mod:`projbench.intrinsic_probe`), and prints the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from projbench.commands.options import (
    check_fwht_backend,
    data_dir_option,
    executor_options,
    fwht_backend_option,
)
from projbench.commands.pools import running_pool
from projbench.commands.run_progress import RunProgress
from projbench.commands.stop_signals import stops_on_signals
from projbench.commands.study_checks import check_names
from projbench.commands.study_output import print_outcome
from projbench.errors import InvalidArgumentError
from projbench.intrinsic_defaults import (
    BASE_EPOCHS,
    DEFAULT_LR,
    MIN_STEPS,
    clip_search,
    default_recipe,
    folder_name,
)
from projbench.intrinsic_probe import explain_unreached


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
    from projbench.cliutils import split_names
    from projbench.report.run_files import stderr_console

    names = list(dict.fromkeys(split_names(projections)))
    _check_numbers(rtol=rtol, threshold=threshold, lr=lr, weight_decay=weight_decay)
    console = stderr_console()
    spec, num_params = _build_spec(
        console, arch, dataset, names, option_pairs,
        {"epochs": epochs, "lr": lr, "batch_size": batch_size, "optimizer": optimizer,
         "weight_decay": weight_decay, "max_steps": max_steps},
        search=search, grid_raw=grid_raw, d_min=d_min, d_max=d_max, burn_in=burn_in, device=device,
        data_dir=data_dir, train_subset=train_subset, fwht_backend=fwht_backend, seeds=seeds, rtol=rtol,
        points_per_round=points_per_round, threshold=threshold, baseline=baseline, per_layer=per_layer,
    )
    folder = Path(out_dir) / folder_name(arch, dataset, names, per_layer, burn_in)
    with running_pool(executor, jobs, address, cpus_per_task, gpus_per_task) as pool:
        outcome = _run(spec, folder, pool, console, data_dir=data_dir, num_params=num_params, burn_in=burn_in)
    _print_result(outcome, console, folder, title=f"d_int90 of {arch} on {dataset}", baseline=baseline)


def _check_numbers(rtol: float, threshold: float, lr: float | None, weight_decay: float | None) -> None:
    """--rtol, --threshold and --lr finite and > 0, --weight-decay finite and >= 0 (one line)."""
    for value, name, positive in (
        (rtol, "--rtol", True),
        (threshold, "--threshold", True),
        (lr, "--lr", True),
        (weight_decay, "--weight-decay", False),
    ):
        _finite(value, name, positive)


def _build_spec(
    console: Any,
    arch: str,
    dataset: str,
    names: list[str],
    option_pairs: tuple[str, ...],
    recipe_given: dict[str, Any],
    *,
    search: str,
    grid_raw: str | None,
    d_min: int,
    d_max: int,
    burn_in: int,
    device: str,
    data_dir: str | None,
    train_subset: int | None,
    fwht_backend: str | None,
    **settings: Any,
) -> tuple[Any, int]:
    """The one-pair study the options ask for, and the model's D. Options, names and the device
    are checked first (one line each); the search range is clipped to D (said on ``console``)
    and the recipe takes intrinsic-dim's defaults for what was not given. ``settings`` go to
    :func:`~projbench.intrinsic.intrinsic_spec` as they are."""
    from projbench.benchmark import validate_options
    from projbench.cliutils import parse_options, resolve_device
    from projbench.intrinsic import intrinsic_spec

    options = parse_options(option_pairs)
    validate_options(names, options)  # also rejects unknown projection names
    device = resolve_device(device)
    num_params = _parameter_count(arch, dataset)
    d_max, grid, clipped = clip_search(num_params, d_min, d_max, parse_grid(grid_raw), search)
    if clipped:
        console.print(clipped, highlight=False)
    recipe = default_recipe(dataset, data_dir, train_subset, recipe_given)
    spec = intrinsic_spec(
        arch,
        dataset,
        names,
        recipe=recipe,
        search=search,
        grid=grid,
        d_min=d_min,
        d_max=d_max,
        options=options,
        train_subset=train_subset,
        device=device,
        fwht_backend=check_fwht_backend(fwht_backend),
        **settings,
    )
    if burn_in:
        spec.axes = {"burn_in": [burn_in]}  # the study axis: burn_in full steps before each subspace run
    check_names(spec)
    return spec, num_params


def _parameter_count(arch: str, dataset: str) -> int:
    """D of ``arch`` on ``dataset``; unknown names or an unsupported pair: one-line errors."""
    from projbench.manager import get_registry
    from projbench.training_runs import parameter_count

    get_registry("architectures").get(arch)
    get_registry("datasets").get(dataset)
    return parameter_count(arch, dataset)


def _run(spec: Any, folder: Path, pool: Any, console: Any, *, data_dir: str | None, num_params: int,
         burn_in: int) -> Any:
    """Train the study into ``folder`` (resuming it) with a progress line, then explain each
    target the search missed by a probe run (:func:`~projbench.intrinsic_probe.explain_unreached`)."""
    from projbench.study.driver import run_study

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
    return outcome


def _print_result(outcome: Any, console: Any, folder: Path, *, title: str, baseline: str) -> None:
    """The table and figures, one ``d_int90`` line per projection on stdout, the baseline and
    run counts, then the study file and figure paths on stdout; exit status 1 when a run or a
    row failed."""
    from projbench.report.study import d_int90_text

    paths = print_outcome(outcome, console, fmt="table", reference=None, figures=folder / "figures",
                          title=title)
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
