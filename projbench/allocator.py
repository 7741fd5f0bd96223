"""CPU allocator policy: keep freed memory in the process so large tensors do not page-fault anew.

Why. PyTorch's CPU allocator has no cache: every tensor is a ``posix_memalign`` and every free a
``free``. glibc's malloc serves a request above its mmap threshold (dynamic, at most 32 MiB on
64-bit) with a fresh ``mmap`` and returns it with ``munmap`` on free, and it gives the free top of
the heap back to the OS above its trim threshold. Such memory is faulted in page by page on first
touch, on *every* allocation. On this project's 2-core VM that costs about 0.6 ms per MiB:
writing a fresh 64 MiB tensor takes 39 ms, rewriting a reused one 2.3 ms. Every temporary of
length 2^24 (the FWHT of ResNet-18's D = 11.2 M, each padded copy, gather and product) pays it
on every call. Measured (``python -m benchmarks.bench_allocator``, ``results/``): with the
``retain`` policy below, Fastfood's forward at D = 11.2 M, d = 1000 drops from 170 to 99 ms.

Policies (``PROJBENCH_CPU_ALLOCATOR`` or the ``policy`` argument of :func:`tune_cpu_allocator`):

* ``retain`` — ``mallopt(M_MMAP_MAX, 0)``: no request is served by ``mmap`` (glibc still falls
  back to it when the heap cannot grow), and ``mallopt(M_TRIM_THRESHOLD, -1)``: the heap is
  never trimmed. Freed blocks go back to malloc's free lists and are reused, already resident.
  The price: the process's resident size does not shrink after a peak (as with PyTorch's CUDA
  caching allocator); a later, smaller phase reuses that memory instead of returning it. And
  it settles, not at once: ``posix_memalign`` pads each request, so a freed block fits the next
  request of the same size only after it has coalesced with a neighbour. Allocating and freeing
  one 64 MiB tensor in a loop held 2–8 such blocks (636–1020 MiB resident) before every further
  cycle ran fault-free with no growth (``tests/test_allocator.py`` checks the plateau); the
  Fastfood loops at D = 11.2 M settled after the first call.
* ``system`` — leave malloc as it is (what a plain ``import torch`` gets).

Scope. A library must not change process-wide malloc behaviour on import, so ``import projbench``
does not. The project's own processes do — the ``projbench`` commands, every worker that runs a
case (process pool and Ray workers included, :func:`projbench.case_executor.execute_case`) and the
benchmarks — and record the policy in every result file (:func:`allocator_info`). A Python user
opts in with ``projbench.tune_cpu_allocator()``. Linux with glibc only; elsewhere the call is a
no-op that says so in its result. Other allocators (jemalloc, tcmalloc via ``LD_PRELOAD``) cache
on their own and are left alone: the glibc calls then do not reach them.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from projbench.errors import InvalidArgumentError

#: environment variable choosing the policy of the project's own processes
POLICY_ENV = "PROJBENCH_CPU_ALLOCATOR"
POLICIES = ("retain", "system")
DEFAULT_POLICY = "retain"

# glibc <malloc.h> parameter numbers
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_state: dict[str, Any] = {"policy": "system", "applied": False, "reason": "malloc left as it is"}


def glibc_version() -> str | None:
    """The running glibc's version ("2.36"), or None under another C library / OS."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    if not value or not value.startswith("glibc "):
        return None
    return value.split(" ", 1)[1]


def _policy_from(policy: str | None) -> str:
    chosen = policy if policy is not None else (os.environ.get(POLICY_ENV, "").strip() or DEFAULT_POLICY)
    if chosen not in POLICIES:
        source = "policy" if policy is not None else f"${POLICY_ENV}"
        raise InvalidArgumentError(
            f"{source} must be one of {', '.join(POLICIES)}; got {chosen!r} "
            f"('retain' keeps freed memory for reuse, 'system' leaves malloc as it is)"
        )
    return chosen


def tune_cpu_allocator(policy: str | None = None) -> dict[str, Any]:
    """Apply the CPU allocator ``policy`` (default: ``$PROJBENCH_CPU_ALLOCATOR``, else ``retain``)
    to this process and return :func:`allocator_info`.

    Idempotent; ``system`` in a process never tuned changes nothing. ``system`` after ``retain``
    sets glibc's default limits again (65,536 mmaps, 128 KiB trim threshold; the mmap threshold
    then stays at 128 KiB instead of adapting); memory already kept stays with the process. Where
    glibc is absent the result has ``applied: False`` and the reason, and nothing changes.
    """
    chosen = _policy_from(policy)
    if chosen == _state["policy"]:  # already in force (``system``: never changed here)
        return allocator_info()
    version = glibc_version()
    if version is None:
        _state.update(policy="system", applied=False, reason="not glibc: malloc left as it is")
        return allocator_info()
    libc = ctypes.CDLL(None)
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if chosen == "retain":
        ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1
    else:  # glibc's documented defaults: 65536 mmaps, 128 KiB trim threshold
        ok = mallopt(_M_MMAP_MAX, 65536) == 1 and mallopt(_M_TRIM_THRESHOLD, 128 * 1024) == 1
    if not ok:
        _state.update(policy="system", applied=False, reason=f"glibc {version} refused mallopt")
    else:
        _state.update(policy=chosen, applied=True,
                      reason=None if chosen == "retain" else "glibc defaults set again")
    return allocator_info()


def allocator_info() -> dict[str, Any]:
    """What this process's CPU allocator does, for result files: ``policy`` (``retain`` only when
    applied here), ``applied``, ``libc`` and, when not applied, ``reason``."""
    info: dict[str, Any] = {"policy": _state["policy"], "applied": _state["applied"],
                            "libc": f"glibc {v}" if (v := glibc_version()) else "other"}
    if _state["reason"]:
        info["reason"] = _state["reason"]
    return info
