"""Benchmarks run by ``make bench``: ``python -m benchmarks.bench_fwht`` and
``python -m benchmarks.bench_projections``.

Each writes ``results/<name>_<device>[_<tag>].json`` (machine info + every measurement) and
``results/<name>_<device>.md`` (a Markdown table to paste into the README). This module holds
what both share: machine information and the writers.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from projbench.allocator import allocator_info, tune_cpu_allocator


def apply_process_settings() -> None:
    """Process-wide settings of a benchmark run as a program (``python -m benchmarks.X``):
    the same malloc policy as the ``projbench`` commands (``$PROJBENCH_CPU_ALLOCATOR``, default
    "retain"; :mod:`projbench.allocator`). Called from each benchmark's ``__main__`` block
    only, so importing a benchmark (the tests do) leaves the importing process as it was."""
    tune_cpu_allocator()

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """HEAD of the repository the benchmarks live in, with ``+dirty`` if the tree has changes;
    None outside a repository or before the first commit."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never refresh the index
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=True, env=env).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True,
                               env=env).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine_info(device: str) -> dict[str, Any]:
    """Where and with what a benchmark ran (recorded in every results file)."""
    import projbench

    info: dict[str, Any] = {
        "cpu_allocator": allocator_info()["policy"],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "projbench": projbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        #: 1, 5 and 15-minute load averages when the results were written (None off Unix)
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update({"gpu": props.name, "gpu_memory_GiB": round(props.total_memory / 2**30, 1),
                     "cuda": torch.version.cuda})
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One Markdown line summarising ``machine_info``."""
    where = info.get("gpu") or info["cpu"]
    load = info.get("load_avg")
    load_text = f"load average {'/'.join(f'{x:.2f}' for x in load)}, " if load else ""
    return (f"Machine: {where} ({info['device']}), {info['torch_threads']} torch threads of "
            f"{info['cpu_count']} CPUs; torch {info['torch']}, projbench {info['projbench']}, "
            f"malloc policy {info.get('cpu_allocator', 'system')}, {load_text}"
            f"commit {info['git_commit'] or 'n/a'}, {info['date']}.")


def write_results(name: str, device: str, payload: dict[str, Any], markdown: str,
                  out_dir: Path | str | None = None, tag: str | None = None) -> tuple[Path, Path]:
    """Write ``<name>_<device>[_<tag>].json`` and ``.md`` under ``out_dir`` (default results/)."""
    out = Path(out_dir) if out_dir is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    suffix = torch.device(device).type + (f"_{tag}" if tag else "")
    json_path = out / f"{name}_{suffix}.json"
    md_path = out / f"{name}_{suffix}.md"
    json_path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float | None, digits: int = 3) -> str:
    """Compact number for tables (— for missing)."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 0.01:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"
