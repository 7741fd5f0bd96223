"""One epoch of real training against what the study plan predicts from one measured step.

For FC and LeNet on MNIST at Li et al.'s recipe (Adam lr 1e-3, β2 0.99, batch 128, L2 on the
kernels, 1 torch thread), for the full model and for Fastfood at Li et al.'s d_int90 (FC 750,
LeNet 290), each repeat:

1. trains one real epoch with :func:`projbench.training.train` on MNIST (469 steps) and
   evaluates once on the 10,000 test images — what a study run pays per epoch (wall time of
   ``train``, evaluation included);
2. measures the plan's unit costs with :func:`projbench.study.step_cost.measure_step_cost`
   (a few steps and evaluation batches on random data of MNIST's shape) and predicts the epoch
   as S·t_step + ⌈N_test / b_eval⌉·t_eval, the formula of ``study --dry-run``.

epoch / prediction near 1 means nothing stands between a run and its steps (no data loading,
copies or synchronisation the step does not already pay); well above 1 names an overhead to
remove. The two are interleaved per repeat; medians with min–max; the load average is
recorded, and the figures are marked untrustworthy when the machine was busy. Real MNIST is
read from ``--data-dir`` or ``$PROJBENCH_DATA``; without it, random data of MNIST's shape is
used (time does not depend on values) and the file says so. Writes
``results/bench_epoch_cpu.{json,md}``.

    python -m benchmarks.bench_epoch [--repeats 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
from typing import Any

from benchmarks import machine_info, machine_line, md_table, write_results

#: (architecture, Li et al.'s d_int90 on MNIST)
PAIRS = (("fc", 750), ("lenet", 290))
N_TRAIN, N_TEST = 60_000, 10_000


def _recipe() -> Any:
    from projbench.recipe import Recipe

    return Recipe(optimizer="adam", lr=1e-3, beta1=0.9, beta2=0.99, eps=1e-8, epochs=1, batch_size=128,
                  weight_decay_on="kernels")


def _data(data_dir: str | None) -> tuple[Any, Any, str]:
    """(train, test, source): real MNIST when found, else random tensors of its shape."""
    import torch

    from projbench.datasets import load_dataset

    if data_dir:
        return load_dataset("mnist", "train", data_dir), load_dataset("mnist", "test", data_dir), "real MNIST"
    gen = torch.Generator().manual_seed(0)

    def fake(n: int) -> tuple[Any, Any]:
        return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)

    return fake(N_TRAIN), fake(N_TEST), "random data of MNIST's shape (no --data-dir)"


def _real_epoch(arch: str, d: int | None, train: Any, test: Any) -> tuple[float, float]:
    """(seconds of one epoch of ``train`` with its final evaluation, seconds of that evaluation)."""
    from projbench.architectures import make_model
    from projbench.subspace import SubspaceModel
    from projbench.training import train as train_model

    model: Any = make_model(arch, "mnist", seed=0)
    if d is not None:
        model = SubspaceModel(model, "fastfood", d, seed=0)
    result = train_model(model, train, test, _recipe(), seed=0)
    return result.wall_s, result.eval_s


def _predicted_epoch(arch: str, d: int) -> dict[str, float]:
    """The dry-run plan's epoch from measured unit costs, for the full model and the subspace."""
    from projbench.study.step_cost import measure_step_cost

    cost = measure_step_cost(arch, "mnist", "fastfood", d=d, recipe=_recipe(), threads=1)
    steps = math.ceil(N_TRAIN / cost.batch_size)
    batches = math.ceil(N_TEST / cost.eval_batch)
    assert cost.subspace_step_s is not None and cost.subspace_eval_s is not None, cost.note
    return {
        "full": steps * cost.full_step_s + batches * cost.full_eval_s,
        "subspace": steps * cost.subspace_step_s + batches * cost.subspace_eval_s,
        "full_step_ms": 1e3 * cost.full_step_s,
        "subspace_step_ms": 1e3 * cost.subspace_step_s,
    }


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=os.environ.get("PROJBENCH_DATA"))
    parser.add_argument("--tag", default=None, help="suffix of the results files (bench_epoch_cpu_<tag>)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    train, test, source = _data(args.data_dir)
    load_before = list(os.getloadavg())
    samples: dict[str, dict[str, list[float]]] = {}
    for rep in range(args.repeats):
        for arch, d in PAIRS if rep % 2 == 0 else PAIRS[::-1]:
            predicted = _predicted_epoch(arch, d)  # one measurement gives both kinds' unit costs
            for kind, dim in (("full", None), ("subspace", d)):
                key = f"{arch} {kind}" + (f" fastfood d={d}" if dim else "")
                s = samples.setdefault(key, {"epoch_s": [], "eval_s": [], "predicted_s": [], "step_ms": []})
                wall, eval_s = _real_epoch(arch, dim, train, test)
                s["epoch_s"].append(wall)
                s["eval_s"].append(eval_s)
                s["predicted_s"].append(predicted[kind])
                s["step_ms"].append(predicted[f"{kind}_step_ms"])
                print(f"repeat {rep} {key}: epoch {wall:.2f} s (evaluation {eval_s:.2f} s), "
                      f"predicted {predicted[kind]:.2f} s", flush=True)
    info = machine_info("cpu")
    cpus = os.cpu_count() or 1
    busy = max(load_before[0], info["load_avg"][0]) / cpus > 1.0
    rows, ratios = [], {}
    for key, s in samples.items():
        ratio = [e / p for e, p in zip(s["epoch_s"], s["predicted_s"], strict=True)]
        ratios[key] = statistics.median(ratio)
        rows.append([key, _spread(s["epoch_s"]), _spread(s["eval_s"]), _spread(s["step_ms"]),
                     _spread(s["predicted_s"]), _spread(ratio)])
    md = (
        f"One epoch of MNIST training (469 steps of batch 128, Li et al.'s recipe, 1 thread, {source}) "
        f"against the study plan's prediction, {args.repeats} interleaved repeats, medians (min–max); "
        f"{machine_line(info)} Load average before: {'/'.join(f'{x:.2f}' for x in load_before)}"
        + (" (the machine was busy: these figures are not trustworthy)" if busy else "") + "\n\n"
        + md_table(["model", "epoch s (with evaluation)", "evaluation s", "measured step ms",
                    "predicted epoch s", "epoch / predicted"], rows)
        + "\n"
    )
    print(md)
    write_results(
        "bench_epoch",
        "cpu",
        {"machine": info, "data": source, "samples": samples, "epoch_over_predicted": ratios,
         "load_avg_before": load_before, "busy": busy},
        md,
        tag=args.tag,
    )


if __name__ == "__main__":
    from benchmarks import apply_process_settings

    apply_process_settings()
    main()
