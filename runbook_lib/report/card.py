"""The summary card every HTML report opens with, and the page changes that make a report read well.

The card sits above the first cell: the verdict (coloured), the notebook, when it started, how
long it took, the host, the accel used and why, the first failure and its fix, links to the
sections (the notebook's headings and each step result) and to the logs saved beside the
report (relative links into the run's ``.logs`` directory). Everything in it comes from the
summary JSON (:meth:`runbook_lib.report.export.Summary.to_dict`) and is HTML-escaped: causes
and log names can hold markup.

:func:`prepare_outputs` works on the copy of the notebook that is rendered (never the saved
.ipynb): each step result's HTML gets an anchor the card links to, and a table with more than
:data:`COLLAPSE_ROWS` rows is folded into a ``<details>``.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..result import RESULT_MIME

CARD_ID = "runbook-summary-card"
CARD_PLACEHOLDER = "<!-- runbook-summary-card -->"
RESULT_ANCHOR = "runbook-result-{}"
COLLAPSE_ROWS = 25
MAX_LOG_LINKS = 12
MAX_SECTION_LINKS = 20
MAX_TEXT = 600  # characters of a cause or fix shown in the card (the JSON has all of it)

VERDICT_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "ERROR": "#9a6700"}
_HEADING = re.compile(r"<h([1-3])\s+id=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.S)
_TAG = re.compile(r"<[^>]+>")
_TABLE = re.compile(r"<table\b.*?</table>", re.S | re.I)
_ROW = re.compile(r"<tr\b", re.I)
# logs worth a link first (the rest follow in the order run_facts listed them)
_LOG_ORDER = ("boot/serial.log", "boot/requests.jsonl", "boot/qemu.log", "boot/dnsmasq.log")

CARD_CSS = """
#runbook-summary-card { border: 2px solid var(--rb-verdict); border-radius: 6px; margin: 8px 0 16px;
  padding: 10px 14px; font-family: var(--jp-ui-font-family, sans-serif); font-size: 14px;
  background: #fff; color: #1f2328; max-width: 1100px; }
#runbook-summary-card .runbook-card-head { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
#runbook-summary-card .runbook-card-verdict { background: var(--rb-verdict); color: #fff;
  font-weight: bold; padding: 2px 10px; border-radius: 4px; font-size: 16px; }
#runbook-summary-card .runbook-card-title { font-weight: bold; font-size: 16px; }
#runbook-summary-card table.runbook-card-facts { border-collapse: collapse; margin: 6px 0; }
#runbook-summary-card table.runbook-card-facts th { text-align: left; padding: 1px 12px 1px 0;
  vertical-align: top; color: #57606a; font-weight: normal; white-space: nowrap; }
#runbook-summary-card table.runbook-card-facts td { text-align: left; padding: 1px 0; }
#runbook-summary-card .runbook-card-failure { background: #fff1f0; border-left: 4px solid var(--rb-verdict);
  padding: 4px 8px; margin: 6px 0; white-space: pre-wrap; word-break: break-word; }
