"""Study executors side by side: the ``smoke`` preset inline (``--jobs 1``), on a 2-process pool
(``--jobs 2``) and on a real local Ray (``num_cpus=2``), interleaved and repeated.

Each repeat runs the three contenders in turn (rotating the order) into fresh folders and
records the wall time of :func:`projbench.study.run_study` (process/Ray start-up included:
that is what a user waits for) and the engine's driver overhead per run (driver time outside
waiting for workers and outside inline training, divided by the runs trained). It also
checks that all three gave the same d_int90 values. Prints and writes
``results/bench_study_cpu.{json,md}``: medians with min–max, and the ratios
jobs1/jobs2 (goal ≥ 1.7 on 2 cores) and ray/jobs2 (goal ≤ 1.3).

    python -m benchmarks.bench_study [--repeats 3] [--preset smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import machine_info, machine_line, md_table, write_results


def _one(kind: str, preset: str, folder: Path) -> dict[str, Any]:
    from projbench.executors import InlinePool, ProcessPool
    from projbench.ray_pool import RayPool
    from projbench.study.driver import run_study
    from projbench.study.spec_files import load_spec

    spec = load_spec(preset)
    start = time.perf_counter()
    if kind == "jobs1":
        pool: Any = InlinePool()
    elif kind == "jobs2":
        pool = ProcessPool(2)
    else:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        pool = RayPool()
    try:
        out = run_study(spec, folder, pool=pool)
    finally:
        pool.close()
        if kind == "ray":
            import ray

            ray.shutdown()
    wall = time.perf_counter() - start
    values = [(r["architecture"], r["projection"], r["per_seed"]) for r in out.rows]
    return {
        "wall_s": wall,
        "runs": out.trained,
        "overhead_ms": 1e3 * (out.engine.driver_overhead_per_run_s or 0),
        "values": repr(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="smoke", help="a preset name or a study TOML file")
    parser.add_argument("--tag", default=None, help="suffix of the results files (bench_study_cpu_<tag>)")
    args = parser.parse_args()
    try:
        import ray  # noqa: F401

        kinds = ["jobs1", "jobs2", "ray"]
    except ImportError:
        kinds = ["jobs1", "jobs2"]
        print("ray is not installed: pip install 'projbench[ray]' to include it")
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
            for kind in order:
                res = _one(kind, args.preset, Path(tmp) / f"{kind}-{rep}")
                samples[kind].append(res)
                print(
                    f"repeat {rep} {kind}: {res['wall_s']:.1f} s, {res['runs']} runs, "
                    f"driver overhead {res['overhead_ms']:.1f} ms/run",
                    flush=True,
                )
    same = len({s["values"] for k in kinds for s in samples[k]}) == 1
    med = {k: statistics.median(s["wall_s"] for s in samples[k]) for k in kinds}
    rows = [
        [
            k,
            f"{med[k]:.1f}",
            f"{min(s['wall_s'] for s in samples[k]):.1f}–{max(s['wall_s'] for s in samples[k]):.1f}",
            samples[k][0]["runs"],
            f"{statistics.median(s['overhead_ms'] for s in samples[k]):.1f}",
        ]
        for k in kinds
    ]
    ratios = {"jobs1_over_jobs2": med["jobs1"] / med["jobs2"]}
    if "ray" in med:
        ratios["ray_over_jobs2"] = med["ray"] / med["jobs2"]
    info = machine_info("cpu")
    cpus = os.cpu_count() or 1
    busy = max(load_before[0], info["load_avg"][0]) / cpus > 1.0
    md = (
        f"Study executors, preset `{args.preset}`, {args.repeats} interleaved repeats; "
        f"{machine_line(info)} Load average before: {'/'.join(f'{x:.2f}' for x in load_before)}"
        + (" (the machine was busy: these ratios are not trustworthy)" if busy else "") + "\n\n"
        + md_table(["executor", "median wall s", "min–max", "runs", "driver overhead ms/run"], rows)
        + "\n"
        + "; ".join(f"{k} = {v:.2f}" for k, v in ratios.items())
        + f"; identical d_int90 values across executors and repeats: {'yes' if same else 'NO'}\n"
    )
    print(md)
    write_results(
        "bench_study",
        "cpu",
        {
            "machine": info,
            "preset": args.preset,
            "samples": samples,
            "medians_s": med,
            "ratios": ratios,
            "identical_values": same,
            "load_avg_before": load_before,
            "busy": busy,
        },
        md,
        tag=args.tag,
    )


if __name__ == "__main__":
    from benchmarks import apply_process_settings

    apply_process_settings()
    main()
