"""The study table: printed at the end of ``projbench study`` and by ``projbench report DIR``.

Rows are (architecture, dataset, D[, variant][, θ₀]); per projection: d_int90 mean ± std over
seeds (n; the std is "n/a" for one seed), the interpolated crossing, d_int90/D, the baseline
accuracy, runs, wall time and device-hours; a search that did not reach the target shows the
best accuracy reached and which bound to widen. ``--reference FILE.csv`` (columns architecture,
dataset, projection, d_int90, source) adds the reference value and ours/reference.

Formats: ``table`` (rich, stderr), ``md``, ``csv`` (one row per (architecture, dataset,
projection[, variant])), ``json``, ``html``; :func:`simple_table` draws the tables printed beside
it (:mod:`projbench.report.study_extra_tables`). The study's figures are drawn by
:mod:`projbench.report.study_figures`.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
from pathlib import Path
from typing import Any

from projbench.errors import InvalidArgumentError

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
    ``mean ± std``. Seeds without a d_int90 are told apart: "not reached" (the search ended
    below the target) and "still searching" (a study in progress). A row whose seeds are all
    still searching shows where they stand together, ``searching: [lo, hi] so far`` (the
    smallest failing and the largest passing d that bracket them), once each has both.
    """
    if row["d_int90_mean"] is None:
        if row["status"] == "failed":
            return "failed"
        if row["status"] == "incomplete":
            lo, hi = row.get("search_lo"), row.get("search_hi")
            if lo is not None and hi is not None:
                return f"searching: [{lo:,}, {hi:,}] so far"
            return "incomplete"
        best = row.get("best_accuracy")
        return "not reached" + (f" (best {best:.3f})" if best is not None else "")
    searching = int(row.get("searching") or 0)  # seeds whose search has not finished
    missed = row["seeds"] - row["reached"] - searching
    note = f", {missed} not reached" if missed else ""
    note += f", {searching} still searching" if searching else ""
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


__all__ = [
    "FORMATS",
    "add_reference",
    "d_int90_text",
    "read_reference",
    "render",
    "rich_table",
]
