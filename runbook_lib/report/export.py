"""Turn an executed notebook into shareable reports: redacted .ipynb, .html and .json.

The JSON summary is rebuilt from the notebook itself (each StepResult leaves a
custom MIME bundle in its output), so a report can be regenerated from any
executed notebook a teammate sends. Papermill's error cell and any cell error
are kept visible; a failing run still gets all three files.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import nbformat

from ..result import RESULT_MIME, Status
from .sanitize import REDACTED, redact

MAX_STREAM_CHARS = 200_000
PM_ERROR_TAG = "papermill-error-cell-tag"


@dataclass
class Summary:
    notebook: str
    status: Status
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "status": self.status.value,
            "exit_code": self.status.exit_code,
            "steps": self.steps,
            "error": self.error,
            "parameters": self.parameters,
        }


def _texts(output: Any) -> list[tuple[Any, str]]:
    """(container, key) pairs holding text in an output, for in-place editing."""
    pairs: list[tuple[Any, str]] = []
    if output.get("output_type") == "stream":
        pairs.append((output, "text"))
    for key, value in output.get("data", {}).items():
        if isinstance(value, str):
            pairs.append((output["data"], key))
    if output.get("output_type") == "error":
        pairs.append((output, "evalue"))
    return pairs


def redact_notebook(nb: Any, secret_values: Mapping[str, Any]) -> Any:
    """Replace secret parameter values everywhere: papermill metadata, injected cell, outputs.

    `secret_values` maps each secret parameter's name to its value; a value of None masks
    the parameter in the metadata only.
    """
    nb = copy.deepcopy(nb)
    values = [str(v) for v in secret_values.values() if v not in (None, "")]
    pm = nb.metadata.get("papermill", {})
    for meta_key in ("parameters", "default_parameters"):
        params = pm.get(meta_key)
        if isinstance(params, dict):
            for name in secret_values:
                if name in params:
                    params[name] = REDACTED
    for cell in nb.cells:
        if values and isinstance(cell.get("source"), str):
            cell["source"] = redact(cell["source"], values)
        for out in cell.get("outputs", []):
            for container, key in _texts(out):
                container[key] = redact(container[key], values)
            if out.get("output_type") == "error":
                out["traceback"] = [redact(t, values) for t in out.get("traceback", [])]
            data = out.get("data", {})
            if RESULT_MIME in data and values:
                data[RESULT_MIME] = json.loads(redact(json.dumps(data[RESULT_MIME]), values))
    return nb


def bound_outputs(nb: Any, limit: int = MAX_STREAM_CHARS) -> Any:
    """Cap stream outputs (head and tail kept); the full text is in the step's log files."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out.get("text", "")
                if len(text) > limit:
                    half = limit // 2
                    out["text"] = (text[:half] + f"\n… {len(text) - limit} characters cut; "
                                   "see the full log beside this report …\n" + text[-half:])
    return nb


def summarize(nb: Any, name: str) -> Summary:
    steps: list[dict[str, Any]] = []
    error: dict[str, Any] | None = None
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if RESULT_MIME in data:
                payload = data[RESULT_MIME]
                if isinstance(payload, str):
                    payload = json.loads(payload)
                if payload not in steps:  # a result shown again (e.g. a verdict cell) counts once
                    steps.append(payload)
            if out.get("output_type") == "error" and error is None:
                error = {"cell": index, "ename": out.get("ename"), "evalue": out.get("evalue"),
                         "source": cell.get("source", "")[:500]}
    statuses = [Status(s["status"]) for s in steps if s.get("status") in Status.__members__]
    status = Status.worst(statuses) if statuses else Status.PASS
    if error is not None:
        status = Status.worst([status, Status.ERROR])
    if not steps and error is None:
        status = Status.ERROR
        error = {"cell": None, "ename": "NoResult", "evalue": "the notebook produced no step result"}
    params = dict(nb.metadata.get("papermill", {}).get("parameters", {}))
    return Summary(name, status, steps, error, params)


def export_html(nb: Any, path: Path, hide_code: bool = False) -> None:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=hide_code, exclude_input_prompt=hide_code,
                            exclude_output_prompt=hide_code)
    body, _ = exporter.from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")


def write_reports(executed: Path, name: str, secret_values: Mapping[str, Any],
                  hide_code: bool = False) -> tuple[Summary, dict[str, Path]]:
    """Redact and bound the executed notebook in place, then write .html and .json beside it."""
    nb = nbformat.read(executed, as_version=4)
    nb = bound_outputs(redact_notebook(nb, secret_values))
    nbformat.write(nb, executed)
    summary = summarize(nb, name)
    for key in secret_values:
        if key in summary.parameters:
            summary.parameters[key] = REDACTED
    html_path = executed.with_suffix(".html")
    json_path = executed.with_suffix(".json")
    export_html(nb, html_path, hide_code)
    json_path.write_text(json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    return summary, {"ipynb": executed, "html": html_path, "json": json_path}
