"""The CPU malloc policy, side by side (``python -m benchmarks.bench_allocator``).

The policy is process-wide (``projbench.allocator``), so each contender runs in its own child
process: ``system`` (glibc as a plain ``import torch`` gets it: blocks above 32 MiB are mmapped
and unmapped on every allocation) and ``retain`` (freed blocks kept for reuse, the default of the
``projbench`` commands). Rounds alternate the order of the two children; each child warms up,
then times every item ``--reps`` times and reports medians. A figure is the median over rounds
with its IQR; a ratio system ÷ retain is the median of the per-round ratios [min–max].

Items, at ResNet-18 scale (D = 11,173,962 on CIFAR-10, L = 2^24; d = 1000, batch 1): allocating
and writing a 64 MiB tensor (what every temporary of length 2^24 costs), one FWHT of length
2^24, and forward and adjoint (no grad) of fastfood, its stacked variant, fastjl and sparse;
``--resnet`` adds one SGD step of ResNet-18 on CIFAR-10-shaped input (batch 32), plain and in a
fastfood subspace (d = 1000). Writes results/bench_allocator_cpu[_tag].*.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import machine_info, machine_line, md_table, write_results

D_RESNET18 = 11_173_962
POLICIES = ("system", "retain")


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    for _ in range(3):  # warm-up: lazily built state; malloc settles (2 calls at most here)
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def child(reps: int, resnet: bool, d: int) -> dict[str, float]:
    """Run in a child process whose policy was set from the environment: time every item."""
    import torch
    import torch.nn.functional as F

    import projbench
    from projbench.hadamard import fwht

    g = torch.Generator().manual_seed(0)
    out: dict[str, float] = {}
    n = 1 << 24
    out["64 MiB tensor, allocated and written"] = _median_ms(lambda: torch.empty(n).fill_(1.0), reps)
    x = torch.randn(1, n, generator=g)
    out["FWHT 2^24"] = _median_ms(lambda: fwht(x), reps)
    theta = torch.randn(d, generator=g)
    grad = torch.randn(D_RESNET18, generator=g)
    contenders: list[tuple[str, str, dict[str, Any]]] = [
        ("fastfood", "fastfood", {}), ("fastfood stacked", "fastfood", {"variant": "stacked"}),
        ("fastjl", "fastjl", {}), ("sparse", "sparse", {})]
    for label, name, opts in contenders:
        P = projbench.make_projection(name, d=d, D=D_RESNET18, seed=0, **opts)
        with torch.no_grad():
            out[f"{label} fwd"] = _median_ms(lambda P=P: P(theta), reps)
            out[f"{label} adj"] = _median_ms(lambda P=P: P.adjoint(grad), reps)
        del P
    if resnet:
        xb = torch.randn(32, 3, 32, 32, generator=g)
        yb = torch.randint(0, 10, (32,), generator=g)
        models = {"plain": projbench.make_model("resnet18", "cifar10", seed=0),
                  "fastfood": projbench.SubspaceModel(projbench.make_model("resnet18", "cifar10", seed=0),
                                                      "fastfood", d=d, seed=0)}
        for label, model in models.items():
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)

            def step(model: Any = model, opt: Any = opt) -> None:
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                opt.step()

            out[f"ResNet-18 step ({label})"] = _median_ms(step, max(2, reps // 2))
    return out


def _run_child(policy: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PROJBENCH_CPU_ALLOCATOR": policy}
    cmd = [sys.executable, "-m", "benchmarks.bench_allocator", "--child", "--reps", str(args.reps),
           "--threads", str(args.threads), "--d", str(args.d)] + (["--resnet"] if args.resnet else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"child ({policy}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _iqr(values: list[float]) -> float:
    if len(values) < 4:
        return max(values) - min(values)
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="child pairs (order alternates)")
    ap.add_argument("--reps", type=int, default=5, help="timed calls per item in a child")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--resnet", action="store_true", help="also a ResNet-18 training step (slow)")
    ap.add_argument("--tag", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        from projbench.allocator import allocator_info

        result = child(args.reps, args.resnet, args.d)
        result["_policy"] = allocator_info()["policy"]  # type: ignore[assignment]
        print(json.dumps(result))
        return 0
    samples: dict[str, dict[str, list[float]]] = {p: {} for p in POLICIES}
    for r in range(args.rounds):
        for policy in (POLICIES if r % 2 == 0 else POLICIES[::-1]):
            res = _run_child(policy, args)
            if res.pop("_policy") != policy:
                raise SystemExit(f"the child did not run under policy {policy!r}")
            for item, ms in res.items():
                samples[policy].setdefault(item, []).append(ms)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    rows = []
    report: dict[str, Any] = {"machine": machine_info("cpu"), "args": vars(args), "items": {}}
    for item in samples["retain"]:
        sys_ms, ret_ms = samples["system"][item], samples["retain"][item]
        ratios = [a / b for a, b in zip(sys_ms, ret_ms)]
        report["items"][item] = {"system_ms": sys_ms, "retain_ms": ret_ms, "ratios": ratios}
        rows.append([item, f"{statistics.median(sys_ms):.3g} ± {_iqr(sys_ms):.2g}",
                     f"{statistics.median(ret_ms):.3g} ± {_iqr(ret_ms):.2g}",
                     f"{statistics.median(ratios):.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]"])
    md = "\n".join([
        f"### malloc policy: system vs retain (`python -m benchmarks.bench_allocator"
        f"{' --resnet' if args.resnet else ''}`, {args.rounds} rounds × {args.reps} calls)", "",
        machine_line(report["machine"]).replace(", malloc policy retain", ""),
        f"D = {D_RESNET18:,} (ResNet-18 on CIFAR-10), L = 2^24, d = {args.d}, batch 1, float32, "
        f"{args.threads} torch thread(s). Times: median over rounds ± IQR (ms); ratio: median of "
        "per-round ratios [min–max].", "",
        md_table(["item", "system ms", "retain ms", "system ÷ retain"], rows)])
    write_results("bench_allocator", "cpu", report, md, out_dir=args.out, tag=args.tag)
    print(md)
    return 0


if __name__ == "__main__":
    from benchmarks import apply_process_settings

    apply_process_settings()
    sys.exit(main())
