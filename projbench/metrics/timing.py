"""Timing (adaptive, CUDA-synchronised, warmed up), stability flag, and helpers of the suites.

:func:`time_callable` is the one timing routine of the speed suite and the benchmarks. It is
built on :mod:`torch.utils.benchmark`: after ``warmup`` untimed calls,
the number of back-to-back calls per *sample* is calibrated (pyperf-style) so that a sample
lasts at least ``min_sample_s`` — well above the clock's resolution and the loop overhead —
and each sample is one ``torch.utils.benchmark.Timer.timeit`` block divided by its number of
calls. Samples are taken until both ``repeats`` samples and ``min_run_time`` seconds are in
(``max_total_s`` caps slow calls). On CUDA the timer synchronises the timed device before each
clock reading, so a sample covers the kernels and not just their launch.

**Stability.** The spread of the samples is their inter-quartile range relative to the
median, ``rel_iqr = (q3 − q1) / median``. A timing with ``rel_iqr >`` :data:`UNSTABLE_REL_IQR`
(0.25, torch.utils.benchmark's threshold for "significant environmental influence") or with
fewer than 3 samples is ``unstable``: other processes disturbed it too much to trust, and
it must not enter a scaling fit. The raw samples are kept so a reader can judge.

With ``setup`` (a callable run before every call, untimed; its return value is passed to
``fn``) each sample is one call timed with ``time.perf_counter`` (torch's Timer cannot run
untimed code between calls).

**Machine load.** A narrow spread does not prove a quiet machine: other processes can slow
every sample alike. :func:`measure_load` reads the load average (``os.getloadavg``: the
number of threads running or waiting for a CPU, averaged over 1, 5 and 15 minutes) before
and after a measurement, and :func:`load_stats` flags the measurement ``loaded`` when the
1-minute load per CPU, at either reading, is above :data:`MAX_LOAD_PER_CPU` (1.0: more
threads wanted a CPU than there are CPUs, so some waited while the clock ran; the
``PROJBENCH_MAX_LOAD_PER_CPU`` environment variable sets another limit). The 1-minute
average lags: a load that began seconds ago is not fully counted yet.

A suite whose numbers are times declares ``timing = True``; :func:`is_timing_suite` tells the
executors, which never run two of its cases at once.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from projbench.errors import InvalidArgumentError

#: relative IQR above which a timing is flagged ``unstable``
UNSTABLE_REL_IQR = 0.25
#: fewer samples than this cannot show their spread: also ``unstable``
MIN_STABLE_SAMPLES = 3
#: 1-minute load average per CPU above which a measurement is flagged ``loaded`` (unstable)
MAX_LOAD_PER_CPU = 1.0
#: environment variable that overrides :data:`MAX_LOAD_PER_CPU`
MAX_LOAD_ENV = "PROJBENCH_MAX_LOAD_PER_CPU"


@dataclass
class TimingResult:
    """Per-call times in seconds: ``samples`` (each a block's mean per call), their median,
    quartiles, inter-quartile range, relative IQR and the ``unstable`` flag."""

    samples: list[float]
    inner: int
    warmup: int
    median: float = field(init=False)
    q1: float = field(init=False)
    q3: float = field(init=False)
    iqr: float = field(init=False)
    rel_iqr: float = field(init=False)
    unstable: bool = field(init=False)

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
        self.rel_iqr = self.iqr / self.median if self.median > 0 else float("inf")
        self.unstable = is_unstable(self.rel_iqr, len(s))

    @property
    def repeats(self) -> int:
        return len(self.samples)

    def as_dict(self, prefix: str = "") -> dict[str, float | int | bool]:
        return {
            f"{prefix}median_s": self.median,
            f"{prefix}iqr_s": self.iqr,
            f"{prefix}q1_s": self.q1,
            f"{prefix}q3_s": self.q3,
            f"{prefix}rel_iqr": self.rel_iqr,
            f"{prefix}unstable": self.unstable,
            f"{prefix}repeats": self.repeats,
            f"{prefix}inner": self.inner,
        }


def is_unstable(rel_iqr: float, n_samples: int, threshold: float = UNSTABLE_REL_IQR) -> bool:
    """A timing cannot be trusted: spread (IQR/median) above ``threshold`` or too few samples."""
    return n_samples < MIN_STABLE_SAMPLES or not rel_iqr <= threshold


def count_unstable(records: Iterable[Mapping[str, Any]]) -> int:
    """How many case records (dicts with ``stats``) are flagged ``unstable``; the runner says so
    at the end of a run."""
    n = 0
    for r in records:
        stats = r.get("stats") if isinstance(r, Mapping) else None
        if isinstance(stats, Mapping) and stats.get("unstable") is True:
            n += 1
    return n


def count_loaded(records: Iterable[Mapping[str, Any]]) -> int:
    """How many case records were measured on a loaded machine (``stats.loaded`` is true)."""
    return sum(1 for r in records if isinstance(r.get("stats"), Mapping) and r["stats"].get("loaded") is True)


def is_timing_suite(name: str) -> bool:
    """Whether the registered suite ``name`` measures time (declares ``timing = True``)."""
    from projbench.errors import UnknownNameError
    from projbench.manager import get_registry

    try:
        suite = get_registry("suites").get(name)
    except UnknownNameError:
        return False
    return getattr(suite, "timing", False) is True


def measure_load() -> list[float] | None:
    """The 1, 5 and 15-minute load averages now (``os.getloadavg``), None where unknown."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def max_load_per_cpu() -> float:
    """The load limit per CPU: :data:`MAX_LOAD_ENV` when set (a number >= 0), else the default."""
    raw = os.environ.get(MAX_LOAD_ENV, "").strip()
    if not raw:
        return MAX_LOAD_PER_CPU
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise InvalidArgumentError(f"{MAX_LOAD_ENV} must be a number >= 0, got {raw!r}")
    return value


def load_stats(before: list[float] | None, after: list[float] | None,
               limit: float | None = None) -> dict[str, Any]:
    """What the machine's load was while a measurement ran, for the case's stats.

    ``load_avg_start``/``load_avg_end``: load averages (1, 5, 15 min) before and after;
    ``cpu_count``; ``load_per_cpu``: the larger 1-minute reading divided by the CPUs;
    ``load_limit_per_cpu`` and ``loaded`` (``load_per_cpu`` above it). Unknown load: not loaded.
    """
    limit = max_load_per_cpu() if limit is None else limit
    cpus = os.cpu_count() or 1
    readings = [r[0] for r in (before, after) if r]
    per_cpu = max(readings) / cpus if readings else None
    return {"load_avg_start": before, "load_avg_end": after, "cpu_count": cpus,
            "load_per_cpu": None if per_cpu is None else round(per_cpu, 3),
            "load_limit_per_cpu": limit, "loaded": per_cpu is not None and per_cpu > limit}


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
    min_run_time: float = 0.2,
    min_sample_s: float = 1e-3,
    max_total_s: float | None = None,
    max_repeats: int = 1000,
    max_inner: int = 100_000,
    threads: int | None = None,
    **legacy: Any,
) -> TimingResult:
    """Time ``fn()`` (or ``fn(setup())``) on ``device``; see the module docstring.

    ``warmup`` untimed calls come first (allocator, kernel selection, lazy init). Then the
    number of calls per sample (``inner``) is calibrated so that a sample lasts at least
    ``min_sample_s`` (pyperf-style: far above the clock's resolution and the loop overhead).
    Samples are taken until both ``repeats`` samples and ``min_run_time`` seconds are reached,
    at most ``max_repeats`` samples; ``max_total_s`` stops sampling early once at least 3 (or
    ``repeats`` if fewer) samples are in. ``threads``: torch threads while timing (default:
    the current number). ``min_total_s`` of the former API is accepted as ``min_run_time``.
    Returns per-call seconds; every sample is > 0.
    """
    min_run_time = _checked_min_run_time(legacy, repeats, warmup, max_repeats, min_run_time)
    if setup is not None:
        for _ in range(warmup):
            fn(setup())
        synchronize(device)
        take, inner = _one_call_timer(fn, setup, device), 1
    else:
        for _ in range(warmup):
            fn()
        synchronize(device)
        block = _block_timer(fn, device, threads)
        inner = _calibrate_inner(block, min_sample_s, max_inner)
        take = functools.partial(block, inner)
    samples = _take_samples(take, repeats=repeats, min_run_time=min_run_time, max_total_s=max_total_s,
                            max_repeats=max_repeats)
    return TimingResult(samples=samples, inner=inner, warmup=warmup)


