"""Outcomes and step results.

Every step returns a :class:`StepResult`: PASS, FAIL (the image or build is
wrong) or ERROR (the environment is: missing tool, port busy, no firmware), the
first cause and the fix. A result renders itself as HTML in Jupyter, as text on
a terminal and as JSON for reports. Its JSON also travels inside the executed
notebook as a custom MIME bundle, so a report can be rebuilt from any .ipynb.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

RESULT_MIME = "application/vnd.carbide-runbook.result+json"


class Status(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"

    @property
    def exit_code(self) -> int:
        return {Status.PASS: 0, Status.FAIL: 1, Status.ERROR: 2}[self]

    @staticmethod
    def worst(statuses: list["Status"]) -> "Status":
        order = [Status.PASS, Status.FAIL, Status.ERROR]
        return max(statuses, key=order.index, default=Status.PASS)


_COLOURS = {Status.PASS: "#1a7f37", Status.FAIL: "#cf222e", Status.ERROR: "#9a6700"}


def badge(status: Status) -> str:
    return (f'<span style="background:{_COLOURS[status]};color:#fff;padding:1px 8px;'
            f'border-radius:4px;font-weight:bold">{status.value}</span>')


@dataclass
class StepResult:
    step: str
    status: Status
    summary: str
    cause: str | None = None
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)  # name -> pandas DataFrame
    logs: dict[str, str] = field(default_factory=dict)  # name -> path of a full log

    max_table_rows = 200  # per table shown in HTML (class attribute, not a field)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "status": self.status.value,
            "summary": self.summary,
            "cause": self.cause,
            "fix": self.fix,
            "details": _jsonable(self.details),
            "tables": {k: _table_records(v) for k, v in self.tables.items()},
            "logs": dict(self.logs),
        }

    def __str__(self) -> str:
        lines = [f"{self.status.value}: {self.step}: {self.summary}"]
        if self.cause:
            lines.append(f"  cause: {self.cause}")
        if self.fix:
            lines.append(f"  fix:   {self.fix}")
        for name, path in self.logs.items():
            lines.append(f"  log {name}: {path}")
        return "\n".join(lines)

    def headline_html(self) -> str:
        parts = [f"<div><b>{html.escape(self.step)}</b> {badge(self.status)} "
                 f"{html.escape(self.summary)}</div>"]
        if self.cause:
            parts.append(f"<div><b>First cause:</b> {html.escape(self.cause)}</div>")
        if self.fix:
            parts.append(f"<div><b>Fix:</b> <code>{html.escape(self.fix)}</code></div>")
        if self.logs:
            items = "".join(f"<li>{html.escape(k)}: <code>{html.escape(v)}</code></li>"
                            for k, v in self.logs.items())
            parts.append(f"<div>Full logs:<ul>{items}</ul></div>")
        return "".join(parts)

    def tables_html(self) -> str:
        """Every table of this result: escaped, status-coloured, bounded (report.render)."""
        from .report.render import table_html

        parts = []
        for name, df in self.tables.items():
            if not hasattr(df, "style"):
                continue
            uid = re.sub(r"\W+", "_", f"{self.step}_{name}").strip("_").lower()
            parts.append(f"<details open><summary><b>{html.escape(name)}</b> ({len(df)} rows)"
                         f"</summary>{table_html(df, max_rows=self.max_table_rows, uid=uid)}</details>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.headline_html() + self.tables_html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/plain": str(self),
            "text/html": self._repr_html_(),
            RESULT_MIME: self.headline(),
        }

    def headline(self) -> dict[str, Any]:
        """What travels inside the notebook: stable fields only (nbval compares them)."""
        return {"step": self.step, "status": self.status.value, "summary": self.summary,
                "cause": self.cause, "fix": self.fix}


def _table_records(df: Any, limit: int = 500) -> list[dict[str, Any]]:
    try:
        recs = df.head(limit).to_dict(orient="records")
    except AttributeError:
        return []
    return _jsonable(recs)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
