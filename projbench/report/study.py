"""The study table and figures: printed at the end of ``projbench study`` and by
``projbench report DIR``.

Table rows are (architecture, dataset, D[, variant][, θ₀]); per projection: d_int90 mean ± std over
seeds (n; the std is "n/a" for one seed), the interpolated crossing, d_int90/D, the baseline
accuracy, runs, wall time and device-hours; a search that did not reach the target shows the
best accuracy reached and which bound to widen. ``--reference FILE.csv`` (columns architecture,
dataset, projection, d_int90, source) adds the reference value and ours/reference.

Formats: ``table`` (rich, stderr), ``md``, ``csv`` (one row per (architecture, dataset,
projection[, variant])), ``html``.

Figures (PNG, matplotlib Agg):

* ``accuracy_<arch>_<dataset>[_<variant>].png`` — test accuracy against d (log x), one colour
  per projection, mean ± std band over seeds at each evaluated d, the baseline and 90 % lines
  and the d_int90 markers (Li et al.'s figure style);
* ``d_int90_<dataset>.png`` — d_int90 per architecture with error bars (std over seeds), log y,
  a colour per projection;
* ``d_int90_vs_<axis>.png`` — for studies with axes: d_int90 against each varied field.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
import re
import statistics
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError
from projbench.report.figures import save_figure

FORMATS = ("table", "md", "csv", "json", "html")
CSV_COLUMNS = (
    "architecture",
    "dataset",
    "D",
    "variant",
    "projection",
    "seeds",
    "reached",
    "d_int90_mean",
    "d_int90_std",
    "d_int90_min",
    "d_int90_max",
    "d_int90_lo",
    "d_int90_hi",
    "interpolated_mean",
    "interpolated_std",
    "d_int90_over_D",
    "baseline_accuracy",
    "target_accuracy",
    "best_accuracy",
    "runs",
    "wall_s",
    "device",
    "device_hours",
    "status",
    "not_converged",
    "convergence_known",
    "message",
    "d_direct90",
    "bytes_to_ship",
    "state_dict_bytes",
)


Reference = dict[tuple[str, str, str], list[tuple[float, str]]]


def read_reference(path: str | os.PathLike[str]) -> Reference:
    """(architecture, dataset, projection) -> [(d_int90, source), …] from a reference CSV; a
    cell may have several rows, one per source (e.g. a paper and a reimplementation)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read reference file {p}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    need = {"architecture", "dataset", "projection", "d_int90"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise InvalidArgumentError(
            f"{p}: a reference CSV needs the columns architecture, dataset, projection, "
            f"d_int90 (and optionally source); found {reader.fieldnames}"
        )
    out: Reference = {}
    for i, row in enumerate(reader, start=2):
        try:
            value = float(row["d_int90"])
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{p}:{i}: d_int90 must be a number, got {row['d_int90']!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise InvalidArgumentError(f"{p}:{i}: d_int90 must be a positive number, got {row['d_int90']!r}")
        key = (row["architecture"], row["dataset"], row["projection"])
        out.setdefault(key, []).append((value, row.get("source") or f"reference {len(out.get(key, [])) + 1}"))
    return out


def add_reference(rows: list[dict[str, Any]], reference: Reference) -> None:
    """Put each row's reference values beside it: ``references`` {source: d_int90} and
    ``ours_over`` {source: ours / reference}; the first source also as ``reference_d_int90``,
    ``reference_source`` and ``ours_over_reference``."""
    for r in rows:
        refs = reference.get((r["architecture"], r["dataset"], r["projection"])) or reference.get(
            (r["architecture"], r["dataset"], r.get("projection_name", ""))
        ) or []
        r["references"] = {source: value for value, source in refs}
        r["ours_over"] = {
            source: (r["d_int90_mean"] / value if r["d_int90_mean"] else None) for value, source in refs
        }
        first = refs[0] if refs else None
        r["reference_d_int90"] = first[0] if first else None
        r["reference_source"] = first[1] if first else None
        r["ours_over_reference"] = r["ours_over"].get(first[1]) if first else None


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def d_int90_text(row: dict[str, Any]) -> str:
    """``mean [lo, hi] (n=…)`` or why there is none.

    The interval runs from the lowest failing d just below any seed's crossing to the highest
    seed's first passing d (:func:`projbench.search.bracket_interval`): it covers both the
    spread over seeds and the search's resolution, so two seeds that stopped at the same d
    still show how finely that d was resolved. Rows stored without brackets fall back to
    ``mean ± std``.
    """
    if row["d_int90_mean"] is None:
        if row["status"] == "failed":
            return "failed"
        if row["status"] == "incomplete":
            return "incomplete"
        best = row.get("best_accuracy")
        return "not reached" + (f" (best {best:.3f})" if best is not None else "")
    note = "" if row["reached"] == row["seeds"] else f", {row['seeds'] - row['reached']} not reached"
    lo, hi = row.get("d_int90_lo"), row.get("d_int90_hi")
    if lo is not None and hi is not None:
        return f"{row['d_int90_mean']:,.0f} [{lo:,.0f}, {hi:,.0f}] (n={row['reached']}{note})"
    std = "n/a" if row["d_int90_std"] is None else f"{row['d_int90_std']:,.0f}"
    return f"{row['d_int90_mean']:,.0f} ± {std} (n={row['reached']}{note})"


def reference_sources(rows: list[dict[str, Any]]) -> list[str]:
    """The reference sources of ``rows`` in order: column ``ref<i>`` is source i (1-based)."""
    return list(dict.fromkeys(s for r in rows for s in (r.get("references") or {})))


def reference_legend(rows: list[dict[str, Any]]) -> str:
    """``ref1 = Li et al. 2018; ref2 = …`` for a table's caption ('' without references)."""
    return "; ".join(f"ref{i} = {s}" for i, s in enumerate(reference_sources(rows), start=1))


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _not_converged_text(row: dict[str, Any]) -> str:
    known = row.get("convergence_known")
    return f"{row.get('not_converged', 0)}/{known}" if known else "-"


def table_columns(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(header, function of row) for the human formats."""
    cols: list[tuple[str, Any]] = [
        ("architecture", lambda r: r["architecture"]),
        ("dataset", lambda r: r["dataset"]),
        ("D", lambda r: _fmt(r["D"])),
    ]
    if any(r["variant"] != "-" for r in rows):
        cols.append(("variant", lambda r: r["variant"]))
    trained = any(r.get("theta0", "scratch") != "scratch" for r in rows)
    if trained and not any("axis_theta0" in r for r in rows):  # (an axis shows it in the variant)
        cols.append(("θ₀", lambda r: r.get("theta0") or "scratch"))
    if any(r.get("theta0_accuracy") is not None for r in rows):
        cols.append(("θ₀ acc", lambda r: _fmt(r.get("theta0_accuracy"), 3)))
    cols += [
        ("projection", lambda r: r["projection"]),
        ("d_int90 (interval)", d_int90_text),
        ("interpolated", lambda r: _fmt(r["interpolated_mean"])),
        ("d_int90/D", lambda r: "-" if r["d_int90_over_D"] is None else f"{r['d_int90_over_D']:.2e}"),
        ("baseline acc", lambda r: _fmt(r["baseline_accuracy"], 3)),
        ("runs", lambda r: _fmt(r["runs"])),
        ("wall s", lambda r: _fmt(r["wall_s"], 1)),
        (f"{_hours_label(rows)}", lambda r: f"{r['device_hours']:.3f}"),
    ]
    for i, source in enumerate(reference_sources(rows), start=1):
        cols += [
            (f"ref{i}", lambda r, s=source: _fmt((r.get("references") or {}).get(s))),
            (f"ours/ref{i}", lambda r, s=source: _ratio_text((r.get("ours_over") or {}).get(s))),
        ]
    if any(r.get("convergence_known") for r in rows):
        cols.append(("not converged", _not_converged_text))
    if any(r.get("d_direct90") is not None or r.get("direct_curve") for r in rows):
        cols.append(("d_direct90", lambda r: _fmt(r.get("d_direct90"))))
    if any(r.get("bytes_to_ship") for r in rows):
        cols.append(("bytes to ship", lambda r: _fmt(r.get("bytes_to_ship"))))
        cols.append(("state_dict bytes", lambda r: _fmt(r.get("state_dict_bytes"))))
    cols.append(("note", lambda r: r.get("message") or ""))
    return cols


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


def simple_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], title: str) -> Any:
    """A rich table of plain dict rows (header, key)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for r in rows:
        table.add_row(
            *(
                _fmt(r.get(k), 3 if isinstance(r.get(k), float) and abs(r.get(k) or 0) < 100 else 0)
                for _, k in columns
            )
        )
    return table


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


def _hours_label(rows: list[dict[str, Any]]) -> str:
    devices = {str(r.get("device", "cpu")).split(":")[0] for r in rows}
    if devices == {"cuda"}:
        return "GPU-h"
    return "CPU-h" if devices == {"cpu"} else "device-h"


def render(rows: list[dict[str, Any]], fmt: str, *, title: str = "", notes: str = "") -> str:
    """The table as text in ``fmt`` (md, csv, html); ``table`` is drawn by :func:`rich_table`."""
    if fmt == "csv":
        buf = io.StringIO()
        extra = [
            c
            for c in ("reference_d_int90", "reference_source", "ours_over_reference")
            if rows and c in rows[0]
        ]
        axes = sorted({k for r in rows for k in r if k.startswith("axis_")})
        writer = csv.DictWriter(
            buf, fieldnames=[*CSV_COLUMNS, *axes, *extra], extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in writer.fieldnames})
        return buf.getvalue()
    cols = table_columns(rows)
    if fmt == "md":
        lines = [f"**{title}**", ""] if title else []
        lines.append("| " + " | ".join(h for h, _ in cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for r in rows:
            lines.append("| " + " | ".join(str(f(r)).replace("|", "\\|") for _, f in cols) + " |")
        if notes:
            lines += ["", notes]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(f(r)))}</td>" for _, f in cols) + "</tr>" for r in rows
        )
        cap = f"<caption>{html.escape(title)}</caption>" if title else ""
        note = f"<p>{html.escape(notes)}</p>" if notes else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}\n"
    if fmt == "json":
        import json

        return json.dumps(rows, indent=1, default=str, allow_nan=True) + "\n"
    raise InvalidArgumentError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


