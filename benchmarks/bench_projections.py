"""Projection benchmark: forward / adjoint / backward time and state bytes of every projection.

    python -m benchmarks.bench_projections [--quick] [--device cuda] [--threads N]

Grid: D ∈ 2^``--D-exps`` (default 16, 18, 20, 22, 24; quick 16, 20), d ∈ ``--ds`` (default
100, 1000, 10000; quick 100, 1000), batch ``--batch`` (default 1), every registered projection
(or ``--projections``). Times are medians over repeats after warm-up (CUDA synchronised) via
:func:`projbench.metrics.speed.measure_speed`: ``forward`` P(θ) and ``adjoint`` Pᵀy without
autograd, ``backward`` the gradient of ⟨g, Pθ⟩ wrt θ (graph built untimed). State bytes are
``P.memory_bytes()``; ``build_s`` is the construction time.

A dense projection is only built where its D·d matrix fits ``--dense-budget-mib`` (default
1024 MiB, passed as the dense plugin's ``max_bytes`` option to every projection that takes one);
larger cases (the projection raises ``ResourceLimitError``) and cases whose tensors would not
fit in half the free memory are recorded as ``skipped`` with the reason. Every row records the
machine's load average before and after its timing (:func:`projbench.metrics.timing.load_stats`:
``load_per_cpu``, ``loaded``).

``--interleave`` compares the projections side by side instead: at each (d, D) every
projection's forward and backward are timed round-robin (``--rounds`` rounds, each sample the
mean of back-to-back calls lasting ≥ ``--sample-ms``; :func:`benchmarks.bench_ratios.interleaved`),
so load from other processes hits all alike; times are medians ± IQR over rounds, and each
projection's time ÷ the first projection's (``--projections``, first = reference) is the median
of the per-round ratios with its IQR. Memory: ``P.memory_bytes()`` and the peak extra memory of
one forward + backward (:func:`projbench.metrics.memory.measure_step_memory`), with their ratios
to the reference's. The load average is recorded before and after each (d, D).
Writes results/bench_projections_<device>[_<tag>].json and .md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import fmt, machine_info, machine_line, md_table, write_results
from projbench.errors import ResourceLimitError
from projbench.metrics.speed import measure_speed, working_bytes
from projbench.metrics.timing import (
    available_memory_bytes,
    build_projection,
    load_stats,
    measure_load,
    synchronize,
)

MiB = float(1 << 20)


def run(args: argparse.Namespace, on_row: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any]:
    """Measure the grid; ``on_row(payload)`` after every row (partial results survive a kill)."""
    import projbench

    device = args.device
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    elem = torch.tensor([], dtype=dtype).element_size()
    projections = args.projections or projbench.list_plugins("projections")
    timing: dict[str, Any] = ({"warmup": 1, "repeats": 3, "min_sample_s": 1e-3} if args.quick
              else {"warmup": 2, "repeats": 7, "min_sample_s": 5e-3, "min_total_s": 0.05, "max_total_s": 2.0})
    rows: list[dict[str, Any]] = []
    payload = {"benchmark": "projections", "machine": machine_info(device), "dtype": args.dtype,
               "settings": {k: v for k, v in vars(args).items() if k != "out_dir"}, "timing": timing,
               "rows": rows}
    for name in projections:
        for d in args.ds:
            for k in args.D_exps:
                D = 1 << k
                row: dict[str, Any] = {"projection": name, "D": D, "log2D": k, "d": d, "batch": args.batch}
                rows.append(row)
                reason = None
                need, free = working_bytes(D, d, args.batch, dtype), available_memory_bytes(device)
                if reason is None and need > 0.5 * free:
                    reason = f"working memory ~{need / MiB:,.0f} MiB > half of {free / MiB:,.0f} MiB free"
                if reason is None:
                    try:
                        t0 = time.perf_counter()
                        P = build_projection(name, d, D, seed=0, device=device, dtype=dtype,
                                             options={"max_bytes": int(args.dense_budget_mib * MiB)})
                        synchronize(device)
                        row["build_s"] = time.perf_counter() - t0
                    except ResourceLimitError as exc:
                        reason = str(exc)
                if reason is not None:
                    row.update(status="skipped", error=reason)
                    print(f"{name:>9} D 2^{k:<2} d {d:>5}: skipped ({reason})", file=sys.stderr, flush=True)
                    if on_row:
                        on_row(payload)
                    continue
                row["state_bytes"] = int(P.memory_bytes())
                row["dense_bytes"] = D * d * elem
                before = measure_load()
                row.update(measure_speed(P, args.batch, quick=args.quick, **timing))
                row.update(load_stats(before, measure_load()))
                row["status"] = "ok"
                print(f"{name:>9} D 2^{k:<2} d {d:>5}: fwd {fmt(row['forward_ms'])} ms  "
                      f"adj {fmt(row['adjoint_ms'])} ms  bwd {fmt(row['backward_ms'])} ms  "
                      f"state {fmt(row['state_bytes'] / MiB)} MiB  build {fmt(row['build_s'])} s",
                      file=sys.stderr, flush=True)
                del P
                if on_row:
                    on_row(payload)
                if torch.device(device).type == "cuda":
                    torch.cuda.empty_cache()
    return payload


def run_interleaved(args: argparse.Namespace,
                    on_row: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any]:
    """``--interleave``: per (d, D), every projection's forward and backward timed round-robin,
    state and peak step memory, ratios to the first projection (see the module docstring)."""
    import projbench
    from benchmarks.bench_ratios import interleaved, paired_ratio, summary
    from projbench.metrics.memory import measure_step_memory

    dev = torch.device(args.device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    projections = args.projections or projbench.list_plugins("projections")
    ref = projections[0]
    rows: list[dict[str, Any]] = []
    payload = {"benchmark": "projections", "mode": "interleaved", "machine": machine_info(args.device),
               "dtype": args.dtype, "reference": ref,
               "settings": {k: v for k, v in vars(args).items() if k != "out_dir"}, "rows": rows}
    for d in args.ds:
        for k in args.D_exps:
            D = 1 << k
            row: dict[str, Any] = {"D": D, "log2D": k, "d": d, "batch": args.batch, "skipped": {},
                                   "state_bytes": {}, "peak_step_bytes": {}, "build_s": {}}
            rows.append(row)
            built: dict[str, Any] = {}
            for name in projections:
                try:
                    t0 = time.perf_counter()
                    built[name] = build_projection(name, d, D, seed=0, device=args.device, dtype=dtype,
                                                   options={"max_bytes": int(args.dense_budget_mib * MiB)})
                    synchronize(args.device)
                    row["build_s"][name] = time.perf_counter() - t0
                except ResourceLimitError as exc:
                    row["skipped"][name] = str(exc)
            g = torch.Generator().manual_seed(101)
            theta = torch.randn(args.batch, d, generator=g).to(dev, dtype)
            grad_out = torch.randn(args.batch, D, generator=g).to(dev, dtype)
            fns: dict[str, Callable[[], object]] = {}
            graphs = []
            for name, P in built.items():
                leaf = theta.detach().requires_grad_(True)
                out = P(leaf)
                graphs.append(out)

                def bwd(out: torch.Tensor = out, leaf: torch.Tensor = leaf,
                        grad_out: torch.Tensor = grad_out) -> object:
                    return torch.autograd.grad(out, leaf, grad_out, retain_graph=True)

                def fwd(P: Any = P, theta: torch.Tensor = theta) -> object:
                    with torch.no_grad():
                        return P(theta)

                fns[f"{name} fwd"], fns[f"{name} bwd"] = fwd, bwd
            before = measure_load()
            s = interleaved(fns, args.rounds, args.sample_ms / 1e3, dev)
            row.update(load_stats(before, measure_load()))
            del graphs
            row["times"] = {key: summary(v) for key, v in s.items()}
            row["ratios"] = {}
            if ref in built:
                for name in built:
                    for op in ("fwd", "bwd"):
                        row["ratios"][f"{name} {op}"] = paired_ratio(s[f"{name} {op}"], s[f"{ref} {op}"])
            for name, P in built.items():
                row["state_bytes"][name] = int(P.memory_bytes())
                peak = measure_step_memory(P, batch=args.batch)["peak_step_bytes"]
                row["peak_step_bytes"][name] = int(peak)
            print(f"d {d:>5} D 2^{k:<2} (load {row['load_per_cpu']}/CPU): " + "  ".join(
                f"{name} {fmt(row['times'][f'{name} fwd']['median_ms'])}/"
                f"{fmt(row['times'][f'{name} bwd']['median_ms'])} ms" for name in built),
                file=sys.stderr, flush=True)
            del built
            if on_row:
                on_row(payload)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    return payload


def markdown_interleaved(payload: dict[str, Any]) -> str:
    info, rows, ref = payload["machine"], payload["rows"], payload["reference"]
    projs = list(dict.fromkeys(k.rsplit(" ", 1)[0] for r in rows for k in r.get("times", {})))

    def t(r: dict[str, Any], name: str, op: str) -> str:
        m = r.get("times", {}).get(f"{name} {op}")
        return "skip" if m is None else f"{fmt(m['median_ms'])} ± {fmt(m['iqr_ms'], 2)}" + (
            " ⚠" if m["unstable"] else "")

    def ratio(r: dict[str, Any], name: str, op: str) -> str:
        q = r.get("ratios", {}).get(f"{name} {op}")
        return "—" if q is None else f"{q['ratio']:.2f} [{q['q1']:.2f}–{q['q3']:.2f}]"

    def mem(r: dict[str, Any], name: str, what: str) -> str:
        v = r[what].get(name)
        base = r[what].get(ref)
        if v is None:
            return "skip"
        return fmt(v / MiB) + (f" ({v / base:.2f})" if base else "")

    def size(r: dict[str, Any]) -> list[str]:
        return [f"{r['d']:,}", f"2^{r['log2D']}", f"{r['load_per_cpu']}"]

    head = ["d", "D", "load/CPU"]
    fwd = [size(r) + [t(r, p, "fwd") for p in projs] for r in rows]
    bwd = [size(r) + [t(r, p, "bwd") for p in projs] for r in rows]
    rat = [size(r) + [f"{ratio(r, p, 'fwd')} / {ratio(r, p, 'bwd')}" for p in projs if p != ref]
           for r in rows]
    state = [size(r)[:2] + [mem(r, p, "state_bytes") for p in projs] for r in rows]
    peak = [size(r)[:2] + [mem(r, p, "peak_step_bytes") for p in projs] for r in rows]
    s = payload["settings"]
    loads = [r["load_per_cpu"] for r in rows if r.get("load_per_cpu") is not None]
    loaded = [r for r in rows if r.get("loaded")]
    busy = (f"**Measured under load**: {len(loaded)} of {len(rows)} (d, D) cells ran while the "
            f"1-minute load average was above {rows[0]['load_limit_per_cpu']} per CPU (load/CPU "
            f"{min(loads)}–{max(loads)}): other processes competed for the CPUs, so absolute times are "
            "inflated and noisy; the ratios, timed round-robin in the same rounds, are the robust part."
            if loaded else "The machine was not loaded (1-minute load average ≤ the limit per CPU).")
    return "\n".join([
        f"### Projections side by side ({info['device']}, {payload['dtype']}, batch {s['batch']}, "
        f"interleaved, {s['rounds']} rounds)", "",
        machine_line(info), "",
        busy, "",
        "Load/CPU: the larger 1-minute load average before/after the (d, D) cell ÷ CPUs; above 1 the "
        "machine was busy with other work, which slows every contender of the cell alike (they are "
        "timed round-robin) but inflates absolute times and their spread. ⚠: IQR > 25 % of the median.", "",
        "Forward P(θ), median ± IQR over rounds, ms:", "",
        md_table(head + projs, fwd), "",
        "Backward (gradient of ⟨g, Pθ⟩ wrt θ, graph built once), ms:", "",
        md_table(head + projs, bwd), "",
        f"Time ÷ {ref}'s, forward / backward: median of per-round ratios [IQR]:", "",
        md_table(head + [p for p in projs if p != ref], rat), "",
        f"State (`P.memory_bytes()`), MiB (÷ {ref}'s):", "",
        md_table(["d", "D", *projs], state), "",
        f"Peak extra memory of one forward + backward (torch profiler), MiB (÷ {ref}'s):", "",
        md_table(["d", "D", *projs], peak), "",
    ])


def markdown(payload: dict[str, Any]) -> str:
    if payload.get("mode") == "interleaved":
        return markdown_interleaved(payload)
    info = payload["machine"]
    rows = payload["rows"]
    projs = list(dict.fromkeys(r["projection"] for r in rows))
    grid = sorted({(r["d"], r["D"]) for r in rows})
    by = {(r["projection"], r["d"], r["D"]): r for r in rows}

    def cell(r: dict[str, Any] | None, what: str) -> str:
        if r is None:
            return ""
        if r["status"] != "ok":
            return "skip"
        if what == "time":
            return f"{fmt(r['forward_ms'])} / {fmt(r['backward_ms'])}"
        return fmt(r["state_bytes"] / MiB)

    time_rows = [[f"{d:,}", f"2^{D.bit_length() - 1}"] + [cell(by.get((p, d, D)), "time") for p in projs]
                 for d, D in grid]
    mem_rows = [[f"{d:,}", f"2^{D.bit_length() - 1}", fmt(D * d * 4 / MiB)]
                + [cell(by.get((p, d, D)), "mem") for p in projs] for d, D in grid]
    batch = payload["settings"]["batch"]
    return "\n".join([
        f"### Projections: time and state ({info['device']}, {payload['dtype']}, batch {batch})", "",
        machine_line(info), "",
        "Forward / backward median time in ms (backward: gradient of ⟨g, Pθ⟩ wrt θ); "
        "`skip`: over the dense budget or free memory (reason in the JSON).", "",
        md_table(["d", "D", *projs], time_rows), "",
        "State bytes in MiB (`P.memory_bytes()`), next to the float32 dense D×d matrix:", "",
        md_table(["d", "D", "dense D×d", *projs], mem_rows), "",
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_projections",
                                description=__doc__.split("\n")[0])
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    p.add_argument("--quick", action="store_true", help="D ∈ {2^16, 2^20}, d ∈ {100, 1000}, fewer repeats")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--projections", type=lambda s: s.split(","), default=None)
    p.add_argument("--D-exps", dest="D_exps", type=ints, default=None, help="log2 D values, e.g. 16,18,20")
    p.add_argument("--ds", type=ints, default=None, help="d values, e.g. 100,1000,10000")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dense-budget-mib", type=float, default=1024.0)
    p.add_argument("--interleave", action="store_true",
                   help="time the projections side by side, round-robin, ratios to the first one")
    p.add_argument("--rounds", type=int, default=7, help="--interleave: rounds per (d, D)")
    p.add_argument("--sample-ms", type=float, default=50.0, help="--interleave: least time per sample")
    p.add_argument("--tag", default=None, help="suffix of the result file names, e.g. the machine")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    if args.D_exps is None:
        args.D_exps = [16, 20] if args.quick else [16, 18, 20, 22, 24]
    if args.ds is None:
        args.ds = [100, 1000] if args.quick else [100, 1000, 10000]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    def save(payload: dict[str, Any]) -> tuple[Path, Path]:
        return write_results("bench_projections", args.device, payload, markdown(payload), args.out_dir,
                             args.tag)

    payload = (run_interleaved if args.interleave else run)(args, on_row=save)
    md = markdown(payload)
    json_path, md_path = save(payload)
    print(md)
    print(f"\nwrote {json_path} and {md_path}", file=sys.stderr)


if __name__ == "__main__":
    from benchmarks import apply_process_settings

    apply_process_settings()
    main()
