"""The study figures (PNG, matplotlib Agg), drawn by ``projbench study`` and ``projbench report DIR``.

* ``accuracy_<arch>_<dataset>[_<variant>].png`` — test accuracy against d (log x), one colour
  per projection, mean ± std band over seeds at each evaluated d, the baseline and 90 % lines
  and the d_int90 markers (Li et al.'s figure style);
* ``d_int90_<dataset>[_<variant>].png`` — d_int90 per architecture with error bars (the interval
  over seeds), log y, a colour per projection;
* ``d_int90_vs_<axis>.png`` — for studies with axes: d_int90 against each varied field;
* ``stability.png`` — divergence rate, loss spikes and cond(P·E_S) against d.

A cell whose search did not reach the target is drawn as an open triangle at the largest d
evaluated: d_int90 lies above it. File names pass through :func:`slug`.
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.report.figures import save_figure


def slug(text: str) -> str:
    """``text`` as a file-name part: every run of characters other than letters, digits, ``_``,
    ``.`` and ``-`` becomes ``_`` (``x`` if nothing is left)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def write_figures(rows: list[dict[str, Any]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """The accuracy-vs-d figure per (pair, variant), the d_int90 comparison per dataset, and
    d_int90 against each axis of a study with axes."""
    import matplotlib

    matplotlib.use("Agg")

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot create figure folder {out}: {exc.strerror}") from None
    projections = sorted({r["projection"] for r in rows})
    colours = {p: f"C{i % 10}" for i, p in enumerate(projections)}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["architecture"], r["dataset"], r["variant"]), []).append(r)
    paths = [
        _accuracy_figure(key, grp, out, colours)
        for key, grp in groups.items()
        if any(r["curve"] for r in grp)
    ]
    paths.extend(_dataset_figures(rows, out, colours, projections))
    paths.extend(_axis_figures(rows, out, colours))
    return paths