#: columns of the terminal table unless ``--columns`` asks for others (md/csv/html show all);
#: a header starting with one of these prefixes is shown (reference columns, CPU-h/GPU-h)
DEFAULT_COLUMNS = (
    "architecture", "dataset", "variant", "θ₀", "projection", "d_int90 (interval)", "baseline acc", "θ₀ acc",
    "runs", "ref*", "ours/ref*", "not converged", "d_direct90", "note",
)
#: columns whose text may wrap in a narrow terminal; every other cell (numbers) never splits
WRAPPING_COLUMNS = ("note", "variant")


def column_names(rows: list[dict[str, Any]]) -> list[str]:
    """Headers of every column the table of ``rows`` can show (for ``--columns``)."""
    return [h for h, _ in table_columns(rows)]


def select_columns(
    cols: list[tuple[str, Any]], wanted: str | None
) -> list[tuple[str, Any]]:
    """The default terminal columns (``wanted`` None), every column (``all``), or the
    comma-separated headers in ``wanted`` (a trailing ``*`` matches a prefix, e.g. ``ref*``);
    unknown names are refused."""
    import fnmatch

    if wanted == "all":
        return cols
    names = [w.strip() for w in wanted.split(",") if w.strip()] if wanted else list(DEFAULT_COLUMNS)
    if wanted:
        unknown = [n for n in names if not any(fnmatch.fnmatchcase(h, n) for h, _ in cols)]
        if unknown:
            raise InvalidArgumentError(
                f"unknown column(s) {', '.join(unknown)}; columns: {', '.join(h for h, _ in cols)}, or all"
            )
    return [(h, f) for h, f in cols if any(fnmatch.fnmatchcase(h, n) for n in names)]


