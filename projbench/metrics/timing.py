"""Timing (CUDA-synchronised, warm-up, repeats, median, IQR) and helpers shared by the suites.

:func:`time_callable` is the one timing routine of the speed suite and the benchmarks. One
*sample* is the mean time of ``inner`` back-to-back calls; ``inner`` is chosen once (after
warm-up) so that a sample lasts at least ``min_sample_s``, which keeps the timer's resolution
and Python overhead out of fast operations. Samples are taken until both ``repeats`` samples
and ``min_total_s`` seconds are reached (at most ``max_repeats``). On CUDA the device is
synchronised before the clock starts and before it stops, so the time covers the kernels,
not just their launch.

With ``setup`` (a callable run before every call, untimed; its return value is passed to
``fn``) ``inner`` is 1: this times e.g. a backward pass without the forward that builds its graph.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from projbench.errors import InvalidArgumentError


@dataclass
class TimingResult:
    """Per-call times in seconds: ``samples`` (each the mean of ``inner`` calls), their median,
    first and third quartiles and inter-quartile range."""

    samples: list[float]
    inner: int
    warmup: int
    median: float = field(init=False)
    q1: float = field(init=False)
    q3: float = field(init=False)
    iqr: float = field(init=False)

    def __post_init__(self) -> None:
        if not self.samples:
            raise InvalidArgumentError("a TimingResult needs at least one sample")
        s = sorted(self.samples)
        self.median = statistics.median(s)
        if len(s) >= 2:
            q = statistics.quantiles(s, n=4, method="inclusive")
            self.q1, self.q3 = q[0], q[2]
        else:
            self.q1 = self.q3 = s[0]
        self.iqr = self.q3 - self.q1

    @property
    def repeats(self) -> int:
        return len(self.samples)

    def as_dict(self, prefix: str = "") -> dict[str, float | int]:
        return {
            f"{prefix}median_s": self.median,
            f"{prefix}iqr_s": self.iqr,
            f"{prefix}q1_s": self.q1,
            f"{prefix}q3_s": self.q3,
            f"{prefix}repeats": self.repeats,
            f"{prefix}inner": self.inner,
        }


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued kernels on ``device`` (no-op on the CPU)."""
    if device is None:
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_callable(
    fn: Callable[..., Any],
    *,
    setup: Callable[[], Any] | None = None,
    device: torch.device | str | None = "cpu",
    warmup: int = 2,
    repeats: int = 7,
    min_sample_s: float = 1e-3,
    min_total_s: float = 0.0,
    max_repeats: int = 200,
    max_inner: int = 10_000,
    max_total_s: float | None = None,
) -> TimingResult:
    """Time ``fn()`` (or ``fn(setup())``) on ``device``; see the module docstring.

    ``warmup`` untimed calls come first (allocator, kernel selection, lazy init).
    ``max_total_s`` caps the sampling time for slow calls: sampling stops once it is exceeded
    and at least 3 samples (or ``repeats`` if fewer) are in.
    Returns per-call seconds; every sample is > 0.
    """
    if repeats < 1 or warmup < 0 or max_repeats < repeats:
        raise InvalidArgumentError(
            f"need repeats >= 1, warmup >= 0 and max_repeats >= repeats; got repeats={repeats}, "
            f"warmup={warmup}, max_repeats={max_repeats}"
        )
    clock = time.perf_counter

    def one(inner: int) -> float:
        if setup is not None:
            arg = setup()
            synchronize(device)
            t0 = clock()
            fn(arg)
        else:
            synchronize(device)
            t0 = clock()
            for _ in range(inner):
                fn()
        synchronize(device)
        return (clock() - t0) / inner

    for _ in range(warmup):
        one(1)
    inner = 1
    if setup is None:
        first = one(1)
        if first < min_sample_s:
            inner = max(1, min(max_inner, int(min_sample_s / max(first, 1e-9)) + 1))
    samples: list[float] = []
    start = clock()
    floor = min(3, repeats)
    while len(samples) < repeats or (clock() - start < min_total_s and len(samples) < max_repeats):
        samples.append(max(one(inner), 1e-12))
        if max_total_s is not None and len(samples) >= floor and clock() - start > max_total_s:
            break
    return TimingResult(samples=samples, inner=inner, warmup=warmup)


# --------------------------------------------------------------------------------------------
# Helpers shared by the distortion, speed and memory suites
# --------------------------------------------------------------------------------------------
def build_projection(
    name: str, d: int, D: int, *, seed: int, device: str, dtype: torch.dtype, options: dict[str, Any]
) -> Any:
    """``make_projection(name, d, D, ...)`` with only the ``options`` that projection accepts.

    ``RunSettings.options`` are meant for every projection that takes them, so options of other
    projections are dropped here rather than raising.
    """
    from projbench.manager import get_registry
    from projbench.projection import make_projection

    cls = get_registry("projections").get(name)
    accepted = set(cls.option_names())
    own = {k: v for k, v in options.items() if k in accepted}
    return make_projection(name, d, D, seed=seed, device=device, dtype=dtype, **own)


def device_unavailable(device: str) -> str | None:
    """Why ``device`` cannot be used here (for a ``skipped`` outcome), or None when it can."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        return f"device {device!r} requested but CUDA is not available on this machine"
    return None


def available_memory_bytes(device: str) -> int:
    """Free memory of ``device``: CUDA free bytes, or MemAvailable of /proc/meminfo on the CPU
    (8 GiB assumed when neither can be read)."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30