#runbook-summary-card ul { margin: 2px 0; padding-left: 20px; }
#runbook-summary-card nav { display: flex; gap: 24px; flex-wrap: wrap; }
#runbook-summary-card a { color: #0969da; text-decoration: underline; }
details.runbook-long-table > summary { cursor: pointer; color: #0969da; }
"""


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    s = "" if value is None else str(value)
    if len(s) > limit:
        s = s[:limit] + f"… ({len(s) - limit} more characters in the JSON report)"
    return html.escape(s)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _when(iso: Any) -> str:
    """'2026-11-26T18:01:28.751062Z' -> '2026-11-26 18:01:28 UTC'."""
    if not iso:
        return "-"
    s = str(iso)
    m = re.match(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})", s)
    return f"{m.group(1)} {m.group(2)} UTC" if m and s.endswith("Z") else (
        f"{m.group(1)} {m.group(2)}" if m else s)


def _size(n: Any) -> str:
    from .render import human_size

    return human_size(n if isinstance(n, int) else None)


def headings(body: str) -> list[tuple[str, str]]:
    """(anchor id, text) of the page's h1-h3 headings, in order (nbconvert gives each an id)."""
    out = []
    for m in _HEADING.finditer(body):
        text = html.unescape(_TAG.sub("", m.group(3))).replace("¶", "").strip()
        if text:
            out.append((html.unescape(m.group(2)), text))
    return out


def _log_href(log_dir: str | None, name: str, html_path: Path | None) -> str:
    """A link to a saved log, relative to the report (it travels with its .logs directory)."""
    if not log_dir:
        return ""
    target = Path(log_dir) / name
    if html_path is None:
        return target.as_uri() if target.is_absolute() else str(target)
    rel = os.path.relpath(target, Path(html_path).absolute().parent)
    return "/".join(part for part in Path(rel).parts)


def _ordered_logs(logs: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    rank = {name: i for i, name in enumerate(_LOG_ORDER)}
    return sorted(logs, key=lambda lg: rank.get(str(lg.get("name")), len(rank)))


def card_html(summary: Mapping[str, Any], *, html_path: Path | None = None,
              sections: Sequence[tuple[str, str]] = (),
              result_anchors: Mapping[str, str] | None = None,
              embedded: Sequence[tuple[str, str]] = ()) -> str:
    """The card for one report (escaped). `sections`: (id, heading) to link; `result_anchors`:
    step name -> anchor of its result; `embedded`: (id, name) of logs embedded in the page."""
    verdict = str(summary.get("status") or "ERROR")
    colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["ERROR"])
    title = summary.get("title") or summary.get("notebook") or "runbook report"
    host = summary.get("host") or {}
    accel = host.get("accel") or {}
    facts: list[tuple[str, str]] = [
        ("notebook", _text(summary.get("notebook"))),
        ("started", _text(_when(summary.get("started")))),
        ("duration", _text(_duration(summary.get("duration_s")))),
        ("host", _text(", ".join(str(x) for x in (host.get("hostname"), host.get("distro"),
                                                   host.get("kernel")) if x) or "-")),
        ("accel", _text(accel.get("used") or "none") + (
            f" <span style='color:#57606a'>({_text(accel.get('why'))})</span>" if accel.get("why") else "")),
    ]
    boot = summary.get("boot") or {}
    if boot:
        reached = boot.get("reached") or "none"
        login = boot.get("login_prompt_s")
        facts.append(("boot", _text(f"reached {reached}" + (f", login prompt after {login} s"
                                                              if login is not None else ""))))
    rows = "".join(f"<tr><th>{k}</th><td class='runbook-card-{k}'>{v}</td></tr>" for k, v in facts)
    parts = [
        f"<div id='{CARD_ID}' class='runbook-card' data-verdict='{html.escape(verdict)}' "
        f"style='--rb-verdict:{colour}'>",
        "<div class='runbook-card-head'>"
        f"<span class='runbook-card-verdict' style='background:{colour}'>{html.escape(verdict)}</span>"
        f"<span class='runbook-card-title'>{_text(title)}</span></div>",
        f"<table class='runbook-card-facts'>{rows}</table>",
    ]
    ff = summary.get("first_failure")
    if ff:
        anchor = (result_anchors or {}).get(str(ff.get("step")))
        where = (f"<a href='#{html.escape(anchor)}'>{_text(ff.get('step'))}</a>" if anchor
                 else _text(ff.get("step")))
        parts.append(
            "<div class='runbook-card-failure'>"
            f"<div><b>First failure</b> ({_text(ff.get('status'))}) in {where}: {_text(ff.get('summary'))}</div>"
            + (f"<div class='runbook-card-cause'><b>Cause:</b> {_text(ff.get('cause'))}</div>"
               if ff.get("cause") else "")
            + (f"<div class='runbook-card-fix'><b>Fix:</b> {_text(ff.get('fix'))}</div>" if ff.get("fix") else "")
            + "</div>")
    nav: list[str] = []
    steps = [s for s in summary.get("steps") or [] if isinstance(s, Mapping)]
    if steps:
        items = []
        for s in steps[:MAX_SECTION_LINKS]:
            anchor = (result_anchors or {}).get(str(s.get("step")))
            name = _text(s.get("step"), 120)
            link = f"<a href='#{html.escape(anchor)}'>{name}</a>" if anchor else name
            st = str(s.get("status"))
            items.append(f"<li><span style='color:{VERDICT_COLOURS.get(st, '#57606a')};font-weight:bold'>"
                         f"{html.escape(st)}</span> {link}</li>")
        nav.append(f"<div class='runbook-card-steps'><b>Results</b><ul>{''.join(items)}</ul></div>")
    if sections:
        links = "".join(f"<li><a href='#{html.escape(i)}'>{_text(t, 80)}</a></li>"
                        for i, t in list(sections)[:MAX_SECTION_LINKS])
        nav.append(f"<div class='runbook-card-sections'><b>Sections</b><ul>{links}</ul></div>")
    logs = [lg for lg in summary.get("logs") or [] if isinstance(lg, Mapping) and lg.get("name")]
    log_dir = (summary.get("paths") or {}).get("log_dir")
    if logs or embedded:
        items_l = [f"<li><a href='#{html.escape(i)}'>{_text(n)}</a> (embedded in this page)</li>"
                   for i, n in embedded]
        for lg in _ordered_logs(logs)[:MAX_LOG_LINKS]:
            href = _log_href(log_dir, str(lg["name"]), html_path)
            items_l.append(f"<li><a class='runbook-card-log' href='{html.escape(href)}'>{_text(lg['name'])}</a> "
                           f"({_size(lg.get('size'))})</li>")
        more = len(logs) - MAX_LOG_LINKS
        if more > 0:
            items_l.append(f"<li>… {more} more in {_text(Path(str(log_dir)).name)}/</li>")
        nav.append(f"<div class='runbook-card-logs'><b>Logs</b> (saved beside this report)"
                   f"<ul>{''.join(items_l)}</ul></div>")
    if nav:
        parts.append(f"<nav>{''.join(nav)}</nav>")
    parts.append("</div>")
    return "".join(parts)


def _collapse_tables(text: str, limit: int = COLLAPSE_ROWS) -> str:
    def fold(m: re.Match[str]) -> str:
        rows = len(_ROW.findall(m.group(0)))
        if rows <= limit:
            return m.group(0)
        return (f"<details class='runbook-long-table'><summary>table of {rows - 1} rows: show</summary>"
                f"{m.group(0)}</details>")
    return _TABLE.sub(fold, text)


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def prepare_outputs(nb: Any) -> dict[str, str]:
    """Anchor each step result and fold long tables, in place on a copy made for rendering.

    Returns step name -> anchor id of the first output that shows that step's result."""
    anchors: dict[str, str] = {}
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data or "text/html" not in data:
                continue
            text = _collapse_tables(_joined(data["text/html"]))
            payload = data.get(RESULT_MIME)
            if payload is not None:
                if isinstance(payload, str):
                    payload = json.loads(payload)
                step = str(payload.get("step"))
                anchor = RESULT_ANCHOR.format(n)
                n += 1
                anchors.setdefault(step, anchor)
                text = f"<span id='{anchor}' class='runbook-result-anchor'></span>" + text
            data["text/html"] = text
    return anchors
