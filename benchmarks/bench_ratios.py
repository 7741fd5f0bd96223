"""The projections' speed ratios side by side, in one run (``python -m benchmarks.bench_ratios [--quick]``).

Four sections, every contender of a section timed *interleaved*, round by round, in this one
process (so machine load hits all alike); each time is the median over rounds of the mean call
time in a round (inner loop calibrated to ≥ ``--sample-ms``), with its IQR. A ratio A/B is the
median of the per-round ratios (paired, hence steadier than the ratio of medians) with its IQR
in brackets. A time whose IQR exceeds 25 % of its median is flagged ``unstable``.

1. **FWHT**: ``projbench.fwht`` (default pure-PyTorch backend) vs ``fht-cpu`` in place on a
   numpy array (the library's own best case), ``fht-cpu`` through projbench's backend (one copy
   for a new result), and the naive split/concatenate loop, for n = 2^16…2^22, batch 1/8/64
   (batch·n ≤ ``--max-elements``). Ratios: ours ÷ fht-cpu, naive ÷ ours; the GEMM floor of our
   plan and the torch-kernel floor (:func:`per_bit_floor`) of any plan built from torch kernels.
2. **Projections** at d = 1000, batch 1, D ∈ {199,210 (FC-MNIST), 2^20, 2^22}: one FWHT of
   length L; fastfood forward / adjoint / forward+backward (autograd) — also with the
   ``fht-cpu`` backend — and the *textbook* Fastfood forward (two full-length FWHTs and a
   gather over L, the earlier construction, same matrix); fastjl and sparse likewise.
   Ratios: fastfood fwd ÷ FWHT, backward ÷ forward, fastjl ÷ fastfood, sparse ÷ fastfood; the
   stacked Fastfood (``variant="stacked"``) ÷ the global one, and fastjl ÷ stacked.
3. **JL quality** of the same constructions (the permutation is now applied through its
   residues mod m, the matrix is unchanged): distortion of the sketch on Gaussian points against
   the Gaussian ideal χ²_d/d, and the maximum difference to the textbook matrix.
4. **Subspace step ÷ plain step**: FC and LeNet on MNIST-shaped inputs, batch 128, d = 1000,
   SGD, fastfood / fastjl / sparse.

Writes results/bench_ratios_<device>[_<tag>].json and .md and prints the Markdown.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import projbench
from benchmarks import machine_info, machine_line, md_table, write_results
from benchmarks.bench_fwht import fwht_naive
from projbench.builtin import fwht_torch as torch_kernel
from projbench.builtin.fwht_torch import hadamard_matrix
from projbench.hadamard import fwht, next_power_of_two, use_backend

UNSTABLE_IQR = 0.25
ALL_SECTIONS = "fwht,projections,quality,subspace"
CUDA_SECTIONS = "projections,subspace"


# ---------------------------------------------------------------------------------------------
# interleaved timing
# ---------------------------------------------------------------------------------------------
def _calibrate(fn: Callable[[], object], sample_s: float) -> int:
    fn()
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    return max(1, min(10_000, math.ceil(sample_s / one)))


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, sample_s: float,
                device: torch.device | None = None) -> dict[str, list[float]]:
    """Per-call seconds of every ``fns`` entry, ``rounds`` samples each, taken round-robin. On a
    CUDA ``device`` each timed loop starts and ends with a synchronisation (kernels are async)."""
    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(f: Callable[[], object]) -> Callable[[], object]:
        def call() -> None:
            f()
            sync()
        return call

    inner = {k: _calibrate(timed(f), sample_s) for k, f in fns.items()}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(inner[k]):
                f()
            sync()
            samples[k].append((time.perf_counter() - t0) / inner[k])
    return samples


def summary(s: list[float]) -> dict[str, Any]:
    med = statistics.median(s)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0], s[0], s[0]]
    iqr = q[2] - q[0]
    return {"median_ms": 1e3 * med, "iqr_ms": 1e3 * iqr, "unstable": iqr > UNSTABLE_IQR * med,
            "samples_ms": [1e3 * v for v in s]}


def paired_ratio(a: list[float], b: list[float]) -> dict[str, float]:
    """Median and IQR of the per-round ratios a_i / b_i."""
    r = [x / y for x, y in zip(a, b, strict=True)]
    q = statistics.quantiles(r, n=4) if len(r) >= 2 else [r[0], r[0], r[0]]
    return {"ratio": statistics.median(r), "q1": q[0], "q3": q[2]}


def rtxt(r: dict[str, float] | None) -> str:
    return "—" if r is None else f"{r['ratio']:.2f}× [{r['q1']:.2f}–{r['q3']:.2f}]"


def mtxt(s: dict[str, Any] | None) -> str:
    if s is None:
        return "—"
    return f"{s['median_ms']:.3g} ± {s['iqr_ms']:.2g}" + (" ⚠unstable" if s["unstable"] else "")


# ---------------------------------------------------------------------------------------------
# 1. FWHT
# ---------------------------------------------------------------------------------------------
def fht_cpu_inplace(x: torch.Tensor) -> Callable[[], object] | None:
    try:
        import fht_cpu
    except ImportError:
        return None
    arr = x.numpy().copy()
    threads = torch.get_num_threads()
    if arr.shape[0] == 1:
        row = arr[0]
        return lambda: fht_cpu.fht(row)
    return lambda: fht_cpu.fht(arr, num_threads=threads)


def gemm_rate() -> float:
    """flop/s of the torch backend's radix-16 pass on a cache-resident 2^16 vector (16×16 GEMM)."""
    v, out, h = torch.randn(1 << 16), torch.empty(1 << 16), hadamard_matrix(16)
    s = interleaved({"mm": lambda: torch.mm(h, v.view(4096, 16).T, out=out.view(16, 4096))}, 15, 0.02)
    return 2 * 16 * (1 << 16) / min(s["mm"])  # the best round: a floor must not be load-inflated


