"""``projbench intrinsic-dim``: d_int90 of one (architecture, dataset) pair — a one-pair study,
so it shares the study's executors, resumable folder, table and figures."""

from __future__ import annotations

import re
from pathlib import Path

import click

from projbench.commands.common import (
    RunProgress,
    check_fwht_backend,
    data_dir_option,
    executor_options,
    fwht_backend_option,
    make_pool_from,
    print_outcome,
    with_errors,
)
from projbench.errors import InvalidArgumentError


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


def folder_name(arch: str, dataset: str, projections: list[str], per_layer: bool) -> str:
    stem = "-".join(["intrinsic", arch, dataset, *projections] + (["per-layer"] if per_layer else []))
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem)


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
    required=True,
    metavar="NAME",
    help="Projection(s); repeat or comma-separate.",
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
@click.option("--d-max", default=10000, show_default=True, type=click.IntRange(2), help="Search upper end.")
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
@click.option("--epochs", default=None, type=click.IntRange(1), help="Epochs per run [recipe default: 10].")
@click.option("--lr", default=None, type=float, help="Learning rate [1e-3].")
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
@with_errors
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
    and a changed setting (e.g. --train-subset) is refused there.

    \b
    Example:
      projbench intrinsic-dim --arch fc --dataset mnist --proj fastfood --proj fastjl \\
          --seeds 3 --epochs 5 --jobs 2 --out runs/
    """
    from projbench.cliutils import parse_options, resolve_device, split_names
    from projbench.commands.study import _check_names
    from projbench.intrinsic import intrinsic_spec
    from projbench.report import stderr_console
    from projbench.runner import validate_options
    from projbench.study.runner import run_study

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
    grid = parse_grid(grid_raw)
    recipe = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "max_steps": max_steps,
    }
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
    _check_names(spec)
    folder = Path(out_dir) / folder_name(arch, dataset, names, per_layer)
    console = stderr_console()
    pool = make_pool_from(executor, jobs, address, cpus_per_task, gpus_per_task)
    console.print(
        f"~{spec.run_count()} runs on {pool.workers} worker(s) ({pool.name}); recording to "
        f"{folder / 'study.jsonl'}"
    )
    try:
        with RunProgress(console, spec.run_count()) as progress:
            outcome = run_study(spec, folder, pool=pool, data_dir=data_dir, on_record=progress)
    finally:
        pool.close()
    paths = print_outcome(
        outcome,
        console,
        fmt="table",
        reference=None,
        figures=folder / "figures",
        title=f"d_int90 of {arch} on {dataset}",
    )
    from projbench.study.report import d_int90_text

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
