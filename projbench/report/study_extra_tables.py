"""The tables printed beside a study's d_int90 table: how d_int90 spreads across the study's
variants (robustness), and where training becomes unstable as d grows (stability).

Each is a list of plain dict rows with its (header, key) columns, drawn by
:func:`projbench.report.study.simple_table`. Robustness per (architecture, dataset,
projection): the variants with a d_int90, min, max, max/min and the coefficient of variation
CV = std/mean over variants (ddof = 1). Stability per (pair, variant, projection): the smallest
d from which every larger evaluated d is unstable, a d being unstable when a seed diverged or
the mean number of loss spikes is ≥ 1.
"""

from __future__ import annotations

from typing import Any

ROBUSTNESS_COLUMNS = [
    ("architecture", "architecture"),
    ("dataset", "dataset"),
    ("projection", "projection"),
    ("variants", "variants"),
    ("with d_int90", "with_d_int90"),
    ("min", "min"),
    ("max", "max"),
    ("max/min", "max_over_min"),
    ("CV", "cv"),
    ("smallest at", "argmin"),
    ("largest at", "argmax"),
]
STABILITY_COLUMNS = [
    ("architecture", "architecture"),
    ("dataset", "dataset"),
    ("projection", "projection"),
    ("d", "d"),
    ("seeds", "seeds"),
    ("diverged", "diverged"),
    ("loss spikes (mean)", "loss_spikes_mean"),
    ("max loss jump", "max_loss_jump"),
    ("cond(P·E_S)", "cond_P_sample"),
    ("accuracy", "accuracy_mean"),
]
STABILITY_SUMMARY_COLUMNS = [
    ("architecture", "architecture"),
    ("dataset", "dataset"),
    ("projection", "projection"),
    ("unstable from d", "unstable_from_d"),
    ("d evaluated", "d_evaluated"),
    ("divergence rate", "divergence_rate"),
    ("largest cond", "max_cond"),
]


def robustness_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spread of d_int90 over the variants (axes) of a study, per (architecture, dataset,
    projection): the number of variants with a d_int90, min, max, max/min and the coefficient
    of variation (std/mean over variants, ddof = 1)."""
    from projbench.search import SpreadStats

    out = []
    keys = list(dict.fromkeys((r["architecture"], r["dataset"], r["projection"]) for r in rows))
    for key in keys:
        group = [r for r in rows if (r["architecture"], r["dataset"], r["projection"]) == key]
        if len(group) < 2:
            continue
        st = SpreadStats.of(r["d_int90_mean"] for r in group)
        out.append(
            {
                "architecture": key[0],
                "dataset": key[1],
                "projection": key[2],
                "variants": len(group),
                "with_d_int90": st.n,
                "min": st.minimum,
                "max": st.maximum,
                "max_over_min": (st.maximum / st.minimum) if st.minimum and st.maximum is not None else None,
                "cv": st.cv,
                "argmin": next((r["variant"] for r in group if r["d_int90_mean"] == st.minimum), None),
                "argmax": next((r["variant"] for r in group if r["d_int90_mean"] == st.maximum), None),
            }
        )
    return out


def stability_summary(srows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (pair, variant, projection): the smallest d from which every larger evaluated d is
    unstable (a seed diverged or the mean number of loss spikes is ≥ 1), or None if stable."""
    out = []
    keys = list(
        dict.fromkeys((r["architecture"], r["dataset"], r["variant"], r["projection"]) for r in srows)
    )
    for key in keys:
        pts = [r for r in srows if (r["architecture"], r["dataset"], r["variant"], r["projection"]) == key]
        unstable = [r["diverged"] > 0 or r["loss_spikes_mean"] >= 1 for r in pts]
        start = None
        for i in range(len(pts) - 1, -1, -1):
            if not unstable[i]:
                break
            start = pts[i]["d"]
        out.append(
            {
                "architecture": key[0],
                "dataset": key[1],
                "variant": key[2],
                "projection": key[3],
                "unstable_from_d": start,
                "d_evaluated": len(pts),
                "divergence_rate": sum(r["diverged"] for r in pts) / max(sum(r["seeds"] for r in pts), 1),
                "max_cond": max(
                    (r["cond_P_sample"] for r in pts if r["cond_P_sample"] is not None), default=None
                ),
            }
        )
    return out


__all__ = [
    "ROBUSTNESS_COLUMNS",
    "STABILITY_COLUMNS",
    "STABILITY_SUMMARY_COLUMNS",
    "robustness_rows",
    "stability_summary",
]
