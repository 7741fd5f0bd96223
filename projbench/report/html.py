"""One self-contained HTML page for ``projbench report --format html``: tables, figures
embedded as base64 PNG (no files beside it), and the provenance — the study's spec, the
versions and the machine that produced the results — so the page alone says what was measured.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; white-space: nowrap; }
th { background: #f3f3f3; }
td.note, td:last-child { white-space: normal; }
figure { margin: 1em 0; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def png_data_uri(path: str | Path) -> str:
    """``data:image/png;base64,…`` of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def html_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain escaped ``<table>``."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(
    title: str,
    sections: list[tuple[str, str]],
    figures: list[Path],
    provenance: dict[str, Any],
) -> str:
    """The page: ``sections`` are (heading, HTML body) in order, then the figures (embedded),
    then the provenance as pretty-printed JSON."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    if figures:
        parts.append("<h2>Figures</h2>")
        for fig in figures:
            parts.append(
                f'<figure><img alt="{html.escape(fig.name)}" src="{png_data_uri(fig)}">'
                f"<figcaption>{html.escape(fig.name)}</figcaption></figure>"
            )
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(provenance, indent=2, sort_keys=True, default=str))}</pre>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


__all__ = ["html_table", "page", "png_data_uri"]