def per_bit_floor() -> dict[str, float]:
    """Seconds per transform bit of 2^16 cache-resident elements for the fastest torch kernels
    that can do one: a 16×16 GEMM pass (both layouts; 4 bits each), a 32×32 one (5 bits), and a
    radix-2 add/sub pair (1 bit). Best of 15 rounds. An FWHT of length n built from these kernels
    spends at least min(per bit)·log₂n per 2^16 elements, whatever its plan (we know of no torch
    kernel that applies transform bits at a lower cost per element)."""
    n = 1 << 16
    v, out = torch.randn(n), torch.empty(n)
    h16, h32 = hadamard_matrix(16), hadamard_matrix(32)
    a, b = v.view(2, n // 2)
    o = out.view(2, n // 2)
    fns = {
        "GEMM 16 (rotating)": lambda: torch.mm(h16, v.view(n // 16, 16).T, out=out.view(16, n // 16)),
        "GEMM 16 (in place layout)": lambda: torch.mm(v.view(n // 16, 16), h16, out=out.view(n // 16, 16)),
        "GEMM 32 (rotating)": lambda: torch.mm(h32, v.view(n // 32, 32).T, out=out.view(32, n // 32)),
        "radix-2 add/sub": lambda: (torch.add(a, b, out=o[0]), torch.sub(a, b, out=o[1])),
    }
    bits = {"GEMM 16 (rotating)": 4, "GEMM 16 (in place layout)": 4, "GEMM 32 (rotating)": 5,
            "radix-2 add/sub": 1}
    s = interleaved(fns, 15, 0.02)
    return {k: min(v) / bits[k] for k, v in s.items()}


def plan_flops_per_element(n: int) -> int:
    """2·Σ a_i over the torch backend's CPU plan for length n (its GEMM work per element)."""
    mod = torch_kernel
    k = n.bit_length() - 1
    if k <= mod.DENSE_MAX_BITS["cpu"]:
        return 2 * n
    block = mod.BLOCK_BITS["cpu"]
    inner = mod._factor_bits(min(k, block) if block else k, mod.RADIX_BITS["cpu"])
    outer = mod._factor_bits(k - block, mod.OUTER_RADIX_BITS["cpu"]) if block and k > block else []
    return 2 * sum(1 << b for b in inner + outer)


def section_fwht(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    rate = gemm_rate()
    print(f"in-cache 16x16 GEMM pass: {rate / 1e9:.1f} GFLOP/s", file=sys.stderr, flush=True)
    per_bit = per_bit_floor()
    best_bit = min(per_bit.values())
    args.per_bit_floor = {k: 1e6 * v for k, v in per_bit.items()}  # µs per bit per 2^16 elements
    print("torch kernels, µs per transform bit per 2^16 elements: "
          + ", ".join(f"{k} {1e6 * v:.2f}" for k, v in per_bit.items()), file=sys.stderr, flush=True)
    for batch in (1, 8, 64):
        for k in args.fwht_exps:
            n = 1 << k
            if batch * n > args.max_elements:
                continue
            x = torch.randn(batch, n)
            fns: dict[str, Callable[[], object]] = {"ours": lambda x=x: fwht(x)}
            inplace = fht_cpu_inplace(x)
            if inplace is not None:
                fns["fht-cpu"] = inplace
                fns["fht-cpu via projbench"] = lambda x=x: fwht(x, backend="fht-cpu")
            fns["naive"] = lambda x=x: fwht_naive(x)
            with torch.no_grad():
                s = interleaved(fns, args.rounds, args.sample_s)
            row: dict[str, Any] = {"n": n, "log2n": k, "batch": batch,
                                   "times": {name: summary(v) for name, v in s.items()},
                                   "gemm_gflops": rate / 1e9, "flops_per_element": plan_flops_per_element(n)}
            row["gemm_floor_ms"] = 1e3 * batch * n * row["flops_per_element"] / rate
            row["torch_floor_ms"] = 1e3 * best_bit * k * batch * n / (1 << 16)
            row["ours_over_floor"] = row["times"]["ours"]["median_ms"] / row["gemm_floor_ms"]
            if "fht-cpu" in s:
                row["ours_over_fhtcpu"] = paired_ratio(s["ours"], s["fht-cpu"])
                row["backend_over_fhtcpu"] = paired_ratio(s["fht-cpu via projbench"], s["fht-cpu"])
                row["torch_floor_over_fhtcpu"] = row["torch_floor_ms"] / row["times"]["fht-cpu"]["median_ms"]
            row["naive_over_ours"] = paired_ratio(s["naive"], s["ours"])
            rows.append(row)
            print(f"fwht 2^{k} batch {batch}: ours {mtxt(row['times']['ours'])} ms, "
                  f"ours/fht-cpu {rtxt(row.get('ours_over_fhtcpu'))}, "
                  f"naive/ours {rtxt(row['naive_over_ours'])}", file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# 2. projections
# ---------------------------------------------------------------------------------------------
class TextbookFastfood:
    """The earlier Fastfood forward (same matrix as ``fastfood``, same seed): two FWHTs of
    length L, a gather over L with the full permutation, five full-length multiplies."""

    def __init__(self, d: int, D: int, seed: int = 0, device: torch.device | str = "cpu") -> None:
        L = next_power_of_two(max(D, d))
        g = torch.Generator().manual_seed(seed)
        self.signs = (torch.randint(0, 2, (L,), generator=g).float() * 2 - 1).to(device)
        self.perm = torch.randperm(L, generator=g).to(device)
        self.gauss = torch.randn(L, generator=g, dtype=torch.float32).to(device)
        self.scale = L / math.sqrt(D * float((self.gauss.double() ** 2).sum()))
        self.L, self.d, self.D = L, d, D

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        x = F.pad(theta, (0, self.L - self.d)) * self.signs
        x = fwht(x, normalized=True)
        x = torch.index_select(x, -1, self.perm) * self.gauss
        x = fwht(x, normalized=True)
        return x[..., : self.D] * self.scale


def _bwd(P: Callable[[torch.Tensor], torch.Tensor], d: int, D: int,
         device: torch.device | str = "cpu") -> Callable[[], object]:
    """The backward pass alone: the gradient of ⟨g, Pθ⟩ wrt θ through a graph built once."""
    theta = torch.randn(d, device=device, requires_grad=True)
    g = torch.randn(D, device=device)
    out = P(theta)

    def step() -> object:
        return torch.autograd.grad(out, theta, g, retain_graph=True)

    return step


def section_projections(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for D in args.proj_Ds:
        row = projection_row(args, D)
        rows.append(row)
        t = row["times"]
        print(f"D={D:,}: fwht {mtxt(t['fwht L'])}  fastfood fwd {mtxt(t['fastfood fwd'])} "
              f"(textbook {mtxt(t['textbook fastfood fwd'])})  fastjl fwd {mtxt(t['fastjl fwd'])}  "
              f"sparse fwd {mtxt(t['sparse fwd'])} ms", file=sys.stderr, flush=True)
    return rows


def projection_row(args: argparse.Namespace, D: int) -> dict[str, Any]:
    """Every projection contender at one D, interleaved."""
    d = args.d
    dev = torch.device(args.device)
    L = next_power_of_two(D)
    theta, y, xL = torch.randn(d, device=dev), torch.randn(D, device=dev), torch.randn(L, device=dev)
    ff = projbench.make_projection("fastfood", d=d, D=D, device=dev)
    fs = projbench.make_projection("fastfood", d=d, D=D, variant="stacked", device=dev)
    fj = projbench.make_projection("fastjl", d=d, D=D, device=dev)
    sp = projbench.make_projection("sparse", d=d, D=D, device=dev)
    old = TextbookFastfood(d, D, device=dev)
    fns: dict[str, Callable[[], object]] = {
        "fwht L": lambda: fwht(xL),
        "fastfood fwd": lambda: ff(theta), "fastfood adj": lambda: ff.adjoint(y),
        "fastfood bwd": _bwd(ff, d, D, dev),
        "textbook fastfood fwd": lambda: old(theta),
        "stacked fwd": lambda: fs(theta), "stacked bwd": _bwd(fs, d, D, dev),
        "fastjl fwd": lambda: fj(theta), "fastjl adj": lambda: fj.adjoint(y),
        "fastjl bwd": _bwd(fj, d, D, dev),
        "sparse fwd": lambda: sp(theta), "sparse adj": lambda: sp.adjoint(y),
        "sparse bwd": _bwd(sp, d, D, dev),
    }
    has_fht = dev.type == "cpu" and fht_cpu_inplace(torch.zeros(1, 2)) is not None
    if has_fht:
        def with_fht(fn: Callable[[], object]) -> Callable[[], object]:
            def call() -> object:
                prev = use_backend("fht-cpu")
                try:
                    return fn()
                finally:
                    use_backend(prev)
            return call

        fns["fastfood fwd (fht-cpu)"] = with_fht(lambda: ff(theta))
        fns["fastfood bwd (fht-cpu)"] = with_fht(_bwd(ff, d, D))
        fns["fastjl fwd (fht-cpu)"] = with_fht(lambda: fj(theta))
    s = interleaved(fns, args.rounds, args.sample_s, dev)  # θ and y do not require grad: no graphs
    row: dict[str, Any] = {
        "D": D, "L": L, "d": d, "times": {k: summary(v) for k, v in s.items()},
        "state_bytes": {"fastfood": ff.memory_bytes(), "fastfood-stacked": fs.memory_bytes(),
                        "fastjl": fj.memory_bytes(),
                        "sparse": sp.memory_bytes()},
        "ratios": {
            "fastfood fwd / fwht L": paired_ratio(s["fastfood fwd"], s["fwht L"]),
            "textbook fastfood fwd / fwht L": paired_ratio(s["textbook fastfood fwd"], s["fwht L"]),
            "fastfood bwd / fwd": paired_ratio(s["fastfood bwd"], s["fastfood fwd"]),
            "fastjl fwd / fwht L": paired_ratio(s["fastjl fwd"], s["fwht L"]),
            "fastjl bwd / fwd": paired_ratio(s["fastjl bwd"], s["fastjl fwd"]),
            "fastjl fwd / fastfood fwd": paired_ratio(s["fastjl fwd"], s["fastfood fwd"]),
            "fastjl bwd / fastfood bwd": paired_ratio(s["fastjl bwd"], s["fastfood bwd"]),
            "stacked fwd / fastfood fwd": paired_ratio(s["stacked fwd"], s["fastfood fwd"]),
            "stacked bwd / fwd": paired_ratio(s["stacked bwd"], s["stacked fwd"]),
            "fastjl fwd / stacked fwd": paired_ratio(s["fastjl fwd"], s["stacked fwd"]),
            "sparse fwd / fastfood fwd": paired_ratio(s["sparse fwd"], s["fastfood fwd"]),
            "sparse bwd / fastfood bwd": paired_ratio(s["sparse bwd"], s["fastfood bwd"]),
        },
    }
    if has_fht:
        row["ratios"]["fastfood(fht-cpu) fwd / fwht L"] = paired_ratio(s["fastfood fwd (fht-cpu)"],
                                                                       s["fwht L"])
        row["ratios"]["fastfood(fht-cpu) bwd / fwd"] = paired_ratio(s["fastfood bwd (fht-cpu)"],
                                                                    s["fastfood fwd (fht-cpu)"])
    return row


# ---------------------------------------------------------------------------------------------
# 3. JL quality
# ---------------------------------------------------------------------------------------------
def section_quality(args: argparse.Namespace) -> dict[str, Any]:
    from projbench.metrics.distortion import chi2_ideal, default_eps, ratio_stats, sketch_ratios

    d, D, n = 256, 1 << 14, args.points
    X = torch.randn(n, D, generator=torch.Generator().manual_seed(1))
    eps = default_eps(d)
    out: dict[str, Any] = {"d": d, "D": D, "points": n, "eps": eps, "ideal": chi2_ideal(d, eps), "rows": {}}
    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "dense": ("dense", {}), "fastfood": ("fastfood", {}),
        "fastfood-stacked": ("fastfood", {"variant": "stacked"}), "fastjl": ("fastjl", {}),
        "sparse": ("sparse", {})}
    for label, (name, options) in cases.items():
        per_seed = []
        for seed in range(args.quality_seeds):
            P = projbench.make_projection(name, d=d, D=D, seed=seed, **options)
            _norms, pairs = sketch_ratios(P, X)
            per_seed.append(ratio_stats(pairs, d, eps))
        out["rows"][label] = {k: statistics.mean(s[k] for s in per_seed) for k in per_seed[0]}
    # the new fastfood is the textbook matrix (small size: the textbook needs L×L dense)
    dd, DD = 64, 2048
    P = projbench.make_projection("fastfood", d=dd, D=DD, seed=3, dtype=torch.float64)
    old = TextbookFastfood(dd, DD, seed=3)
    eye = torch.eye(dd)
    ref = old(eye).double().T
    out["max_abs_diff_to_textbook"] = float((P.to_dense() - ref).abs().max())
    out["textbook_check_size"] = {"d": dd, "D": DD}
    return out


# ---------------------------------------------------------------------------------------------
# 4. subspace step
# ---------------------------------------------------------------------------------------------
def section_subspace(args: argparse.Namespace) -> list[dict[str, Any]]:
    from benchmarks.bench_subspace import bench_steps

    res = []
    dev = torch.device(args.device)
    has_fht = dev.type == "cpu" and fht_cpu_inplace(torch.zeros(1, 2)) is not None
    backends = ["torch"] + (["fht-cpu"] if has_fht else [])
    for backend in backends:
        stacked = ("fastfood-stacked", "fastfood", {"variant": "stacked"})
        names: list[str | tuple[str, str, dict[str, Any]]] = ["fastfood", stacked, "fastjl"]
        names += ["sparse"] if backend == "torch" else []
        for arch in ("fc", "lenet"):
            prev = use_backend(backend)
            try:
                r = bench_steps(arch, "mnist", names, d=args.d, batch=128, rounds=args.rounds,
                                steps=args.steps, device=dev, optimizer="sgd")
            finally:
                use_backend(prev)
            r["fwht_backend"] = backend
            res.append(r)
            ratios = "  ".join(f"{k} {v['ratio_to_plain']:.2f}×" for k, v in r["rows"].items())
            print(f"{arch} ({backend}): {ratios}", file=sys.stderr, flush=True)
    return res


# ---------------------------------------------------------------------------------------------
def markdown(p: dict[str, Any]) -> str:
    st = p["settings"]
    flags = (" --quick" if st["quick"] else "") + f" --threads {st.get('threads') or 'default'}" + (
        f" --sections {st['sections']}" if st.get("sections", ALL_SECTIONS) != ALL_SECTIONS else "") + (
        f" --device {st['device']}" if st.get("device", "cpu") != "cpu" else "")
    lines = [f"### Speed ratios, one run (`python -m benchmarks.bench_ratios{flags}`, "
             f"{st['rounds']} rounds)", "", machine_line(p["machine"]),
             "Times: median ± IQR over interleaved rounds (ms). Ratios: median of per-round ratios "
             "[IQR]. ⚠unstable: IQR > 25 % of the median.", ""]
    if p["fwht"]:
        lines += ["**FWHT** (float32)", ""]
        rows = [[f"2^{r['log2n']}", r["batch"], mtxt(r["times"]["ours"]), mtxt(r["times"].get("fht-cpu")),
                 rtxt(r.get("ours_over_fhtcpu")), rtxt(r.get("backend_over_fhtcpu")),
                 mtxt(r["times"]["naive"]), rtxt(r["naive_over_ours"]),
                 f"{r['gemm_floor_ms']:.3g} ({r['flops_per_element']})", f"{r['ours_over_floor']:.2f}×",
                 f"{r['torch_floor_ms']:.3g}",
                 f"{r['torch_floor_over_fhtcpu']:.2f}×" if "torch_floor_over_fhtcpu" in r else "—"]
                for r in p["fwht"]]
        lines += [md_table(["n", "batch", "ours ms", "fht-cpu (in place) ms", "ours ÷ fht-cpu",
                            "fht-cpu backend ÷ in place", "naive ms", "naive ÷ ours",
                            "GEMM floor ms (flop/elem)", "ours ÷ floor", "torch-kernel floor ms",
                            "torch floor ÷ fht-cpu"], rows), ""]
        if p["fwht"]:
            lines += [f"GEMM floor: the torch backend's flops (2·Σ block sizes per element) at the rate of "
                      f"its own radix-16 pass on cache-resident data (best of 15 rounds), "
                      f"{p['fwht'][0]['gemm_gflops']:.1f} GFLOP/s: no plan with these GEMM blocks can be "
                      "faster; out-of-cache sizes add memory sweeps on top.", ""]
        if p["settings"].get("per_bit_floor"):
            pb = p["settings"]["per_bit_floor"]
            lines += ["Torch-kernel floor: the fastest torch kernel per transform bit on 2^16 cache-resident "
                      "elements (µs per bit: " + ", ".join(f"{k} {v:.2f}" for k, v in pb.items())
                      + "), times log₂n bits: a lower bound for any FWHT plan built from these kernels, "
                      "even one that never leaves the cache. Where it exceeds 2× fht-cpu, the ≤ 2× goal "
                      "is out of their reach on this CPU.", ""]
    if p["projections"]:
        lines += [f"**Projections** (d = {p['projections'][0]['d'] if p['projections'] else '—'}, batch 1, "
                  "float32; bwd = the backward pass alone, through a graph built once)", ""]
        rows = []
        for r in p["projections"]:
            t = r["times"]
            rows.append([f"{r['D']:,}", mtxt(t["fwht L"]), mtxt(t["fastfood fwd"]), mtxt(t["fastfood bwd"]),
                         mtxt(t["stacked fwd"]), mtxt(t["stacked bwd"]),
                         mtxt(t["textbook fastfood fwd"]), mtxt(t.get("fastfood fwd (fht-cpu)")),
                         mtxt(t["fastjl fwd"]), mtxt(t["fastjl bwd"]), mtxt(t["sparse fwd"]),
                         mtxt(t["sparse bwd"])])
        lines += [md_table(["D", "FWHT of L", "fastfood fwd", "fastfood bwd", "stacked fwd", "stacked bwd",
                            "textbook fastfood fwd",
                            "fastfood fwd, fht-cpu", "fastjl fwd", "fastjl bwd", "sparse fwd", "sparse bwd"],
                           rows), ""]
        names = list(p["projections"][0]["ratios"]) if p["projections"] else []
        rows = [[n, *[rtxt(r["ratios"].get(n)) for r in p["projections"]]] for n in names]
        lines += [md_table(["ratio", *[f"D = {r['D']:,}" for r in p["projections"]]], rows), ""]
        rows = [[n, *[f"{r['state_bytes'][n] / r['L']:.2f}" for r in p["projections"]]]
                for n in ("fastfood", "fastfood-stacked", "fastjl", "sparse")]
        lines += ["State bytes per padded coordinate:", "",
                  md_table(["projection", *[f"L = {r['L']:,}" for r in p["projections"]]], rows), ""]
    if p["quality"]:
        q = p["quality"]
        lines += [f"**JL quality** (pairwise-distance ratios of the sketch, d = {q['d']}, D = {q['D']:,}, "
                  f"{q['points']} Gaussian points, mean over {p['settings']['quality_seeds']} seeds; "
                  f"ideal χ²_d/d std {q['ideal']['ideal_std']:.4f}, fraction outside 1±{q['eps']} "
                  f"{q['ideal']['ideal_frac_out']:.4f})", ""]
        rows = [[n, f"{v['mean']:.4f}", f"{v['std']:.4f}", f"{v['max_dev']:.3f}", f"{v['frac_out']:.4f}",
                 f"{v['ks']:.3f}"] for n, v in q["rows"].items()]
        lines += [md_table(["projection", "mean", "std", "max |r−1|", "frac outside", "KS"], rows), "",
                  f"fastfood (one FWHT per direction) vs the textbook H·G·Π·H·B matrix at "
                  f"d = {q['textbook_check_size']['d']}, D = {q['textbook_check_size']['D']}: "
                  f"max |difference| {q['max_abs_diff_to_textbook']:.2e} (float64 vs float32).", ""]
    if p["subspace"]:
        lines += ["**Subspace step ÷ plain step** (SGD, batch 128, MNIST-shaped input, d = "
                  f"{p['settings']['d']})", ""]
        rows = []
        for b in p["subspace"]:
            for name, r in b["rows"].items():
                rows.append([b["arch"], f"{b['D']:,}", b.get("fwht_backend", "torch"), name,
                             f"{r['step_ms']:.2f}",
                             f"{r['step_iqr_ms']:.2f}" if r.get("step_iqr_ms") is not None else "—",
                             f"{r['ratio_to_plain']:.2f}×"])
        lines += [md_table(["arch", "D", "FWHT backend", "model", "step ms", "IQR ms", "÷ plain"], rows)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_ratios", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and rounds (~3 min on 2 cores)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--tag", default=None)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--sections", default=None,
                    help=f"comma-separated subset of {ALL_SECTIONS} (default: all; on CUDA "
                         f"{CUDA_SECTIONS})")
    ap.add_argument("--device", default="cpu",
                    help="cpu or cuda[:i]: on CUDA the projections (D up to 2^24) and subspace sections")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here")
    args.sections = args.sections or (CUDA_SECTIONS if cuda else ALL_SECTIONS)
    unknown = set(args.sections.split(",")) - set(ALL_SECTIONS.split(","))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {ALL_SECTIONS}")
    if cuda and not set(args.sections.split(",")) <= set(CUDA_SECTIONS.split(",")):
        ap.error(f"on CUDA only {CUDA_SECTIONS} run here (the FWHT section compares with fht-cpu, "
                 "a CPU library; python -m benchmarks.bench_fwht --device cuda times the GPU FWHT)")
    args.rounds = args.rounds or (5 if args.quick else 9)
    args.steps = 3 if args.quick else 5
    args.sample_s = 0.02 if args.quick else 0.05
    args.fwht_exps = [16, 18, 20] if args.quick else [16, 18, 20, 22]
    args.max_elements = 1 << (22 if args.quick else 24)
    args.proj_Ds = [199_210, 1 << 20] if args.quick else [199_210, 1 << 20, 1 << 22]
    if cuda and not args.quick:
        args.proj_Ds.append(1 << 24)
    args.points = 100 if args.quick else 200
    args.quality_seeds = 2 if args.quick else 4
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = set(args.sections.split(","))
    payload: dict[str, Any] = {"benchmark": "ratios", "machine": machine_info(args.device),
                               "settings": {k: v for k, v in vars(args).items() if k != "out_dir"},
                               "fwht": [], "projections": [], "quality": None, "subspace": []}
    t0 = time.perf_counter()
    if "fwht" in sections:
        payload["fwht"] = section_fwht(args)
    if "projections" in sections:
        payload["projections"] = section_projections(args)
    if "quality" in sections:
        payload["quality"] = section_quality(args)
    if "subspace" in sections:
        payload["subspace"] = section_subspace(args)
    payload["settings"]["per_bit_floor"] = getattr(args, "per_bit_floor", None)
    payload["wall_s"] = time.perf_counter() - t0
    md = markdown(payload)  # the sections that ran
    json_path, md_path = write_results("bench_ratios", args.device, payload, md, args.out_dir, args.tag)
    print(md)
    print(f"\nwrote {json_path} and {md_path} ({payload['wall_s']:.0f} s)", file=sys.stderr)
    return payload


if __name__ == "__main__":
    from benchmarks import apply_process_settings

    apply_process_settings()
    main()
