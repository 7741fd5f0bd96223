"""``projbench intrinsic-dim``: the d_int90 search from the command line.

Parses options, runs :func:`projbench.intrinsic.find_intrinsic_dim` with rich progress on
stderr, prints one ``d_int90 <proj>: …`` line per projection on stdout, and writes the results
file (JSON lines) and a PNG of accuracy vs d into ``--out``. The results file's name depends
only on (arch, dataset, projections), so rerunning the same command resumes: every run already
recorded there is reused instead of trained again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

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
        if value < 1 or value != int(value):
            raise InvalidArgumentError(f"--grid values must be positive integers, got {part!r}")
        values.append(int(value))
    if not values:
        raise InvalidArgumentError("--grid is empty; give e.g. --grid 10,100,1000")
    return sorted(set(values))


def run_file_name(arch: str, dataset: str, projections: list[str], per_layer: bool) -> str:
    stem = "-".join(["intrinsic", arch, dataset, *projections] + (["per-layer"] if per_layer else []))
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem) + ".jsonl"


@click.command("intrinsic-dim")
@click.option("--arch", required=True, help="Architecture (see `projbench list architectures`).")
@click.option("--dataset", required=True, help="Dataset (see `projbench list datasets`), e.g. mnist.")
@click.option("--proj", "projections", multiple=True, required=True, metavar="NAME",
              help="Projection(s); repeat or comma-separate.")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(1),
              help="Number of seeds (0..N-1); each seeds model init, projection and data order.")
@click.option("--search", type=click.Choice(["bisect", "grid"]), default="bisect", show_default=True,
              help="Bisection on a log scale in [d-min, d-max], or Li et al.'s grid.")
@click.option("--grid", "grid_raw", default=None, metavar="D1,D2,...",
              help="Grid of d for --search grid (default 10,20,50,...,10000).")
@click.option("--d-min", default=10, show_default=True, type=click.IntRange(1), help="Bisection lower end.")
@click.option("--d-max", default=10000, show_default=True, type=click.IntRange(2),
              help="Bisection upper end.")
@click.option("--rtol", default=0.1, show_default=True, type=float,
              help="Bisection stops when d_hi <= d_lo*(1+rtol).")
@click.option("--threshold", default=0.9, show_default=True, type=float,
              help="d_int is the smallest d with accuracy >= threshold x baseline.")
@click.option("--baseline", type=click.Choice(["global", "local"]), default="global", show_default=True,
              help="global: best full training over lr/3, lr, 3lr; local: full training, same recipe.")
@click.option("--epochs", default=None, type=click.IntRange(1), help="Epochs per run [recipe default: 10].")
@click.option("--lr", default=None, type=float, help="Learning rate [1e-3].")
@click.option("--batch-size", default=None, type=click.IntRange(1), help="Minibatch size [128].")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default=None, help="Optimiser [adam].")
@click.option("--weight-decay", default=None, type=float,
              help="L2 [Li et al.: 1e-5 FC, 1e-4 LeNet family, else 0].")
@click.option("--max-steps", default=None, type=click.IntRange(1), help="Cap on steps per run.")
@click.option("--train-subset", default=None, type=click.IntRange(1),
              help="Train on a fixed random subset of this many examples (quick runs).")
@click.option("--per-layer", is_flag=True, help="One projection per parameter tensor.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the results file and the PNG.")
@click.option("--data-dir", type=click.Path(file_okay=False), envvar="PROJBENCH_DATA",
              help="Root of torchvision-layout datasets [env PROJBENCH_DATA].")
@click.option("-o", "--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
              help="Projection option, e.g. -o q=0.05.")
def intrinsic_dim(
    arch: str, dataset: str, projections: tuple[str, ...], seeds: int, search: str, grid_raw: str | None,
    d_min: int, d_max: int, rtol: float, threshold: float, baseline: str, epochs: int | None,
    lr: float | None, batch_size: int | None, optimizer: str | None, weight_decay: float | None,
    max_steps: int | None, train_subset: int | None, per_layer: bool, device: str, out_dir: str,
    data_dir: str | None, option_pairs: tuple[str, ...],
) -> None:
    """Intrinsic dimension d_int90 of ARCH on DATASET for each projection (Li et al. 2018).

    Trains the full model (baseline) and the model in random subspaces of dimension d,
    θ = θ₀ + P θ_d, and reports the smallest d reaching 90% of the baseline's test accuracy,
    per seed, as mean ± std, and interpolated on log d. Every run is recorded in
    OUT/intrinsic-ARCH-DATASET-PROJ.jsonl; rerunning the same command resumes from it.

    \b
    Example:
      projbench intrinsic-dim --arch fc --dataset mnist --proj fastfood --proj fastjl \\
          --seeds 3 --epochs 5 --out runs/
    """
    from projbench.cliutils import parse_options, resolve_device, split_names
    from projbench.intrinsic import ModelTrainer, find_intrinsic_dim, plot_intrinsic
    from projbench.manager import get_registry
    from projbench.report import make_progress, stderr_console
    from projbench.runner import validate_options
    from projbench.training import recipe_for

    names = split_names(projections)
    get_registry("architectures").get(arch)
    get_registry("datasets").get(dataset)
    options = parse_options(option_pairs)
    validate_options(names, options)  # also rejects unknown projection names
    device = resolve_device(device)
    grid = parse_grid(grid_raw)
    recipe = recipe_for(arch, epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer,
                        weight_decay=weight_decay, max_steps=max_steps)
    path = Path(out_dir) / run_file_name(arch, dataset, names, per_layer)

    console = stderr_console()
    progress = make_progress(console)
    runs_task = progress.add_task("runs", total=None, current="")
    steps_task = progress.add_task("steps", total=None, current="")

    def on_step(step: int, total: int, loss: float) -> None:
        progress.update(steps_task, completed=step, total=total, current=f"loss {loss:.3f}")

    def on_run(spec: Any, result: Any, reused: bool) -> None:
        what = "baseline" if spec.projection is None else f"{spec.projection} d={spec.d}"
        tag = "reused" if reused else f"{result.wall_s:.1f}s"
        progress.update(runs_task, advance=1,
                        current=f"{what} seed={spec.seed} lr={spec.recipe.lr:g}: "
                                f"acc {result.test_accuracy:.4f} [{result.status}, {tag}]")

    trainer = ModelTrainer(arch, dataset, data_dir=data_dir, device=device, train_subset=train_subset,
                           step_progress=on_step)
    with progress:
        result = find_intrinsic_dim(
            arch, dataset, names, seeds=list(range(seeds)), recipe=recipe, search=search, grid=grid,
            d_min=d_min, d_max=d_max, rtol=rtol, threshold=threshold, baseline=baseline,
            per_layer=per_layer, options=options, trainer=trainer, results_path=path, device=device,
            on_run=on_run,
        )
    png = plot_intrinsic(result, path.with_suffix(".png"))
    console.print(
        f"{baseline} baseline accuracy {result.baseline_accuracy:.4f} (local {result.local_baseline:.4f}); "
        f"target {result.target_accuracy:.4f}; {result.runs_trained} runs trained, "
        f"{result.runs_reused} reused, {result.wall_s:.1f}s"
    )
    for summary in result.projections.values():
        click.echo(summary.line())
    click.echo(str(path))
    click.echo(str(png))
