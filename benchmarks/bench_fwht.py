"""FWHT benchmark: projbench's default backend vs the naive loop and a dense matmul, one run.

    python -m benchmarks.bench_fwht [--quick] [--device cuda] [--threads N]

For n = 2^k (k from ``--min-exp`` to ``--max-exp``, default 4…24) and each batch size
(default 1 and 64) it times, on x ~ N(0, 1) of shape (batch, n), under ``torch.no_grad()``:

* ``ours``  — ``projbench.fwht(x)`` (public dispatch, default backend: radix-2^k dense blocks);
* ``naive`` — the split/concatenate butterfly loop found in most PyTorch ports: log₂ n passes,
  each ``cat((a + b, a − b))`` over halves of blocks of size 2h;
* ``dense`` — ``x @ H_n`` with the explicit Sylvester matrix, where H_n fits (n ≤ 2^``--dense-max-exp``).

All three are checked against ``scipy.linalg.hadamard`` at n = 2^10 first. Reported: median
time, IQR, per-element time (median / (batch·n)) and the ratios naive/ours and dense/ours,
all measured in this one run. Sizes with batch·n > ``--max-elements`` are skipped (recorded).
Writes results/bench_fwht_<device>.json and .md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchmarks import fmt, machine_info, machine_line, md_table, write_results
from projbench.builtin.fwht_torch import hadamard_matrix
from projbench.metrics.timing import time_callable


def fwht_naive(x: torch.Tensor) -> torch.Tensor:
    """x·H_n by the split/concatenate butterfly loop (log₂ n passes, a new tensor each)."""
    n = x.shape[-1]
    batch = x.shape[:-1]
    y = x
    h = 1
    while h < n:
        y = y.reshape(*batch, n // (2 * h), 2, h)
        a, b = y[..., 0, :], y[..., 1, :]
        y = torch.cat((a + b, a - b), dim=-1)
        h *= 2
    return y.reshape(*batch, n)


def check_correctness(device: str) -> None:
    """ours, naive and dense agree with scipy's Hadamard matrix at n = 1024 (float64)."""
    from scipy.linalg import hadamard

    import projbench

    n = 1024
    x = torch.randn(3, n, dtype=torch.float64, device=device)
    ref = x @ torch.from_numpy(hadamard(n)).to(device, torch.float64)
    for name, fn in (("ours", projbench.fwht), ("naive", fwht_naive),
                     ("dense", lambda t: t @ hadamard_matrix(n, t.dtype, t.device))):
        err = (fn(x) - ref).abs().max().item()
        if err > 1e-8 * n:
            raise SystemExit(f"bench_fwht: {name} disagrees with scipy.linalg.hadamard (max error {err})")


def run(args: argparse.Namespace, on_row: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any]:
    """Measure the grid; ``on_row(payload)`` after every row (partial results survive a kill)."""
    import projbench

    device = args.device
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    timing: dict[str, Any] = ({"warmup": 1, "repeats": 3, "min_sample_s": 2e-3} if args.quick
              else {"warmup": 2, "repeats": 7, "min_sample_s": 1e-2, "min_total_s": 0.1, "max_total_s": 3.0})
    check_correctness(device)
    rows: list[dict[str, Any]] = []
    payload = {"benchmark": "fwht", "machine": machine_info(device), "dtype": args.dtype,
               "settings": {k: v for k, v in vars(args).items() if k != "out_dir"}, "timing": timing,
               "rows": rows}
    for batch in args.batches:
        for k in range(args.min_exp, args.max_exp + 1):
            n = 1 << k
            row: dict[str, Any] = {"n": n, "log2n": k, "batch": batch}
            if batch * n > args.max_elements:
                row["status"] = "skipped"
                row["error"] = f"batch·n = {batch * n} > --max-elements {args.max_elements}"
                rows.append(row)
                if on_row:
                    on_row(payload)
                continue
            x = torch.randn(batch, n, device=device, dtype=dtype)
            impls: dict[str, Callable[[], torch.Tensor]] = {
                "ours": partial(projbench.fwht, x), "naive": partial(fwht_naive, x)}
            if k <= args.dense_max_exp:
                H = hadamard_matrix(n, dtype, device)
                impls["dense"] = partial(torch.matmul, x, H)
            with torch.no_grad():
                for name, fn in impls.items():
                    res = time_callable(fn, device=device, **timing)
                    row[f"{name}_s"] = res.median
                    row[f"{name}_iqr_s"] = res.iqr
                    row[f"{name}_ns_per_elem"] = res.median / (batch * n) * 1e9
            row["naive_over_ours"] = row["naive_s"] / row["ours_s"]
            if "dense_s" in row:
                row["dense_over_ours"] = row["dense_s"] / row["ours_s"]
            row["status"] = "ok"
            rows.append(row)
            if on_row:
                on_row(payload)
            print(f"batch {batch:>3} n 2^{k:<2} ours {fmt(row['ours_ns_per_elem'])} ns/el  "
                  f"naive/ours {row['naive_over_ours']:.1f}x"
                  + (f"  dense/ours {row['dense_over_ours']:.1f}x" if "dense_over_ours" in row else ""),
                  file=sys.stderr, flush=True)
            del x
            impls.clear()
    return payload


