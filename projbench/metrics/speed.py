"""The ``speed`` suite: forward, adjoint and backward time of each projection over a grid.

For one case (projection, D, d, batch, dtype, device) with θ ∈ R^{batch×d}, y, g ∈ R^{batch×D}
(standard normal, seeded):

* ``forward``  — ``P(θ)`` under ``torch.no_grad()``;
* ``adjoint``  — ``P.adjoint(y)`` under ``torch.no_grad()``;
* ``backward`` — ``out.backward(g)`` for ``out = P(θ)`` with θ requiring grad, i.e. the gradient
  of the scalar loss ⟨g, Pθ⟩ with respect to θ; the forward that builds the graph runs untimed
  before every call (:func:`~projbench.metrics.timing.time_callable` with ``setup``).

Each time is the median over repeats (after warm-up, CUDA synchronised) with its IQR, reported
in milliseconds (``forward_ms``, ``forward_iqr_ms``, …). Throughput ``forward_Mel_s`` is
batch·D output entries per second / 10⁶; ``forward_vec_s`` is projected vectors per second.

**Scaling exponent.** Cases are independent (run in any order, in parallel, resumed), so the
exponent α in time ∝ D^α is computed afterwards from the records, not inside a case:
:func:`scaling_exponents` fits log t = α log D + c by least squares over the D grid of each
(projection, d, batch, dtype, device, op); :meth:`SpeedSuite.figure` shows α in its legend.

Grids: quick (the default of ``projbench run``) D ∈ {2¹², 2¹⁴, 2¹⁶}, d = 100, batch 1;
full D ∈ {2¹⁶, …, 2²²}, d ∈ {10², 10³, 10⁴}, batch ∈ {1, 32}. Device and dtype come from the
run's settings (rerun with another ``--device``/``--dtype`` to extend the grid). A dense
projection over its memory budget, or a case whose tensors would not fit in free memory, is
``skipped`` with the reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from projbench.errors import ResourceLimitError
from projbench.metrics.timing import (
    available_memory_bytes,
    build_projection,
    device_unavailable,
    time_callable,
)
from projbench.suites import Case, CaseOutcome, RunSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OPS: tuple[str, ...] = ("forward", "adjoint", "backward")
QUICK = {"D": (1 << 12, 1 << 14, 1 << 16), "d": (100,), "batch": (1,)}
FULL = {"D": tuple(1 << k for k in range(16, 23)), "d": (100, 1_000, 10_000), "batch": (1, 32)}


def timing_profile(quick: bool) -> dict[str, Any]:
    """Keyword arguments of ``time_callable`` for the quick and the full grid."""
    if quick:
        return {"warmup": 1, "repeats": 3, "min_sample_s": 1e-3, "min_total_s": 0.0, "max_total_s": 0.3}
    return {"warmup": 3, "repeats": 15, "min_sample_s": 5e-3, "min_total_s": 0.25}


def measure_speed(P: Any, batch: int, *, seed: int = 0, quick: bool = True,
                  ops: tuple[str, ...] = OPS, **timing: Any) -> dict[str, Any]:
    """Time ``ops`` of projection P at ``batch``; returns the stats dict (see module docstring)."""
    device, dtype, d, D = P.device, P.dtype, P.d, P.D
    g = torch.Generator().manual_seed(seed + 101)
    theta = torch.randn(batch, d, generator=g).to(device, dtype)
    y = torch.randn(batch, D, generator=g).to(device, dtype)
    kw = {**timing_profile(quick), **timing, "device": device}
    stats: dict[str, Any] = {}
    results = {}
    if "forward" in ops:
        with torch.no_grad():
            results["forward"] = time_callable(lambda: P(theta), **kw)
    if "adjoint" in ops:
        with torch.no_grad():
            results["adjoint"] = time_callable(lambda: P.adjoint(y), **kw)
    if "backward" in ops:
        def setup() -> torch.Tensor:
            return P(theta.detach().requires_grad_(True))

        def backward(out: torch.Tensor) -> None:
            out.backward(y)

        results["backward"] = time_callable(backward, setup=setup, **kw)
    for op, res in results.items():
        stats[f"{op}_ms"] = res.median * 1e3
        stats[f"{op}_iqr_ms"] = res.iqr * 1e3
        stats[f"{op}_repeats"] = res.repeats
        stats[f"{op}_inner"] = res.inner
    if "forward" in results:
        t = results["forward"].median
        stats["forward_vec_s"] = batch / t
        stats["forward_Mel_s"] = batch * D / t / 1e6
    return stats


def working_bytes(D: int, d: int, batch: int, dtype: torch.dtype) -> int:
    """Rough upper estimate of the tensors one case touches: ~8 buffers of batch·L entries,
    L = 2^⌈log₂ max(D, d)⌉ (Hadamard-based projections pad to L)."""
    L = 1 << max(0, math.ceil(math.log2(max(D, d))))
    return 8 * batch * (L + d) * torch.tensor([], dtype=dtype).element_size()


class SpeedSuite:
    """Forward / adjoint / backward time per projection over (D, d, batch) at the run's device/dtype."""

    name: ClassVar[str] = "speed"
    description: ClassVar[str] = (
        "forward, adjoint and backward time (median, IQR; CUDA-synchronised) over (D, d, batch); "
        "throughput; scaling exponent in D from the records"
    )
    # D, d, batch, dtype and device are in the case params (shown by the report)
    table_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("fwd ms", "forward_ms"),
        ("fwd IQR", "forward_iqr_ms"),
        ("adj ms", "adjoint_ms"),
        ("bwd ms", "backward_ms"),
        ("fwd Mel/s", "forward_Mel_s"),
    )

    def __init__(self, grid: dict[str, tuple[int, ...]] | None = None, memory_fraction: float = 0.5) -> None:
        self.grid = grid
        self.memory_fraction = memory_fraction

    def cases(self, projections: list[str], settings: RunSettings) -> list[Case]:
        grid = self.grid or (QUICK if settings.quick else FULL)
        return [
            Case(self.name, proj, {"D": D, "d": d, "batch": b, "dtype": settings.dtype,
                                   "device": settings.device})
            for proj in projections
            for d in grid["d"]
            for b in grid["batch"]
            for D in grid["D"]
        ]

    def run_case(self, case: Case, settings: RunSettings) -> CaseOutcome:
        p = case.params
        D, d, batch = int(p["D"]), int(p["d"]), int(p["batch"])
        device = str(p.get("device", settings.device))
        dtype = RunSettings(dtype=str(p.get("dtype", settings.dtype))).torch_dtype
        reason = device_unavailable(device)
        if reason:
            return CaseOutcome(stats={}, status="skipped", error=reason)
        need = working_bytes(D, d, batch, dtype)
        free = available_memory_bytes(device)
        if need > self.memory_fraction * free:
            return CaseOutcome(stats={}, status="skipped", error=(
                f"batch {batch} × D {D} needs ~{need / 2**30:.1f} GiB of working memory, more than "
                f"{self.memory_fraction:.0%} of the {free / 2**30:.1f} GiB free on {device}; "
                "use a smaller batch or D"))
        try:
            P = build_projection(case.projection, d, D, seed=settings.seed, device=device, dtype=dtype,
                                 options=settings.options)
        except ResourceLimitError as exc:
            return CaseOutcome(stats={}, status="skipped", error=str(exc))
        stats: dict[str, Any] = {"D": D, "d": d, "batch": batch, "dtype": str(p.get("dtype")),
                                 "device": device, "threads": torch.get_num_threads()}
        stats.update(measure_speed(P, batch, seed=settings.seed, quick=settings.quick))
        return CaseOutcome(stats=stats)

    def figure(self, records: list[dict[str, Any]]) -> Figure | None:
        """Median time vs D (log-log) per projection, one panel per op; α (fitted exponent) in
        the legend."""
        from matplotlib.figure import Figure

        recs = [r for r in records if r.get("suite", self.name) == self.name and r.get("status") == "ok"]
        if not recs:
            return None
        alphas = scaling_exponents(recs)
        fig = Figure(figsize=(15, 4.5), layout="constrained")
        axes = fig.subplots(1, len(OPS), squeeze=False).ravel()
        for ax, op in zip(axes, OPS):
            for key, pts in sorted(_series(recs, op).items()):
                proj, d, batch, _dtype, _device = key
                Ds, ts = zip(*sorted(pts))
                a = alphas.get((*key, op))
                label = f"{proj} d={d} b={batch}" + (f" (α={a:.2f})" if a is not None else "")
                ax.loglog(Ds, [t * 1e-3 for t in ts], marker="o", label=label)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("D (parameters)")
            ax.set_ylabel("median time (s)")
            ax.set_title(op)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        devices = sorted({str(r["params"].get("device", "")) for r in recs})
        fig.suptitle(f"Projection time vs D ({', '.join(devices)})")
        return fig


def _series(records: list[dict[str, Any]], op: str) -> dict[tuple[Any, ...], list[tuple[int, float]]]:
    out: dict[tuple[Any, ...], list[tuple[int, float]]] = defaultdict(list)
    for r in records:
        t = r.get("stats", {}).get(f"{op}_ms")
        if t is None or not t > 0:
            continue
        p = r["params"]
        key = (r["projection"], int(p["d"]), int(p["batch"]), str(p.get("dtype")), str(p.get("device")))
        out[key].append((int(p["D"]), float(t)))
    return out


def scaling_exponents(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], float]:
    """α of time ∝ D^α by least squares of log t on log D, per (projection, d, batch, dtype,
    device, op); only series with ≥ 2 distinct D. ``records`` are speed-suite case dicts."""
    out: dict[tuple[Any, ...], float] = {}
    for op in OPS:
        for key, pts in _series(records, op).items():
            if len({D for D, _ in pts}) < 2:
                continue
            x = torch.tensor([math.log(D) for D, _ in pts], dtype=torch.float64)
            y = torch.tensor([math.log(t) for _, t in pts], dtype=torch.float64)
            xc = x - x.mean()
            out[(*key, op)] = float((xc * (y - y.mean())).sum() / (xc * xc).sum())
    return out
