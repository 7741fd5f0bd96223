"""The ``speed`` suite: forward, adjoint and backward time of each projection over a grid.

For one case (projection, D, d, batch, dtype, device) with θ ∈ R^{batch×d}, y, g ∈ R^{batch×D}
(standard normal, seeded):

* ``forward``  — ``P(θ)`` under ``torch.no_grad()``;
* ``adjoint``  — ``P.adjoint(y)`` under ``torch.no_grad()``;
* ``backward`` — ``out.backward(g, retain_graph=True)`` for ``out = P(θ)`` built once with θ
  requiring grad, i.e. the gradient of ⟨g, Pθ⟩ with respect to θ without the forward pass.

Each op is timed by :func:`~projbench.metrics.timing.time_callable` (torch.utils.benchmark's
``blocked_autorange`` after a warm-up, CUDA synchronised). Stats per op, with the unit in the
name: ``{op}_ms`` (median per call), ``{op}_iqr_ms``, ``{op}_q1_ms``, ``{op}_q3_ms``,
``{op}_min_ms`` (fastest sample: the least disturbed estimate on a busy machine),
``{op}_rel_iqr`` (IQR/median), ``{op}_unstable``, ``{op}_repeats`` (samples) and ``{op}_inner``
(calls per sample); the raw per-call samples in seconds are in the record's ``samples``
(``{op}_s``). ``unstable`` is true when any op is (spread above
:data:`~projbench.metrics.timing.UNSTABLE_REL_IQR`); ``unstable_ops`` names them.

**Load.** Beside each case the suite records the machine's load average before and after
the timing and the CPU count (:func:`~projbench.metrics.timing.load_stats`: ``load_avg_start``,
``load_avg_end``, ``cpu_count``, ``load_per_cpu``, ``load_limit_per_cpu``, ``loaded``) and the
torch ``threads``. A case timed while the 1-minute load per CPU was above the limit (1.0 by
default) is ``loaded``: every op is flagged unstable, whatever its spread (other processes
slow every sample alike), and ``unstable_ops`` ends with ``load X/CPU``. The suite declares
``timing = True``: ``projbench run`` never runs two of its cases at once.
Throughput ``forward_Mel_s`` is batch·D output entries per second / 10⁶; ``forward_vec_s`` is
projected vectors per second.

**Scaling exponent.** Cases are independent (run in any order, in parallel, resumed), so the
exponent α in time ∝ D^α is computed afterwards from the records, not inside a case:
:func:`scaling_exponents` fits log t = α log D + c by least squares (``scipy.stats.linregress``,
which also gives α's standard error) over the D grid of each (projection, d, batch, dtype,
device, op), **leaving out unstable points**; a series with fewer than two stable D has no
exponent. :meth:`SpeedSuite.figure` shows α ± se in its legend, the quartiles as error bars
and O(D) and O(D log D) reference slopes.

Grids: quick (the default of ``projbench run``) D ∈ {2¹², 2¹⁴, 2¹⁶}, d = 100, batch 1;
full D ∈ {2¹⁶, …, 2²²}, d ∈ {10², 10³, 10⁴}, batch ∈ {1, 32}. Device and dtype come from the
run's settings (rerun with another ``--device``/``--dtype`` to extend the grid). A dense
projection over its memory budget, or a case whose tensors would not fit in free memory, is
``skipped`` with the reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from projbench.errors import ResourceLimitError
from projbench.metrics.timing import (
    TimingResult,
    available_memory_bytes,
    build_projection,
    device_unavailable,
    load_stats,
    measure_load,
    time_callable,
)
from projbench.suites import Case, CaseOutcome, RunSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

OPS: tuple[str, ...] = ("forward", "adjoint", "backward")
QUICK = {"D": (1 << 12, 1 << 14, 1 << 16), "d": (100,), "batch": (1,)}
FULL = {"D": tuple(1 << k for k in range(16, 23)), "d": (100, 1_000, 10_000), "batch": (1, 32)}


MAX_SAMPLES = 200  # raw samples kept per op in the record


def timing_profile(quick: bool) -> dict[str, Any]:
    """Keyword arguments of ``time_callable`` for the quick and the full grid."""
    if quick:
        return {"warmup": 2, "repeats": 9, "min_run_time": 0.05, "min_sample_s": 1e-3, "max_total_s": 0.5}
    return {"warmup": 3, "repeats": 25, "min_run_time": 0.5, "min_sample_s": 5e-3, "max_total_s": 5.0}


def timing_stats(results: dict[str, TimingResult]) -> dict[str, Any]:
    """Stats keys of :func:`measure_speed` from one :class:`TimingResult` per op."""
    stats: dict[str, Any] = {}
    for op, res in results.items():
        stats[f"{op}_ms"] = res.median * 1e3
        stats[f"{op}_iqr_ms"] = res.iqr * 1e3
        stats[f"{op}_q1_ms"] = res.q1 * 1e3
        stats[f"{op}_q3_ms"] = res.q3 * 1e3
        stats[f"{op}_min_ms"] = min(res.samples) * 1e3
        stats[f"{op}_rel_iqr"] = res.rel_iqr
        stats[f"{op}_unstable"] = res.unstable
        stats[f"{op}_repeats"] = res.repeats
        stats[f"{op}_inner"] = res.inner
    bad = [op for op, res in results.items() if res.unstable]
    stats["unstable"] = bool(bad)
    stats["unstable_ops"] = ",".join(bad)
    return stats


def measure_speed(P: Any, batch: int, *, seed: int = 0, quick: bool = True,
                  ops: tuple[str, ...] = OPS, samples: dict[str, list[float]] | None = None,
                  **timing: Any) -> dict[str, Any]:
    """Time ``ops`` of projection P at ``batch``; returns the stats dict (see module docstring).

    Pass a dict as ``samples`` to receive the raw per-call samples (seconds, at most
    :data:`MAX_SAMPLES` per op) under ``{op}_s``.
    """
    device, dtype, d, D = P.device, P.dtype, P.d, P.D
    g = torch.Generator().manual_seed(seed + 101)
    theta = torch.randn(batch, d, generator=g).to(device, dtype)
    y = torch.randn(batch, D, generator=g).to(device, dtype)
    kw = {**timing_profile(quick), **timing, "device": device}
    results: dict[str, TimingResult] = {}
    if "forward" in ops:
        with torch.no_grad():
            results["forward"] = time_callable(lambda: P(theta), **kw)
    if "adjoint" in ops:
        with torch.no_grad():
            results["adjoint"] = time_callable(lambda: P.adjoint(y), **kw)
    if "backward" in ops:
        leaf = theta.detach().requires_grad_(True)
        out = P(leaf)

        def backward() -> None:
            out.backward(y, retain_graph=True)

        results["backward"] = time_callable(backward, **kw)
        leaf.grad = None
        del out
    stats = timing_stats(results)
    if samples is not None:
        for op, res in results.items():
            samples[f"{op}_s"] = [float(v) for v in res.samples[:MAX_SAMPLES]]
    if "forward" in results:
        t = results["forward"].median
        stats["forward_vec_s"] = batch / t
        stats["forward_Mel_s"] = batch * D / t / 1e6
    return stats


def flag_loaded(stats: dict[str, Any], ops: tuple[str, ...] = OPS) -> None:
    """Mark every timed op of ``stats`` unstable when the case ran on a loaded machine
    (``stats["loaded"]``); ``unstable_ops`` then ends with ``load X/CPU``."""
    if stats.get("loaded") is not True:
        return
    timed = [op for op in ops if f"{op}_unstable" in stats]
    for op in timed:
        stats[f"{op}_unstable"] = True
    spread = [op for op in str(stats.get("unstable_ops") or "").split(",") if op]
    stats["unstable"] = True
    stats["unstable_ops"] = ",".join([*spread, f"load {stats.get('load_per_cpu')}/CPU"])


def working_bytes(D: int, d: int, batch: int, dtype: torch.dtype) -> int:
    """Rough upper estimate of the tensors one case touches: ~8 buffers of batch·L entries,
    L = 2^⌈log₂ max(D, d)⌉ (Hadamard-based projections pad to L)."""
    L = 1 << max(0, math.ceil(math.log2(max(D, d))))
    return 8 * batch * (L + d) * torch.tensor([], dtype=dtype).element_size()


class SpeedSuite:
    """Forward / adjoint / backward time per projection over (D, d, batch) at the run's device/dtype."""

    name: ClassVar[str] = "speed"
    timing: ClassVar[bool] = True  # never two cases at once
    description: ClassVar[str] = (
        "forward, adjoint and backward time (median, IQR; CUDA-synchronised) over (D, d, batch); "
        "throughput; scaling exponent in D from the records"
    )
    # D, d, batch, dtype and device are in the case params (shown by the report)
    table_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("fwd ms", "forward_ms"),
        ("fwd IQR ms", "forward_iqr_ms"),
        ("adj ms", "adjoint_ms"),
        ("bwd ms", "backward_ms"),
        ("fwd Mel/s", "forward_Mel_s"),
        ("unstable", "unstable_ops"),
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
        samples: dict[str, list[float]] = {}
        before = measure_load()
        stats.update(measure_speed(P, batch, seed=settings.seed, quick=settings.quick, samples=samples))
        stats.update(load_stats(before, measure_load()))
        flag_loaded(stats)
        return CaseOutcome(stats=stats, samples=samples)

    def figure(self, records: list[dict[str, Any]]) -> Figure | None:
        """Median time (ms) vs D, log-log, per projection, one panel per op: error bars from the
        first to the third quartile, unstable points hollow, α ± se (fitted on stable points)
        in the legend, dashed O(D) and dotted O(D log D) reference lines."""
        from matplotlib.figure import Figure

        recs = [r for r in records if r.get("suite", self.name) == self.name and r.get("status") == "ok"]
        if not recs:
            return None
        fits = scaling_exponents(recs)
        fig = Figure(figsize=(15, 4.8), layout="constrained")
        axes = fig.subplots(1, len(OPS), squeeze=False).ravel()
        for ax, op in zip(axes, OPS):
            series = _series(recs, op)
            all_D: list[int] = []
            all_t: list[float] = []
            for i, (key, pts) in enumerate(sorted(series.items())):
                proj, d, batch, _dtype, _device = key
                pts = sorted(pts)
                Ds = [p.D for p in pts]
                ts = [p.ms for p in pts]
                lo = [max(p.ms - p.q1, 0.0) for p in pts]
                hi = [max(p.q3 - p.ms, 0.0) for p in pts]
                fit = fits.get((*key, op))
                label = f"{proj} d={d} b={batch}"
                if fit is not None and math.isfinite(fit.stderr):
                    label += f" (α={fit.alpha:.2f}±{fit.stderr:.2f})"
                elif fit is not None:
                    label += f" (α={fit.alpha:.2f} from {fit.n} points, no s.e.)"
                colour = f"C{i % 10}"
                ax.errorbar(Ds, ts, yerr=[lo, hi], color=colour, marker="o", capsize=3, label=label)
                bad = [p for p in pts if p.unstable]
                if bad:
                    ax.plot([p.D for p in bad], [p.ms for p in bad], "o", mfc="white", mec=colour, ms=9)
                all_D += Ds
                all_t += ts
            if all_D:
                _reference_slopes(ax, all_D, all_t)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("D (parameters)")
            ax.set_ylabel("median time per call (ms)")
            ax.set_title(op)
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        devices = sorted({str(r["params"].get("device", "")) for r in recs})
        n_bad = sum(1 for r in recs if r.get("stats", {}).get("unstable") is True)
        note = f"; {n_bad} unstable case(s) shown hollow, left out of α" if n_bad else ""
        fig.suptitle(f"Projection time vs D ({', '.join(devices)}); bars: quartiles{note}")
        return fig


