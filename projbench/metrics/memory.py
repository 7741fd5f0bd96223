"""The ``memory`` suite: bytes of projection state and peak memory of one forward + backward.

For each case (projection, D, d) the suite reports

* ``state_bytes`` — ``P.memory_bytes()`` (buffers/parameters; sparse tensors count indices and
  values), next to ``dense_bytes`` = D·d·element size, the size of the explicit matrix, and their
  ratio ``state_fraction``;
* ``peak_step_bytes`` — extra memory at the peak of one step ``out = P(θ); out.backward(g)``
  with θ ∈ R^{1×d} requiring grad and g ∈ R^{1×D}, measured after one untimed warm-up step
  (lazily built caches, e.g. Hadamard blocks, are not counted), beyond what was allocated
  before the step (state, θ, g). The method is in ``peak_method``:

  - ``torch_profiler`` (CPU, default; CUDA first choice): the ``[memory]`` allocation/free
    events of ``torch.profiler`` with ``profile_memory=True`` on the case's device, summed in
    time order; the peak of that running sum. Exact for every allocation through PyTorch's
    allocator (CUDA: the caching allocator), including temporaries inside ops; blind to memory
    that libraries allocate themselves (MKL/OpenBLAS packing buffers, cuBLAS workspaces, the
    Python heap). Starting the profiler costs ~2 s once per process. It leaves the process's
    CUDA peak counter (``torch.cuda.max_memory_allocated``) alone.
  - ``cuda_max_allocated_reset`` (CUDA, only when the profiler reports no CUDA allocation):
    ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus
    ``memory_allocated`` before. This **resets the process-wide CUDA peak counter** of the
    device (a caller's own peak statistics restart there); the peak before the reset is
    recorded in ``cuda_peak_before_bytes`` so a caller can combine the two.
  - ``rss_hwm`` (CPU, ``MemorySuite(cpu_method="rss")`` or when the profiler fails): the rise of
    the process's resident-set high-water mark (VmHWM of /proc/self/status, reset by writing 5
    to /proc/self/clear_refs) over the RSS before the step. It sees every allocator, but only
    pages newly made resident: memory that malloc reuses from earlier frees is invisible, so it
    can under-count small steps — and large ones under the ``retain`` malloc policy of the
    project's own processes (:mod:`projbench.allocator`), which keeps freed blocks of any size
    resident; page granularity (4 KiB); other threads count too.

  On the CPU ``rss_peak_delta_bytes`` (the RSS method) is reported alongside the profiler's
  number whenever /proc allows, as a cross-check.

A dense projection over its memory budget raises ``ResourceLimitError``: the case is
``skipped`` with that message. Grids: quick D ∈ {2¹², 2¹⁴, 2¹⁶}, d = 100; full
D ∈ {2¹⁶, …, 2²²}, d ∈ {10², 10³, 10⁴}.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from projbench.errors import InvalidArgumentError, ResourceLimitError
from projbench.metrics.timing import build_projection, device_unavailable
from projbench.suites import Case, CaseOutcome, RunSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

QUICK = {"D": (1 << 12, 1 << 14, 1 << 16), "d": (100,)}
FULL = {"D": tuple(1 << k for k in range(16, 23)), "d": (100, 1_000, 10_000)}
MiB = float(1 << 20)


@contextlib.contextmanager
def _quiet_native_output() -> Iterator[None]:
    """Silence what native code writes to file descriptors 1 and 2 (kineto prints
    ``profiler_start``/``profiler_stop`` lines from C++), without silencing Python.

    The descriptors point at /dev/null only for the duration; ``sys.stdout``/``sys.stderr``,
    when they write to those descriptors, are swapped for streams on duplicates of the
    original descriptors meanwhile, so a progress bar or log line drawn by Python (e.g. from
    rich's refresh thread) still reaches the terminal. Everything is restored on exit.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    saved: list[tuple[int, int]] = []
    swapped: list[tuple[str, Any, Any]] = []  # (sys attribute, original stream, replacement)
    try:
        for fd, attr in ((1, "stdout"), (2, "stderr")):
            stream = getattr(sys, attr)
            try:
                uses_fd = stream.fileno() == fd
            except Exception:  # noqa: BLE001 - captured/proxied streams without a descriptor
                uses_fd = False
            try:
                copy = os.dup(fd)
            except OSError:
                continue
            saved.append((fd, copy))
            if uses_fd:
                replacement = os.fdopen(os.dup(copy), "w", buffering=1,
                                        encoding=getattr(stream, "encoding", None) or "utf-8",
                                        errors="replace")
                swapped.append((attr, stream, replacement))
                setattr(sys, attr, replacement)
            os.dup2(devnull, fd)
        yield
    finally:
        for attr, original, replacement in swapped:
            with contextlib.suppress(Exception):
                replacement.flush()
            if getattr(sys, attr) is replacement:
                setattr(sys, attr, original)
            with contextlib.suppress(Exception):
                replacement.close()
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def peak_profiler(step: Callable[[], Any], device: torch.device | str = "cpu") -> int:
    """Peak of the running sum of allocations minus frees (bytes) on ``device`` during ``step()``,
    from the ``[memory]`` events of ``torch.profiler``. Raises LookupError when the profiler
    recorded no allocation on that device (nothing to measure, or not supported there)."""
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device)
    dev_type = torch.autograd.DeviceType.CUDA if dev.type == "cuda" else torch.autograd.DeviceType.CPU
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with _quiet_native_output(), profile(activities=activities, profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events()  # type: ignore[union-attr]
              if e.name() == "[memory]" and e.device_type() == dev_type
              and (dev.type != "cuda" or dev.index is None or e.device_index() == dev.index)]
    if not events:
        raise LookupError(f"the profiler recorded no allocation on {dev}")
    current = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def peak_cpu_profiler(step: Callable[[], Any]) -> int:
    """Peak of the running sum of CPU allocations minus frees (bytes) during ``step()``."""
    try:
        return peak_profiler(step, "cpu")
    except LookupError:
        return 0


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def peak_cpu_rss(step: Callable[[], Any]) -> int:
    """Rise of the resident-set high-water mark over the RSS before ``step()`` (bytes).

    Raises OSError where /proc/self/clear_refs cannot reset the mark (non-Linux, restricted)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_kib("VmRSS")
    step()
    return max(0, _status_kib("VmHWM") - before)


def measure_step_memory(
    P: Any, *, seed: int = 0, batch: int = 1, cpu_method: str = "profiler"
) -> dict[str, Any]:
    """Peak extra memory of one forward+backward of P (see the module docstring)."""
    device, dtype = P.device, P.dtype
    g = torch.Generator().manual_seed(seed + 202)
    theta = torch.randn(batch, P.d, generator=g).to(device, dtype)
    grad_out = torch.randn(batch, P.D, generator=g).to(device, dtype)

    def step() -> None:
        t = theta.detach().requires_grad_(True)
        P(t).backward(grad_out)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up: caches and lazy initialisation are not part of the step
    out: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        try:
            out["peak_step_bytes"] = peak_profiler(step, device)
            out["peak_method"] = "torch_profiler"
            return out
        except Exception as exc:  # noqa: BLE001 - no CUDA memory events: fall back, documented
            out["profiler_error"] = f"{type(exc).__name__}: {exc}"
        base = torch.cuda.memory_allocated(device)
        out["cuda_peak_before_bytes"] = int(torch.cuda.max_memory_allocated(device))
        torch.cuda.reset_peak_memory_stats(device)  # process-wide: see the module docstring
        step()
        out["peak_step_bytes"] = int(torch.cuda.max_memory_allocated(device) - base)
        out["peak_method"] = "cuda_max_allocated_reset"
        return out
    rss: int | None
    try:
        rss = peak_cpu_rss(step)
    except OSError:
        rss = None
    if rss is not None:
        out["rss_peak_delta_bytes"] = rss
    if cpu_method == "profiler":
        try:
            out["peak_step_bytes"] = peak_cpu_profiler(step)
            out["peak_method"] = "torch_profiler"
            return out
        except Exception as exc:  # noqa: BLE001 - profiler internals vary across torch versions
            out["profiler_error"] = f"{type(exc).__name__}: {exc}"
    if rss is None:
        raise InvalidArgumentError(
            "cannot measure CPU peak memory here: the torch profiler failed and "
            "/proc/self/clear_refs is not writable"
        )
    out["peak_step_bytes"] = rss
    out["peak_method"] = "rss_hwm"
    return out


class MemorySuite:
    """State bytes and peak step memory per projection over (D, d)."""

    name: ClassVar[str] = "memory"
    description: ClassVar[str] = (
        "bytes of projection state vs the dense D×d matrix, and peak extra memory of one "
        "forward+backward (CUDA allocator peak; CPU torch-profiler allocation peak)"
    )
    # D and d are in the case params (shown by the report)
    table_columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("state MiB", "state_MiB"),
        ("dense MiB", "dense_MiB"),
        ("state/dense", "state_fraction"),
        ("step peak MiB", "peak_step_MiB"),
        ("method", "peak_method"),
    )

    def __init__(self, grid: dict[str, tuple[int, ...]] | None = None, cpu_method: str = "profiler") -> None:
        if cpu_method not in ("profiler", "rss"):
            raise InvalidArgumentError(f"cpu_method must be 'profiler' or 'rss', got {cpu_method!r}")
        self.grid = grid
        self.cpu_method = cpu_method

    def cases(self, projections: list[str], settings: RunSettings) -> list[Case]:
        grid = self.grid or (QUICK if settings.quick else FULL)
        return [
            Case(self.name, proj, {"D": D, "d": d, "dtype": settings.dtype, "device": settings.device})
            for proj in projections
            for d in grid["d"]
            for D in grid["D"]
        ]

    def run_case(self, case: Case, settings: RunSettings) -> CaseOutcome:
        p = case.params
        D, d = int(p["D"]), int(p["d"])
        device = str(p.get("device", settings.device))
        dtype = RunSettings(dtype=str(p.get("dtype", settings.dtype))).torch_dtype
        reason = device_unavailable(device)
        if reason:
            return CaseOutcome(stats={}, status="skipped", error=reason)
        elem = torch.tensor([], dtype=dtype).element_size()
        dense = D * d * elem
        base_stats: dict[str, Any] = {"D": D, "d": d, "dense_bytes": dense, "dense_MiB": dense / MiB}
        try:
            P = build_projection(case.projection, d, D, seed=settings.seed, device=device, dtype=dtype,
                                 options=settings.options)
        except ResourceLimitError as exc:
            return CaseOutcome(stats=base_stats, status="skipped", error=str(exc))
        state = int(P.memory_bytes())
        stats = {**base_stats, "state_bytes": state, "state_MiB": state / MiB,
                 "state_fraction": state / dense, "state_bytes_per_param": state / D}
        mem = measure_step_memory(P, seed=settings.seed, cpu_method=self.cpu_method)
        stats.update(mem)
        stats["peak_step_MiB"] = mem["peak_step_bytes"] / MiB
        stats["peak_step_per_param"] = mem["peak_step_bytes"] / D
        memory = {"state_bytes": state, "peak_step_bytes": mem["peak_step_bytes"],
                  "method": mem["peak_method"]}
        return CaseOutcome(stats=stats, memory=memory)

    def figure(self, records: list[dict[str, Any]]) -> Figure | None:
        """State bytes (solid) and peak step bytes (dashed) vs D, log-log, per projection and d;
        the dense D·d matrix as a dotted reference."""
        from matplotlib.figure import Figure

        recs = [r for r in records if r.get("suite", self.name) == self.name and r.get("status") == "ok"]
        if not recs:
            return None
        series: dict[tuple[str, int], list[tuple[int, float, float]]] = defaultdict(list)
        dense: dict[int, set[tuple[int, float]]] = defaultdict(set)
        for r in recs:
            s, p = r.get("stats", {}), r["params"]
            if "state_bytes" not in s:
                continue
            series[(r["projection"], int(p["d"]))].append(
                (int(p["D"]), float(s["state_bytes"]), float(s.get("peak_step_bytes", float("nan")))))
            dense[int(p["d"])].add((int(p["D"]), float(s["dense_bytes"])))
        fig = Figure(figsize=(7.5, 5), layout="constrained")
        ax = fig.subplots()
        for i, ((proj, d), pts) in enumerate(sorted(series.items())):
            pts.sort()
            color = f"C{i % 10}"
            Ds = [x[0] for x in pts]
            ax.plot(Ds, [max(x[1], 1.0) for x in pts], marker="o", color=color, label=f"{proj} d={d} state")
            ax.plot(Ds, [max(x[2], 1.0) for x in pts], ls="--", marker="x", color=color,
                    label=f"{proj} d={d} step peak")
        for d, pts_set in sorted(dense.items()):
            ref = sorted(pts_set)
            ax.plot([x[0] for x in ref], [x[1] for x in ref], ls=":", color="gray", label=f"dense D×d, d={d}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("D (parameters)")
        ax.set_ylabel("bytes")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title("Projection state and peak step memory vs D")
        return fig
