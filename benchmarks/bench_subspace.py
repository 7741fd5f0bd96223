"""Subspace-training step time relative to a plain training step (``python -m benchmarks.bench_subspace``).

One training step = forward, cross-entropy, backward and an Adam step on a batch of random
MNIST-shaped inputs (128×1×28×28, CPU by default). The *plain* step trains all D parameters of
the model; the *subspace* step trains θ_d of ``SubspaceModel(model, projection, d)``. Both are
measured side by side in one process, interleaved round by round (so machine load affects both
alike); each reported time is the median over rounds of the mean step time in a round. The ratio
subspace / plain is the overhead of training in the subspace (goal: ≤ 1.3 for fastfood and fastjl
at d = 1000 on LeNet). The projection alone (forward Pθ_d and adjoint Pᵀg, no_grad) is timed too,
to show where the overhead goes.

``--search`` additionally runs a d_int90 search for FC on MNIST when real MNIST is available
(``--data-dir`` or ``$PROJBENCH_DATA``), with a small budget (train subset, few epochs, one
seed, by default) and reports the wall time, epochs and d_int90 per projection.

Writes ``results/bench_subspace_<device>.json`` and ``.md`` (``--out``); with ``--search`` and
``--arch ''`` (search only) ``results/bench_subspace_search_<device>.*``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import projbench
from benchmarks import RESULTS_DIR, machine_info, machine_line, write_results
from projbench.errors import ProjbenchError

DEFAULT_PROJECTIONS = ("fastfood", "fastjl", "dense", "sparse")


def _step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             optimizer: str = "adam") -> Callable[[], None]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt: torch.optim.Optimizer = (torch.optim.Adam(params, lr=1e-3) if optimizer == "adam"
                                  else torch.optim.SGD(params, lr=1e-2))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _round(fn: Callable[[], None], steps: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def bench_steps(arch: str, dataset: str, projections: list[str | tuple[str, str, dict[str, Any]]], d: int,
                batch: int, rounds: int, steps: int, device: torch.device, seed: int = 0,
                optimizer: str = "adam") -> dict[str, Any]:
    """Median step time (s) of plain and subspace training, interleaved round by round.

    ``projections``: names, or (label, name, options) for a projection with options."""
    from projbench.datasets import DatasetSpec
    from projbench.manager import get_registry

    spec: DatasetSpec = get_registry("datasets").get(dataset)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *spec.input_shape, generator=g).to(device)
    y = torch.randint(0, spec.num_classes, (batch,), generator=g).to(device)
    plain = projbench.make_model(arch, dataset, seed=seed).to(device).train()
    D = projbench.count_parameters(plain)
    fns: dict[str, Callable[[], None]] = {"plain": _step_fn(plain, x, y, optimizer)}
    errors: dict[str, str] = {}
    proj_times: dict[str, dict[str, float]] = {}
    for item in projections:
        name, proj, options = (item, item, {}) if isinstance(item, str) else item
        try:
            sm = projbench.SubspaceModel(projbench.make_model(arch, dataset, seed=seed), proj, d=d,
                                         seed=seed, device=device, **options).train()
        except ProjbenchError as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        fns[name] = _step_fn(sm, x, y, optimizer)
        P = sm.projection
        theta = torch.randn(d, generator=g).to(device)
        grad = torch.randn(D, generator=g).to(device)
        reps = range(max(3, rounds // 2))
        with torch.no_grad():
            fwd = [_round(lambda P=P, t=theta: P(t), steps, device) for _ in reps]
            adj = [_round(lambda P=P, v=grad: P.adjoint(v), steps, device) for _ in reps]
        proj_times[name] = {"forward_ms": 1e3 * statistics.median(fwd),
                            "adjoint_ms": 1e3 * statistics.median(adj),
                            "memory_bytes": int(P.memory_bytes())}
    for fn in fns.values():  # warm-up (allocator, FWHT matrices, Adam state)
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(_round(fn, steps, device))
    med = {k: statistics.median(v) for k, v in samples.items()}
    rows = {}
    for name in fns:
        rows[name] = {
            "step_ms": 1e3 * med[name],
            "step_iqr_ms": 1e3 * (statistics.quantiles(samples[name], n=4)[2]
                                  - statistics.quantiles(samples[name], n=4)[0]) if rounds >= 4 else None,
            "ratio_to_plain": med[name] / med["plain"],
            **proj_times.get(name, {}),
        }
    return {"arch": arch, "dataset": dataset, "D": D, "d": d, "batch": batch, "device": str(device),
            "optimizer": optimizer,
            "rounds": rounds, "steps_per_round": steps, "rows": rows, "errors": errors}


def run_search(projections: list[str], data_dir: str | None, epochs: int, lr: float, train_subset: int | None,
               seeds: int, d_max: int, device: str, out: Path) -> dict[str, Any]:
    """d_int90 of FC on MNIST (small budget) for each projection; wall time per projection."""
    from projbench.intrinsic import ModelTrainer, find_intrinsic_dim, plot_intrinsic
    from projbench.recipe import recipe_for

    recipe = recipe_for("fc", epochs=epochs, lr=lr)
    trainer = ModelTrainer("fc", "mnist", data_dir=data_dir, device=device, train_subset=train_subset)
    t0 = time.perf_counter()
    trainer.data()
    load_s = time.perf_counter() - t0
    per_proj: dict[str, Any] = {}
    path = out / "bench_subspace_fc_mnist.jsonl"
    base_kw = dict(seeds=list(range(seeds)), recipe=recipe, baseline="local", d_min=10, d_max=d_max,
                   rtol=0.15, trainer=trainer, results_path=path)
    result = None
    for name in projections:
        t = time.perf_counter()
        result = find_intrinsic_dim("fc", "mnist", [name], **base_kw)  # type: ignore[arg-type]
        summ = result.projections[name]
        per_proj[name] = {"wall_s": time.perf_counter() - t, "runs_trained": result.runs_trained,
                          "runs_reused": result.runs_reused, **summ.to_dict()}
    total = time.perf_counter() - t0
    from projbench.results import read_run

    cases = [c for c in read_run(path).cases if c.get("status") in ("ok", "diverged")]
    train_s = {name: sum(float(c["stats"]["wall_s"]) for c in cases if c["projection"] == name)
               for name in [*projections, "none"]}
    runs = {name: sum(1 for c in cases if c["projection"] == name) for name in [*projections, "none"]}
    epochs_per_run = statistics.median(float(c["stats"]["epochs"]) for c in cases) if cases else None
    for name in projections:
        per_proj[name].update(train_s_all_runs=train_s[name], runs_all=runs[name])
    if result is not None:  # one figure with every projection (all runs are in the file now)
        everything = find_intrinsic_dim("fc", "mnist", projections, **base_kw)  # type: ignore[arg-type]
        plot_intrinsic(everything, out / "bench_subspace_fc_mnist.png")
        result = everything
    return {"recipe": recipe.to_dict(), "train_subset": train_subset, "seeds": seeds, "d_max": d_max,
            "search": "bisect", "rtol": 0.15,
            "baseline": "local", "baseline_accuracy": result.baseline_accuracy if result else None,
            "data_load_s": load_s, "total_wall_s": total, "projections": per_proj,
            "baseline_train_s": train_s["none"], "baseline_runs": runs["none"],
            "train_s_all_runs": sum(train_s.values()), "epochs_per_run": epochs_per_run,
            "results_file": str(path)}


def to_markdown(report: dict[str, Any]) -> str:
    title = "Subspace-training step overhead" if report["steps"] else "Intrinsic dimension search timing"
    lines = [f"# {title}", ""]
    lines.append(machine_line(report["machine"]) + f" Command: `{report['command']}`.")
    lines.append("")
    for b in report["steps"]:
        lines.append(f"## {b['arch']} / {b['dataset']}-shaped input: D = {b['D']:,}, d = {b['d']}, "
                     f"batch {b['batch']}, {b['device']}")
        lines.append("")
        lines.append("| model | step ms | IQR ms | × plain | P fwd ms | Pᵀ ms | P bytes |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in b["rows"].items():
            iqr = f"{r['step_iqr_ms']:.2f}" if r.get("step_iqr_ms") is not None else "-"
            fwd = f"{r['forward_ms']:.3f}" if "forward_ms" in r else "-"
            adj = f"{r['adjoint_ms']:.3f}" if "adjoint_ms" in r else "-"
            mem = f"{r['memory_bytes']:,}" if "memory_bytes" in r else "-"
            label = "plain (all D trained)" if name == "plain" else f"subspace {name}"
            lines.append(f"| {label} | {r['step_ms']:.2f} | {iqr} | {r['ratio_to_plain']:.2f} "
                         f"| {fwd} | {adj} | {mem} |")
        for name, err in b["errors"].items():
            lines.append(f"\n{name}: not measured — {err}")
        lines.append("")
    s = report.get("search")
    if s:
        lines.append("## d_int90, FC on MNIST (reduced budget)")
        lines.append("")
        lines.append(f"Recipe {s['recipe']}; train subset {s['train_subset']}; {s['seeds']} seed(s); "
                     f"bisection on [10, {s['d_max']}], rtol {s['rtol']}; local baseline accuracy "
                     f"{s['baseline_accuracy']:.4f} ({s.get('baseline_runs')} runs, "
                     f"{s.get('baseline_train_s', 0):.0f} s); {s.get('epochs_per_run')} epoch(s) per run. "
                     f"Training time summed over every recorded run: {s.get('train_s_all_runs', 0):.0f} s "
                     f"(this invocation: {s['total_wall_s']:.0f} s wall, the rest reused from "
                     f"`{Path(s.get('results_file', '')).name}`).")
        lines.append("")
        lines.append("| projection | d_int90 per seed | mean ± std | interpolated (mean ± std) | runs "
                     "| train s |")
        lines.append("|---|---|---:|---:|---:|---:|")
        for name, p in s["projections"].items():
            per_seed = ", ".join("-" if v is None else str(v) for v in p["per_seed"].values())
            mean = f"{p['mean']:.0f} ± {p['std']:.0f}" if p["mean"] is not None else "not reached"
            interp = (f"{p['interp_mean']:.0f} ± {p['interp_std']:.0f}"
                      if p["interp_mean"] is not None else "-")
            runs = p.get("runs_all", p["runs_trained"])
            lines.append(f"| {name} | {per_seed} | {mean} | {interp} | {runs} "
                         f"| {p.get('train_s_all_runs', p['wall_s']):.0f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--proj", default=",".join(DEFAULT_PROJECTIONS),
                    help="comma-separated projections (unregistered ones are skipped)")
    ap.add_argument("--arch", default="lenet,fc", help="comma-separated architectures")
    ap.add_argument("--dataset", default="mnist", help="dataset whose input shape is used")
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=5, help="steps per round")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="output directory (default: results/)")
    ap.add_argument("--search", action="store_true", help="also run the FC/MNIST d_int90 search")
    ap.add_argument("--search-proj", default="fastfood,fastjl,sparse",
                    help="projections for the search (dense at D=199,210 and large d needs GBs)")
    ap.add_argument("--search-epochs", type=int, default=1)
    ap.add_argument("--search-lr", type=float, default=1e-2,
                    help="Adam lr of the search (1e-2: one epoch at Li et al.'s 1e-3 undertrains θ_d)")
    ap.add_argument("--search-d-max", type=int, default=3000)
    ap.add_argument("--search-subset", type=int, default=None, help="train subset for the search")
    ap.add_argument("--search-seeds", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    registered = set(projbench.list_plugins("projections"))
    projections = [p for p in args.proj.split(",") if p and p in registered]
    skipped = [p for p in args.proj.split(",") if p and p not in registered]
    out = Path(args.out) if args.out else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    report: dict[str, Any] = {
        "command": "python -m benchmarks.bench_subspace " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(args.device),
        "not_registered": skipped, "steps": [],
    }
    for arch in [a for a in args.arch.split(",") if a]:
        b = bench_steps(arch, args.dataset, projections, args.d, args.batch, args.rounds, args.steps, device)
        report["steps"].append(b)
        for name, r in b["rows"].items():
            print(f"{arch:8s} {name:10s} step {r['step_ms']:8.2f} ms  x{r['ratio_to_plain']:.2f}", flush=True)
    if args.search:
        from projbench.datasets import default_data_dir

        data_dir = default_data_dir(args.data_dir)
        if data_dir is None:
            print("no MNIST data (--data-dir / PROJBENCH_DATA): search skipped")
        else:
            search_proj = [p for p in args.search_proj.split(",") if p in registered]
            report["search"] = run_search(search_proj, str(data_dir), args.search_epochs, args.search_lr,
                                          args.search_subset, args.search_seeds, args.search_d_max,
                                          args.device, out)
            for name, p in report["search"]["projections"].items():
                print(f"d_int90 {name}: per seed {p['per_seed']}, interpolated {p['interp_mean']}, "
                      f"{p['wall_s']:.0f}s", flush=True)
    stem = "bench_subspace_search" if args.search and not args.arch else "bench_subspace"
    json_path, md_path = write_results(stem, args.device, report, to_markdown(report), out)
    print(f"wrote {json_path} and {md_path}")
    return report


if __name__ == "__main__":
    from benchmarks import apply_process_settings

    apply_process_settings()
    main()
