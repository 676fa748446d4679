"""HTML rendering shared by every step: status-coloured tables and escaped log excerpts."""

from __future__ import annotations

import html
from typing import Any, Iterable

from .sanitize import clean_text, redact

STATUS_COLOURS = {
    "ok": "#dafbe1", "pass": "#dafbe1", "fresh": "#dafbe1",
    "missing": "#ffebe9", "fail": "#ffebe9", "too old": "#ffebe9", "unusable": "#ffebe9",
    "stale": "#fff8c5", "error": "#fff8c5", "warn": "#fff8c5", "info": "#ddf4ff",
}


def _colour(value: Any) -> str:
    key = str(value).strip().lower()
    colour = STATUS_COLOURS.get(key) or STATUS_COLOURS.get(key.split(" ")[0], "")
    return f"background-color: {colour}" if colour else ""


def table_html(df: Any, status_columns: Iterable[str] = ("status",), max_rows: int = 200,
               uid: str = "tbl") -> str:
    """A DataFrame as escaped HTML, status cells coloured, bounded to `max_rows`.

    A longer table keeps its first and last rows (like pandas' own repr) and says how many
    were cut. `uid` fixes the Styler's CSS ids (random by default) so saved outputs are stable.
    """
    import pandas as pd

    cut = max(len(df) - max_rows, 0)
    shown = pd.concat([df.head(max_rows - max_rows // 2), df.tail(max_rows // 2)]) if cut else df
    styler = shown.style.hide(axis="index").set_uuid(uid)
    try:
        styler = styler.format(escape="html")
    except TypeError:  # very old pandas
        pass
    cols = [c for c in status_columns if c in shown.columns]
    if cols:
        styler = styler.map(_colour, subset=cols)
    styler = styler.set_table_styles([
        {"selector": "td, th", "props": "text-align: left; padding: 2px 8px; font-size: 90%"},
    ])
    more = f"<div>… {cut} rows cut from the middle; the JSON report has the first 500</div>" if cut else ""
    return styler.to_html() + more


def excerpt_html(lines: Iterable[str], title: str = "", highlight: Iterable[int] = (),
                 max_lines: int = 60, secrets: Iterable[str] = ()) -> str:
    """Log lines as a bounded, escaped <pre>; lines whose index is in `highlight` are marked."""
    marks = set(highlight)
    out = []
    for i, line in enumerate(lines):
        if i >= max_lines:
            out.append("…")
            break
        text = html.escape(redact(clean_text(line), secrets))
        out.append(f"<mark>{text}</mark>" if i in marks else text)
    head = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return head + "<pre style='max-height:30em;overflow:auto;font-size:85%'>" + "\n".join(out) + "</pre>"


def human_size(n: int | None) -> str:
    """Compact binary size for tables: 512B, 1.5k, 78M ('-' when unknown)."""
    if n is None:
        return "-"
    x = float(n)
    for unit in ("B", "k", "M", "G", "T"):
        if x < 1024 or unit == "T":
            return f"{x:.0f}{unit}" if unit == "B" or x >= 10 else f"{x:.1f}{unit}"
        x /= 1024
    return f"{n}B"


class Note:
    """A short text a notebook cell shows as its output (escaped; plain text in a terminal)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<p><em>{html.escape(self.text)}</em></p>"