def rich_table(
    rows: list[dict[str, Any]], title: str = "", caption: str = "", columns: str | None = None
) -> Any:
    """The study table for a terminal: the default columns (or ``columns``), numbers never
    split across lines (only the note and variant columns wrap)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", caption=caption or None, caption_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    cols = select_columns(table_columns(rows), columns)
    for h, f in cols:
        wraps = h in WRAPPING_COLUMNS
        widest = max([len(h), *(len(str(f(r))) for r in rows)])
        table.add_column(
            h,
            justify="right" if h in ("D", "interpolated", "runs", "wall s") else "left",
            overflow="fold" if wraps else "ellipsis",
            no_wrap=not wraps,
            min_width=min(widest, 16) if wraps else widest,
        )
    for r in rows:
        style = {"failed": "red", "not reached": "yellow", "incomplete": "dim"}.get(r["status"])
        table.add_row(*(str(f(r)) for _, f in cols), style=style)
    return table


# ------------------------------------------------------------------------------------------
# figures
# ------------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def write_figures(rows: list[dict[str, Any]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """The accuracy-vs-d figure per (pair, variant), the d_int90 comparison per dataset, and
    d_int90 against each axis of a study with axes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot create figure folder {out}: {exc.strerror}") from None
    paths: list[Path] = []
    projections = sorted({r["projection"] for r in rows})
    colours = {p: f"C{i % 10}" for i, p in enumerate(projections)}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["architecture"], r["dataset"], r["variant"]), []).append(r)
    for (arch, ds, variant), grp in groups.items():
        if not any(r["curve"] for r in grp):
            continue
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        ax = fig.subplots()
        for r in grp:
            curve = {int(d): [float(a) for a in accs] for d, accs in r["curve"].items()}
            ds_sorted = sorted(curve)
            mean = [sum(curve[d]) / len(curve[d]) for d in ds_sorted]
            std = [statistics.stdev(curve[d]) if len(curve[d]) > 1 else 0.0 for d in ds_sorted]
            c = colours[r["projection"]]
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
        direct = grp[0].get("direct_curve") or {}
        if direct:
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
            if grp[0].get("d_direct90"):
                ax.axvline(
                    grp[0]["d_direct90"],
                    color="0.35",
                    ls=":",
                    lw=1.2,
                    label=f"d_direct90 = {grp[0]['d_direct90']:,}",
                )
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
        path = out / f"accuracy_{_slug(arch)}_{_slug(ds)}{'' if variant == '-' else '_' + _slug(variant)}.png"
        save_figure(fig, path)
        paths.append(path)
    paths.extend(_dataset_figures(rows, out, colours, projections))
    paths.extend(_axis_figures(rows, out, colours))
    return paths


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
            suffix = "" if variant == "-" else "_" + _slug(variant)
            path = out / f"d_int90_{_slug(ds)}{suffix}.png"
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
        path = out / f"d_int90_vs_{_slug(axis)}.png"
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
    "FORMATS",
    "add_reference",
    "d_int90_text",
    "read_reference",
    "render",
    "rich_table",
    "write_figures",
]
