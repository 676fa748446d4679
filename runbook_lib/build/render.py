"""A StepResult that also shows notes and a log excerpt (bounded, HTML-escaped)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from ..report.sanitize import clean_text
from ..result import StepResult

MAX_ROWS = 60


@dataclass
class BuildResult(StepResult):
    excerpt: str = ""  # log lines around the first error, already cleaned and redacted
    notes: tuple[str, ...] = ()

    max_table_rows = MAX_ROWS

    def headline_html(self) -> str:
        out = super().headline_html()
        if self.notes:
            out += "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>"
        return out

    def _repr_html_(self) -> str:
        out = super()._repr_html_()
        if self.excerpt:
            out += ("<details open><summary>Log excerpt around the first error</summary>"
                    f"<pre style='max-height:22em;overflow:auto'>{html.escape(clean_text(self.excerpt))}"
                    "</pre></details>")
        return out

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines += [f"  note: {n}" for n in self.notes]
        for name, df in self.tables.items():
            try:
                lines.append(f"\n{name}:\n" + df.to_string(index=False, max_rows=MAX_ROWS))
            except AttributeError:
                continue
        if self.excerpt:
            lines.append("\nlog excerpt:\n" + clean_text(self.excerpt))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["excerpt"] = self.excerpt
        d["notes"] = list(self.notes)
        return d