def markdown(payload: dict[str, Any]) -> str:
    info = payload["machine"]
    parts = [f"### FWHT: projbench vs naive loop vs dense matmul ({info['device']}, {payload['dtype']})",
             "", machine_line(info),
             "Per-element time = median / (batch·n); ratios > 1 mean projbench is faster; "
             "all numbers from one run of `python -m benchmarks.bench_fwht`.", ""]
    for batch in payload["settings"]["batches"]:
        rows = [r for r in payload["rows"] if r["batch"] == batch]
        table = []
        for r in rows:
            if r["status"] != "ok":
                table.append([f"2^{r['log2n']}", "skipped", "", "", "", ""])
                continue
            table.append([f"2^{r['log2n']}", fmt(r["ours_ns_per_elem"]), fmt(r["naive_ns_per_elem"]),
                          f"{r['naive_over_ours']:.1f}×", fmt(r.get("dense_ns_per_elem")),
                          f"{r['dense_over_ours']:.1f}×" if "dense_over_ours" in r else "—"])
        parts += [f"**batch {batch}**", "",
                  md_table(["n", "ours ns/elem", "naive ns/elem", "naive/ours", "dense ns/elem",
                            "dense/ours"], table), ""]
    return "\n".join(parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_fwht", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="n up to 2^20, fewer repeats (~1 min on 2 cores)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--min-exp", type=int, default=4)
    p.add_argument("--max-exp", type=int, default=None, help="largest log2 n (default 24; quick 20)")
    p.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 64])
    p.add_argument("--dense-max-exp", type=int, default=None,
                   help="largest log2 n for the dense x @ H reference (default 12 on cpu, 14 on cuda)")
    p.add_argument("--max-elements", type=int, default=None,
                   help="skip sizes with batch·n above this (default 2^26 on cpu, 2^28 on cuda)")
    p.add_argument("--tag", default=None, help="suffix of the result file names, e.g. the machine")
    p.add_argument("--out-dir", default=None, help="where to write the results (default results/)")
    args = p.parse_args(argv)
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    if args.max_exp is None:
        args.max_exp = 20 if args.quick else 24
    if args.dense_max_exp is None:
        args.dense_max_exp = 14 if cuda else 12
    if args.max_elements is None:
        args.max_elements = 1 << (28 if cuda else 26)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    def save(payload: dict[str, Any]) -> tuple[Path, Path]:
        return write_results("bench_fwht", args.device, payload, markdown(payload), args.out_dir, args.tag)

    payload = run(args, on_row=save)
    md = markdown(payload)
    json_path, md_path = save(payload)
    print(md)
    print(f"\nwrote {json_path} and {md_path}", file=sys.stderr)
    ok = [r for r in payload["rows"] if r["status"] == "ok" and r["n"] == 1 << 20]
    for r in ok:
        print(f"n=2^20 batch {r['batch']}: naive/ours = {r['naive_over_ours']:.1f}x "
              f"(goal >= 10x)", file=sys.stderr)


if __name__ == "__main__":
    from benchmarks import apply_process_settings

    apply_process_settings()
    main()