def _checked_min_run_time(legacy: dict[str, Any], repeats: int, warmup: int, max_repeats: int,
                          min_run_time: float) -> float:
    """``min_run_time`` once :func:`time_callable`'s options are checked (one line when not);
    ``min_total_s`` of the former API, the only legacy option, replaces it."""
    unknown = set(legacy) - {"min_total_s"}
    if unknown:
        raise InvalidArgumentError(f"time_callable got unknown option(s) {sorted(unknown)}")
    if repeats < 1 or warmup < 0 or max_repeats < repeats or not min_run_time >= 0:
        raise InvalidArgumentError(
            f"need repeats >= 1, warmup >= 0, max_repeats >= repeats and min_run_time >= 0; got "
            f"repeats={repeats}, warmup={warmup}, max_repeats={max_repeats}, min_run_time={min_run_time}"
        )
    if legacy.get("min_total_s") is not None:
        return float(legacy["min_total_s"])
    return min_run_time


def _one_call_timer(fn: Callable[..., Any], setup: Callable[[], Any],
                    device: torch.device | str | None) -> Callable[[], float]:
    """One sample with ``setup``: ``fn(setup())`` with only the call timed (``time.perf_counter``,
    ``device`` synchronised before and after it)."""

    def take() -> float:
        arg = setup()
        synchronize(device)
        t0 = time.perf_counter()
        fn(arg)
        synchronize(device)
        return max(time.perf_counter() - t0, 1e-12)

    return take