def _accuracy_figure(
    key: tuple[str, str, str], grp: list[dict[str, Any]], out: Path, colours: dict[str, str]
) -> Path:
    """``accuracy_<arch>_<dataset>[_<variant>].png`` for the rows of one (pair, variant)."""
    from matplotlib.figure import Figure

    arch, ds, variant = key
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for r in grp:
        _draw_accuracy_curve(ax, r, colours[r["projection"]])
    direct = _draw_direct_curve(ax, grp[0])
    base = grp[0]["baseline_accuracy"]
    if base is not None:
        ax.axhline(base, color="k", ls="--", lw=1, label=f"baseline {base:.3f}")
        ax.axhline(
            grp[0]["threshold"] * base,
            color="r",
            ls="-.",
            lw=1,
            label=f"{grp[0]['threshold']:.0%} of baseline",
        )
    ax.set_xscale("log")
    ax.set_xlabel("subspace dimension d" + (" / trained parameters" if direct else "") + " (log scale)")
    ax.set_ylabel("test accuracy")
    d_text = f", D = {grp[0]['D']:,}" if grp[0]["D"] else ""
    vtext = f" [{variant}]" if variant != "-" else ""
    ax.set_title(f"{arch} on {ds}{d_text}{vtext}: accuracy vs d (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    path = out / f"accuracy_{slug(arch)}_{slug(ds)}{'' if variant == '-' else '_' + slug(variant)}.png"
    save_figure(fig, path)
    return path


def _draw_accuracy_curve(ax: Any, r: dict[str, Any], c: str) -> None:
    """One projection's mean accuracy against d with its ± std band, and its d_int90 marker."""
    curve = {int(d): [float(a) for a in accs] for d, accs in r["curve"].items()}
    ds_sorted = sorted(curve)
    mean = [sum(curve[d]) / len(curve[d]) for d in ds_sorted]
    std = [statistics.stdev(curve[d]) if len(curve[d]) > 1 else 0.0 for d in ds_sorted]
    ax.plot(ds_sorted, mean, "o-", ms=3, color=c, label=f"{r['projection']}")
    ax.fill_between(
        ds_sorted,
        [m - s for m, s in zip(mean, std)],
        [m + s for m, s in zip(mean, std)],
        color=c,
        alpha=0.2,
        lw=0,
    )
    if r["d_int90_mean"] is not None:
        ax.axvline(r["d_int90_mean"], color=c, ls=":", lw=1.2)
        ax.plot(
            [r["d_int90_mean"]],
            [r["target_accuracy"]],
            marker="*",
            ms=12,
            color=c,
            markeredgecolor="k",
            label=f"d_int90 {r['projection']} = {r['d_int90_mean']:,.0f}",
        )


def _draw_direct_curve(ax: Any, row: dict[str, Any]) -> bool:
    """The direct small networks' accuracy (mean ± std at each size D) and d_direct90, when the
    row has them; whether there was a curve to draw."""
    direct = row.get("direct_curve") or {}
    if not direct:
        return False
    sizes = sorted(int(k) for k in direct)
    dm = [float(direct[k][0]) if k in direct else float(direct[str(k)][0]) for k in sizes]
    dsd = [float(direct[k][1]) if k in direct else float(direct[str(k)][1]) for k in sizes]
    ax.errorbar(
        sizes,
        dm,
        yerr=dsd,
        fmt="s--",
        ms=4,
        capsize=3,
        color="0.35",
        label="direct small network (x = its D; best lr)",
    )
    if row.get("d_direct90"):
        ax.axvline(
            row["d_direct90"],
            color="0.35",
            ls=":",
            lw=1.2,
            label=f"d_direct90 = {row['d_direct90']:,}",
        )
    return True


def _bound(row: dict[str, Any]) -> float | None:
    """The largest d a row's searches evaluated: where a "not reached" cell is drawn (d_int90
    lies above it), or None when nothing was evaluated."""
    curve = row.get("curve") or {}
    return float(max(int(d) for d in curve)) if curve else None


def _interval_err(row: dict[str, Any]) -> tuple[float, float]:
    """(below, above) error-bar lengths from the row's interval, else its std over seeds."""
    mean, lo, hi = row["d_int90_mean"], row.get("d_int90_lo"), row.get("d_int90_hi")
    if lo is not None and hi is not None:
        return max(mean - lo, 0.0), max(hi - mean, 0.0)
    std = row.get("d_int90_std") or 0.0
    return std, std


def _dataset_figures(
    rows: list[dict[str, Any]], out: Path, colours: dict[str, str], projections: list[str]
) -> list[Path]:
    """``d_int90_<dataset>[_<variant>].png``: d_int90 per architecture and projection (bars: the
    interval over seeds and brackets), one figure per variant of the study; a cell whose search
    did not reach the target is an open triangle at the largest d evaluated (censored)."""
    from matplotlib.figure import Figure

    paths = []
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    for ds in sorted({r["dataset"] for r in rows}):
        for variant in variants:
            sub = [r for r in rows if r["dataset"] == ds and r["variant"] == variant]
            if not any(r["d_int90_mean"] or _bound(r) for r in sub):
                continue
            archs = list(dict.fromkeys(r["architecture"] for r in sub))
            fig = Figure(figsize=(max(5.0, 1.4 * len(archs) + 2), 4.2), layout="constrained")
            ax = fig.subplots()
            width = 0.8 / max(len(projections), 1)
            labelled: set[str] = set()
            for j, proj in enumerate(projections):
                for i, arch in enumerate(archs):
                    hit = next((x for x in sub if (x["architecture"], x["projection"]) == (arch, proj)), None)
                    if hit is None:
                        continue
                    x = i + (j - (len(projections) - 1) / 2) * width
                    if hit["d_int90_mean"] is not None:
                        below, above = _interval_err(hit)
                        label = None if proj in labelled else proj
                        labelled.add(proj)
                        ax.errorbar([x], [hit["d_int90_mean"]], yerr=[[below], [above]], fmt="o", capsize=4,
                                    color=colours[proj], label=label)
                    elif hit["status"] in ("not reached", "partly reached") and _bound(hit):
                        label = None if "^" in labelled else "not reached: d_int90 above this d"
                        labelled.add("^")
                        ax.plot([x], [_bound(hit) or 1.0], marker="^", ms=9, mfc="none", color=colours[proj],
                                ls="none", label=label)
            ax.set_xticks(range(len(archs)), archs)
            ax.set_yscale("log")
            ax.set_ylabel("d_int90 (log scale; bars: interval over seeds)")
            vtext = "" if variant == "-" else f" [{variant}]"
            ax.set_title(f"d_int90 on {ds}{vtext}")
            ax.grid(True, axis="y", which="both", alpha=0.3)
            ax.legend(fontsize=8)
            suffix = "" if variant == "-" else "_" + slug(variant)
            path = out / f"d_int90_{slug(ds)}{suffix}.png"
            save_figure(fig, path)
            paths.append(path)
    return paths


def _axis_figures(rows: list[dict[str, Any]], out: Path, colours: dict[str, str]) -> list[Path]:
    """``d_int90_vs_<axis>.png`` per axis: numbers in ascending order, other values (a θ₀
    source, an optimiser) in the study's order; one series per (pair, projection) and value of
    the study's other axes, each set a little apart so that they do not hide one another."""
    from matplotlib.figure import Figure

    axes = sorted({k[5:] for r in rows for k in r if k.startswith("axis_")})
    paths = []
    for axis in axes:
        fig = Figure(figsize=(7, 4.2), layout="constrained")
        ax = fig.subplots()
        drawn = False
        seen = list(dict.fromkeys(r[f"axis_{axis}"] for r in rows if f"axis_{axis}" in r))
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen)
        values = sorted(seen) if numeric else seen
        others = [a for a in axes if a != axis]

        def series(r: dict[str, Any], others: list[str] = others) -> tuple[Any, ...]:
            return (r["architecture"], r["dataset"], r["projection"], *(r.get(f"axis_{a}") for a in others))

        keys = list(dict.fromkeys(series(r) for r in rows))
        for n, key in enumerate(keys):
            mine = [r for r in rows if series(r) == key]
            pts = [r for r in mine if r["d_int90_mean"] is not None]
            cens = [r for r in mine
                    if r["d_int90_mean"] is None and r["status"] != "incomplete" and _bound(r)]
            colour = f"C{n % 10}"
            shift = (n - (len(keys) - 1) / 2) * min(0.3 / max(len(keys), 1), 0.08)
            name = f"{key[0]}/{key[1]} {key[2]}" + (
                f" ({', '.join(f'{a}={v}' for a, v in zip(others, key[3:]))})" if others else "")
            if pts:
                errs = [_interval_err(r) for r in pts]
                ax.errorbar(
                    [values.index(r[f"axis_{axis}"]) + shift for r in pts],
                    [r["d_int90_mean"] for r in pts],
                    yerr=[[e[0] for e in errs], [e[1] for e in errs]],
                    fmt="o",
                    capsize=3,
                    alpha=0.8,
                    color=colour,
                    label=name,
                )
            if cens:
                xs = [values.index(r[f"axis_{axis}"]) + shift for r in cens]
                ax.plot(xs, [_bound(r) or 1.0 for r in cens], marker="^", ms=8, mfc="none", ls="none",
                        color=colour, label=f"{name}: not reached (d_int90 above)")
            drawn |= bool(pts or cens)
        ax.set_xticks(range(len(values)), [str(v) for v in values])
        if not drawn:
            continue
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel("d_int90 (log scale)")
        ax.set_title(f"d_int90 against {axis} (bars: interval over seeds; open ^: not reached)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        path = out / f"d_int90_vs_{slug(axis)}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths


def stability_figure(srows: list[dict[str, Any]], out_dir: str | os.PathLike[str]) -> Path | None:
    """Divergence rate, loss spikes and cond(P·E_S) against d, one colour per projection."""
    if not srows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    keys = list(dict.fromkeys((r["architecture"], r["dataset"], r["projection"]) for r in srows))
    for i, key in enumerate(keys):
        pts = [r for r in srows if (r["architecture"], r["dataset"], r["projection"]) == key]
        ds = [r["d"] for r in pts]
        label = f"{key[2]} ({key[0]}/{key[1]})" if len({k[:2] for k in keys}) > 1 else key[2]
        c = f"C{i % 10}"
        axes[0].plot(ds, [r["diverged"] / max(r["seeds"], 1) for r in pts], "o-", color=c, label=label)
        axes[1].plot(ds, [r["loss_spikes_mean"] for r in pts], "o-", color=c, label=label)
        cond = [(r["d"], r["cond_P_sample"]) for r in pts if r["cond_P_sample"] is not None]
        if cond:
            axes[2].plot([x for x, _ in cond], [y for _, y in cond], "o-", color=c, label=label)
    for ax, ylabel in zip(
        axes, ("fraction of seeds diverged", "loss spikes per run (mean)", "cond(P on sampled columns)")
    ):
        ax.set_xscale("log")
        ax.set_xlabel("subspace dimension d (log scale)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_ylim(bottom=-0.05)
    axes[0].legend(fontsize=7)
    fig.suptitle("Training stability against d")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "stability.png"
    save_figure(fig, path)
    return path


__all__ = [
    "slug",
    "stability_figure",
    "write_figures",
]