def _reference_slopes(ax: Any, Ds: list[int], ts: list[float]) -> None:
    """Dashed c·D and dotted c·D·log₂D through the geometric middle of the plotted points."""
    lo, hi = min(Ds), max(Ds)
    if hi <= lo:
        return
    xs = [lo, math.sqrt(lo * hi), hi]
    mid_D = math.sqrt(lo * hi)
    mid_t = math.exp(sum(math.log(t) for t in ts) / len(ts))
    ax.plot(xs, [mid_t * x / mid_D for x in xs], "k--", lw=0.8, alpha=0.6, label="O(D)")
    ax.plot(xs, [mid_t * x * math.log2(x) / (mid_D * math.log2(mid_D)) for x in xs], "k:", lw=1.0,
            alpha=0.6, label="O(D log D)")


@dataclass(frozen=True, order=True)
class _Point:
    D: int
    ms: float
    q1: float
    q3: float
    unstable: bool


@dataclass(frozen=True)
class ScalingFit:
    """α of time ∝ D^α with its standard error (NaN from 2 points), from ``n`` stable points
    (``excluded`` unstable ones left out)."""

    alpha: float
    stderr: float
    n: int
    excluded: int

    def __float__(self) -> float:
        return self.alpha


def _series(records: list[dict[str, Any]], op: str) -> dict[tuple[Any, ...], list[_Point]]:
    out: dict[tuple[Any, ...], list[_Point]] = defaultdict(list)
    for r in records:
        stats = r.get("stats")
        params = r.get("params")
        if not isinstance(stats, dict) or not isinstance(params, dict):
            continue
        t = stats.get(f"{op}_ms")
        if not isinstance(t, (int, float)) or not t > 0 or not math.isfinite(t):
            continue
        try:
            key = (r["projection"], int(params["d"]), int(params["batch"]), str(params.get("dtype")),
                   str(params.get("device")))
            D = int(params["D"])
        except (KeyError, TypeError, ValueError):
            continue
        q1 = stats.get(f"{op}_q1_ms", t)
        q3 = stats.get(f"{op}_q3_ms", t)
        unstable = stats.get(f"{op}_unstable") is True
        out[key].append(_Point(D, float(t), float(q1), float(q3), unstable))
    return out


def scaling_exponents(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], ScalingFit]:
    """α of time ∝ D^α (``scipy.stats.linregress`` of log t on log D) with its standard error,
    per (projection, d, batch, dtype, device, op), over **stable** points only; a series needs
    ≥ 2 distinct stable D (with exactly 2 the standard error is NaN: no residual to estimate it).
    ``records`` are speed-suite case dicts."""
    from scipy.stats import linregress

    out: dict[tuple[Any, ...], ScalingFit] = {}
    for op in OPS:
        for key, pts in _series(records, op).items():
            stable = [p for p in pts if not p.unstable]
            if len({p.D for p in stable}) < 2:
                continue
            x = [math.log(p.D) for p in stable]
            y = [math.log(p.ms) for p in stable]
            fit = linregress(x, y)
            se = float(fit.stderr) if len(stable) > 2 else math.nan
            out[(*key, op)] = ScalingFit(float(fit.slope), se, len(stable), len(pts) - len(stable))
    return out