def _block_timer(fn: Callable[[], Any], device: torch.device | str | None,
                 threads: int | None) -> Callable[[int], float]:
    """``block(number)``: per-call seconds of one block of ``number`` back-to-back calls of
    ``fn()``, a ``torch.utils.benchmark.Timer.timeit`` with ``threads`` torch threads (default:
    the current number) and ``device`` synchronised around it."""
    from torch.utils.benchmark import Timer

    dev = torch.device(device) if device is not None else torch.device("cpu")

    def synced_clock() -> float:
        """perf_counter after the timed device's queue is drained (torch's default timer
        synchronises every accelerator on each reading, which costs ~50 ms on a CPU-only box)."""
        synchronize(dev)
        return time.perf_counter()

    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads or torch.get_num_threads(),
                  timer=synced_clock if dev.type != "cpu" else time.perf_counter)

    def block(number: int) -> float:
        synchronize(device)
        return max(float(timer.timeit(number).raw_times[0]) / number, 1e-12)

    return block


def _calibrate_inner(block: Callable[[int], float], min_sample_s: float, max_inner: int) -> int:
    """Calls per sample (pyperf-style): grown from 1 (at least doubled, else scaled from the
    last block's per-call time, with 20 % to spare) until a block lasts ``min_sample_s``, at
    most ``max_inner``."""
    inner = 1
    per_call = block(1)
    while per_call * inner < min_sample_s and inner < max_inner:
        inner = min(max_inner, max(2 * inner, int(1.2 * min_sample_s / max(per_call, 1e-9))))
        per_call = block(inner)
    return inner


def _take_samples(take: Callable[[], float], *, repeats: int, min_run_time: float,
                  max_total_s: float | None, max_repeats: int) -> list[float]:
    """``take()`` (one sample: seconds per call) repeated until both ``repeats`` samples and
    ``min_run_time`` seconds are in, or ``max_repeats`` samples are, or ``max_total_s`` seconds
    have passed once :data:`MIN_STABLE_SAMPLES` (or ``repeats`` if fewer) samples are in."""
    floor = min(MIN_STABLE_SAMPLES, repeats)
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        n, elapsed = len(samples), time.perf_counter() - start
        if n >= max_repeats or (max_total_s is not None and n >= floor and elapsed > max_total_s):
            return samples
        if n >= repeats and elapsed >= min_run_time:
            return samples
        samples.append(take())


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
        return f"device {device!r} requested but CUDA is not available here"
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
