"""How a boot is shown: timeline and request tables, a timeline chart, serial excerpts.

Everything here is bounded (excerpts, not logs) and HTML-escaped; the full logs
stay in the run directory and are linked from the result.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from .analyze import iter_excerpt
from .run import BootRun
from .standin import Request

MAX_EXCERPTS = 8
EXCERPT_LINES = 3


MAX_TIMELINE_MESSAGES = 10
DHCP_TIMELINE_KINDS = ("DHCPOFFER", "DHCPACK", "DHCPNAK", "tftp")
MAX_DHCP_ROWS = 60


def dhcp_table(events: list[Any]) -> Any:
    """The testnet's DHCP conversation: who asked (MAC, vendor and user class) and what was offered."""
    import pandas as pd

    cols = ["seconds", "kind", "mac", "ip", "vendor_class", "user_class", "bootfile", "next_server",
            "opt43_70"]
    return pd.DataFrame([{c: getattr(e, c, None) for c in cols} for e in events[:MAX_DHCP_ROWS]],
                        columns=cols)


def dhcp_section(run: BootRun) -> Any:
    """The DHCP table, or a sentence when this run had no test network."""
    if not run.testnet:
        return HTML("<p>No DHCP log: this run did not use network = testnet (QEMU user networking "
                    "answers DHCP itself and logs nothing).</p>")
    return dhcp_table(run.dhcp)


def timeline_table(run: BootRun) -> Any:
    """Serial milestones, boot attempts, failures and warnings plus HTTP requests, in time order."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    an = run.analysis
    if an is not None:
        for m in an.milestones:
            rows.append({"seconds": m.seconds, "source": "serial", "event": m.label,
                         "line": m.line, "text": m.text[:120]})
        for a in an.attempts[:MAX_TIMELINE_MESSAGES]:
            took = f" for {a.duration_s:.1f}s" if a.duration_s is not None else ""
            rows.append({"seconds": a.seconds, "source": "serial", "event": f"attempt {a.outcome}",
                         "line": a.line, "text": f"{a.name}{took}"[:120]})
        for f in an.failures[:MAX_TIMELINE_MESSAGES]:
            rows.append({"seconds": f.seconds, "source": "serial", "event": f"FAILURE {f.kind}",
                         "line": f.line, "text": f.text[:120]})
        for w in an.warnings[:MAX_TIMELINE_MESSAGES]:
            rows.append({"seconds": w.seconds, "source": "serial", "event": f"warning {w.kind}",
                         "line": w.line, "text": w.text[:120]})
    for e in run.dhcp:
        if e.kind in DHCP_TIMELINE_KINDS:
            rows.append({"seconds": e.seconds, "source": "dhcp", "event": e.kind, "line": None,
                         "text": e.summary()[:160]})
    for r in run.requests:
        rows.append({"seconds": r.seconds, "source": "http",
                     "event": f"{r.method} {r.status} {_short(r.path)}", "line": None,
                     "text": f"{r.bytes} bytes in {r.duration_s:.2f}s"})
    df = pd.DataFrame(rows, columns=["seconds", "source", "event", "line", "text"])
    df["line"] = df["line"].astype("Int64")
    if not df.empty:
        df = df.sort_values("seconds", na_position="last", kind="stable").reset_index(drop=True)
    return df


def requests_table(requests: list[Request]) -> Any:
    import pandas as pd

    cols = ["seconds", "time", "client", "method", "path", "status", "bytes", "duration_s", "range"]
    return pd.DataFrame([r.__dict__ for r in requests], columns=cols)


def _short(path: str) -> str:
    return path.split("?", 1)[0].rsplit("/", 1)[-1] or path


class Chart:
    """A rendered matplotlib figure that shows itself as PNG in Jupyter."""

    def __init__(self, figure: Any, title: str) -> None:
        self.figure = figure
        self.title = title

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=90)
        return buf.getvalue()

    def __repr__(self) -> str:
        return f"<chart: {self.title}>"

    def save(self, path: str | Path) -> Path:
        self.figure.savefig(path, dpi=90)
        return Path(path)


def timeline_chart(run: BootRun) -> Chart:
    """One marker per milestone/request on a time axis (matplotlib, Agg: no display needed)."""
    from matplotlib.figure import Figure

    df = timeline_table(run)
    df = df[df["seconds"].notna()]
    fig = Figure(figsize=(9, 0.32 * max(len(df), 4) + 0.8))
    ax = fig.subplots()
    colours = {"serial": "#1f6feb", "http": "#8250df", "dhcp": "#1a7f37"}
    for i, row in enumerate(df.itertuples()):
        event = str(row.event)
        colour = ("#cf222e" if event.startswith("FAILURE") else "#bf8700" if event.startswith("warning")
                  else colours[row.source])
        ax.barh(i, row.seconds, color=colour, alpha=0.25, height=0.6)
        ax.plot(row.seconds, i, "o", color=colour)
    ax.set_yticks(range(len(df)))
    ax.set_yticklabels([f"{r.event[:38]}" for r in df.itertuples()], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the VM started (host clock)")
    status = run.status.value
    ax.set_title(f"PXE boot timeline: {status}", fontsize=10)
    fig.tight_layout()
    return Chart(fig, f"PXE boot timeline, {len(df)} events")


def excerpts_html(run: BootRun, context: int = EXCERPT_LINES) -> str:
    """Serial lines around the first failure and around each milestone (bounded, escaped)."""
    an = run.analysis
    log = run.logs.get("serial console")
    if an is None or not log or not Path(log).exists():
        return "<p>No serial log.</p>"
    picks: list[tuple[str, int]] = []
    if an.first_failure is not None and an.first_failure.line > 0:
        picks.append((f"first failure: {an.first_failure.kind}", an.first_failure.line))
    for w in an.warnings[:2]:
        picks.append((f"warning: {w.kind}", w.line))
    for m in an.milestones:
        if len(picks) >= MAX_EXCERPTS:
            break
        picks.append((f"milestone: {m.label}", m.line))
    parts = []
    for title, line in picks:
        rows = []
        for n, text in iter_excerpt(log, line, context, context):
            mark = "&gt;" if n == line else "&nbsp;"
            rows.append(f"{mark}{n:6d}  {html.escape(text)}")
        parts.append(f"<details{' open' if title.startswith('first') else ''}><summary>"
                     f"{html.escape(title)} (line {line})</summary><pre>"
                     + "\n".join(rows) + "</pre></details>")
    return "".join(parts)


class HTML:
    """Minimal object Jupyter renders as HTML (no IPython import needed here)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<{len(self.text)} characters of HTML>"


def excerpts(run: BootRun) -> HTML:
    return HTML(excerpts_html(run))


def command_html(run: BootRun) -> HTML:
    """The exact QEMU command of the run and the notes about how it ran."""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in run.notes)
    return HTML(f"<pre style='white-space:pre-wrap'>{html.escape(run.command or '(not started)')}"
                "</pre>" + (f"<ul>{notes}</ul>" if notes else ""))
