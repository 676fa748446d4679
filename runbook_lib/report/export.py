"""Turn an executed notebook into shareable reports: redacted .ipynb, .html and .json.

The JSON summary is rebuilt from the notebook itself (each StepResult leaves a
custom MIME bundle in its output), so a report can be regenerated from any
executed notebook a teammate sends. Papermill's error cell and any cell error
are kept visible; a failing run still gets all three files.

A run is PASS only if it finished: a cell error, a dead kernel, an interrupt or a
cell that never ran makes it ERROR, unless a FAIL result shown before the stop
explains it (then FAIL). How papermill's execution ended (:class:`RunFailure`) is
kept in the notebook's metadata, so `runbook report` reaches the same verdict.

The summary JSON is a versioned record (:data:`SUMMARY_SCHEMA_VERSION`), described by the JSON
Schema shipped in the package (:func:`summary_schema_path`, draft 2020-12): notebook, verdict
(``status``) and exit code, started/finished/duration (papermill's own times), host facts (distro,
kernel, accel used and why, qemu/mkosi/iPXE versions), the parameters given and the effective ones
(secrets masked), every step part's status/summary/cause/fix (and seconds when the step measured
them), the first failure, artifacts (name, size, sha256), boot milestones with times, and the paths
of the report and its logs. The run's facts are gathered once by :mod:`.run_facts` when `runbook
run` writes the reports and kept in the notebook's metadata (``runbook.facts``), so `runbook
report` rebuilds the same record. Version rule: a new optional key bumps the minor number; a key
removed, renamed or changed in meaning bumps the major number.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import nbformat

from ..result import RESULT_MIME, Status
from .sanitize import REDACTED, redact, redact_tree

SUMMARY_SCHEMA_VERSION = "1.0"
FACTS_KEY = "facts"  # nb.metadata["runbook"][FACTS_KEY]: what run_facts.gather() found
SUMMARY_SCHEMA_ID = "urn:carbide-ipxe-runbooks:run-summary:1"

MAX_STREAM_CHARS = 200_000
PM_ERROR_TAG = "papermill-error-cell-tag"
FAILURE_TAG = "runbook-run-failure"  # the banner cell this module adds when papermill adds none
_BINARY_MIME_PREFIXES = ("image/", "application/pdf", "video/", "audio/")


@dataclass(frozen=True)
class RunFailure:
    """How papermill's execution ended when it did not finish cleanly."""

    kind: str  # "cell error", "kernel died", "interrupted", "timeout", "papermill"
    ename: str
    evalue: str

    @classmethod
    def from_exception(cls, exc: BaseException) -> "RunFailure":
        from nbclient.exceptions import CellTimeoutError, DeadKernelError
        from papermill.exceptions import PapermillExecutionError

        if isinstance(exc, PapermillExecutionError):
            kind = "interrupted" if exc.ename == "KeyboardInterrupt" else "cell error"
            return cls(kind, exc.ename, exc.evalue)
        if isinstance(exc, DeadKernelError):
            return cls("kernel died", "DeadKernelError",
                       f"kernel died (killed, out of memory, or os._exit): {exc}")
        if isinstance(exc, KeyboardInterrupt):
            return cls("interrupted", "KeyboardInterrupt", "interrupted (Ctrl-C)")
        if isinstance(exc, CellTimeoutError):
            return cls("timeout", "CellTimeoutError", str(exc).strip().splitlines()[0])
        return cls("papermill", type(exc).__name__, str(exc))

    def describe(self) -> str:
        return f"{self.kind}: {self.ename}: {self.evalue}"


def summary_schema_path() -> Path:
    """The JSON Schema (draft 2020-12) of the summary JSON, shipped as package data."""
    return Path(__file__).with_name("schemas") / "run-summary.schema.json"


def summary_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(summary_schema_path().read_text(encoding="utf-8"))
    return data


@dataclass
class Summary:
    notebook: str
    status: Status
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    run_failure: dict[str, Any] | None = None
    title: str | None = None
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    effective_parameters: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # run_facts.gather(), {} when not gathered
    paths: dict[str, str | None] = field(default_factory=dict)

    def first_failure(self) -> dict[str, Any] | None:
        """The earliest step part that is not PASS, else the error that stopped the notebook."""
        bad = next((s for s in self.steps if s.get("status") != Status.PASS.value), None)
        if bad is not None:
            return {"step": bad.get("step"), "status": bad.get("status"), "summary": bad.get("summary"),
                    "cause": bad.get("cause"), "fix": bad.get("fix")}
        if self.error is not None and self.status is not Status.PASS:
            cell = self.error.get("cell")
            return {"step": "notebook" + (f" (cell {cell})" if cell is not None else ""),
                    "status": self.status.value, "summary": "the notebook did not finish",
                    "cause": f"{self.error.get('ename')}: {self.error.get('evalue')}",
                    "fix": "open the report: the cell that stopped is marked; rerun after fixing its cause"}
        return None

    def to_dict(self) -> dict[str, Any]:
        durations = self.facts.get("durations") or {}
        return {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "notebook": self.notebook,
            "title": self.title,
            "status": self.status.value,
            "exit_code": self.status.exit_code,
            "started": self.started,
            "finished": self.finished,
            "duration_s": self.duration_s,
            "steps": [{**s, "duration_s": durations.get(s.get("step"))} for s in self.steps],
            "first_failure": self.first_failure(),
            "error": self.error,
            "run_failure": self.run_failure,
            "parameters": self.parameters,
            "effective_parameters": self.effective_parameters,
            "host": self.facts.get("host"),
            "artifacts": self.facts.get("artifacts") or [],
            "boot": self.facts.get("boot"),
            "paths": {"ipynb": None, "html": None, "json": None, **self.paths,
                      "log_dir": self.facts.get("log_dir") or self.parameters.get("log_dir")},
            "logs": self.facts.get("logs") or [],
            "history_records": self.facts.get("history_records") or [],
            "notes": self.facts.get("notes") or [],
        }


def _secret_texts(secret_values: Mapping[str, Any]) -> list[str]:
    return [str(v) for v in secret_values.values() if v not in (None, "")]


def _redact_output(out: Any, values: list[str]) -> None:
    """Redact every text of one output in place (binary data such as PNGs is left alone)."""
    if out.get("output_type") == "stream":
        out["text"] = redact(out.get("text", ""), values)
    data = out.get("data", {})
    for mime, value in list(data.items()):
        if not mime.startswith(_BINARY_MIME_PREFIXES):
            data[mime] = nbformat.from_dict(redact_tree(value, values))
    if out.get("output_type") == "error":
        out["evalue"] = redact(out.get("evalue", ""), values)
        out["traceback"] = [redact(t, values) for t in out.get("traceback", [])]


def redact_notebook(nb: Any, secret_values: Mapping[str, Any]) -> Any:
    """Redact secrets everywhere: papermill metadata, cell sources (the injected cell) and outputs.

    `secret_values` maps each secret parameter's name to its value; a value of None masks
    the parameter in the metadata only. Every other string is scanned by
    :func:`sanitize.redact` (value by value: never the JSON serialization of a structure).
    """
    nb = copy.deepcopy(nb)
    values = _secret_texts(secret_values)
    pm = nb.metadata.get("papermill", {})
    for meta_key in ("parameters", "default_parameters"):
        params = pm.get(meta_key)
        if isinstance(params, dict):
            for name in secret_values:
                if name in params:
                    params[name] = REDACTED
    nb.metadata = nbformat.from_dict(redact_tree(nb.metadata, values))
    for cell in nb.cells:
        if isinstance(cell.get("source"), str):
            cell["source"] = redact(cell["source"], values, code=True)
        for out in cell.get("outputs", []):
            _redact_output(out, values)
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


def record_failure(nb: Any, failure: RunFailure) -> None:
    """Keep how the run ended in the notebook; show it on top unless papermill's banner does."""
    nb.metadata.setdefault("runbook", {})["run_failure"] = asdict(failure)
    tagged = [c for c in nb.cells if {PM_ERROR_TAG, FAILURE_TAG} & set(c.metadata.get("tags", []))]
    if not tagged:
        banner = nbformat.v4.new_markdown_cell(
            f"**The run did not finish: {failure.kind}** ({failure.ename}: {failure.evalue}). "
            "Results below are partial.", metadata={"tags": [FAILURE_TAG]})
        banner.pop("id", None)
        if nb.cells and "id" in nb.cells[0]:  # cell ids exist from nbformat 4.5 on
            banner["id"] = FAILURE_TAG
        nb.cells.insert(0, banner)


def _is_clean_exit(out: Any) -> bool:
    """sys.exit(0) / raise SystemExit: papermill does not count it as an error."""
    return out.get("ename") == "SystemExit" and out.get("evalue") in ("", "0", "None")


def _did_not_run(cell: Any) -> bool:
    return (cell.get("cell_type") == "code" and cell.get("execution_count") is None
            and bool(str(cell.get("source", "")).strip()))


def _first_stop(nb: Any) -> tuple[int, int] | None:
    """(index of the first code cell that did not finish, how many code cells did not run)."""
    idle = [i for i, cell in enumerate(nb.cells) if _did_not_run(cell)]
    return (idle[0], len(idle)) if idle else None


def _results(nb: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """Step results in order (a result shown again counts once) and the cells holding a FAIL."""
    steps: list[dict[str, Any]] = []
    fail_cells: list[int] = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            payload = out.get("data", {}).get(RESULT_MIME)
            if payload is None:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            if payload.get("status") == Status.FAIL.value:
                fail_cells.append(index)
            if payload not in steps:
                steps.append(payload)
    return steps, fail_cells


def _cell_error(nb: Any) -> tuple[dict[str, Any] | None, int | None]:
    """The first error output (a clean sys.exit excluded), and the cell of a clean sys.exit."""
    clean_exit = None
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            if _is_clean_exit(out):
                clean_exit = index if clean_exit is None else clean_exit
                continue
            return ({"cell": index, "ename": out.get("ename"), "evalue": out.get("evalue"),
                     "source": cell.get("source", "")[:500]}, clean_exit)
    return None, clean_exit


def _stop_error(nb: Any, failure: RunFailure | None, clean_exit: int | None) -> dict[str, Any] | None:
    """Why the run stopped when no cell shows an error: a dead kernel, an interrupt, sys.exit(0)."""
    stop = _first_stop(nb)
    if failure is None and stop is None:
        return None
    cell = stop[0] if stop else None
    source = nb.cells[cell].get("source", "")[:500] if cell is not None else ""
    if failure is not None:
        where = f" (cell {cell})" if cell is not None else ""
        return {"cell": cell, "ename": failure.ename, "evalue": failure.evalue + where,
                "source": source}
    assert stop is not None
    if clean_exit is not None and clean_exit < stop[0]:
        return {"cell": clean_exit, "ename": "SystemExit",
                "evalue": f"sys.exit(0) stopped the notebook early: {stop[1]} later cell(s) did "
                          "not run", "source": nb.cells[clean_exit].get("source", "")[:500]}
    return {"cell": cell, "ename": "NotFinished",
            "evalue": f"cell {cell} did not finish (the kernel died or the run was stopped): "
                      f"{stop[1]} cell(s) did not run", "source": source}


def stored_failure(nb: Any) -> RunFailure | None:
    data = nb.metadata.get("runbook", {}).get("run_failure")
    return RunFailure(**{k: str(data.get(k, "")) for k in ("kind", "ename", "evalue")}) if data else None


def summarize(nb: Any, name: str, failure: RunFailure | None = None) -> Summary:
    failure = failure or stored_failure(nb)
    steps, fail_cells = _results(nb)
    error, clean_exit = _cell_error(nb)
    if error is None:
        error = _stop_error(nb, failure, clean_exit)
    statuses = [Status(s["status"]) for s in steps if s.get("status") in Status.__members__]
    status = Status.worst(statuses)
    if error is not None or failure is not None:
        stop_cell = error.get("cell") if error else None
        interrupted = ((failure is not None and failure.kind == "interrupted")
                       or (error is not None and error.get("ename") == "KeyboardInterrupt"))
        explained = (status is Status.FAIL and not interrupted
                     and any(stop_cell is None or c <= stop_cell for c in fail_cells))
        status = Status.FAIL if explained else Status.ERROR
    elif not steps:
        status = Status.ERROR
        error = {"cell": None, "ename": "NoResult", "evalue": "the notebook produced no step result"}
    pm = nb.metadata.get("papermill", {})
    params = dict(pm.get("parameters", {}))
    facts = dict(nb.metadata.get("runbook", {}).get(FACTS_KEY) or {})
    registered = str(facts.get("notebook") or name)  # a shared copy may have been renamed
    spec = _spec(registered)
    started, finished = _iso(pm.get("start_time")), _iso(pm.get("end_time"))
    duration = pm.get("duration")
    return Summary(name, status, steps, error, params, asdict(failure) if failure else None,
                   title=spec.title if spec is not None else None, started=started, finished=finished,
                   duration_s=round(float(duration), 3) if isinstance(duration, (int, float)) else None,
                   effective_parameters=effective_parameters(nb, registered), facts=facts)



def _spec(name: str) -> Any:
    from ..params import ParamError, resolve

    try:
        return resolve(name)
    except ParamError:
        return None


def _iso(value: Any) -> str | None:
    """papermill's '2026-11-26T18:01:28.751062+00:00' as '2026-11-26T18:01:28.751062Z'."""
    if not value:
        return None
    return str(value).replace("+00:00", "Z")


def effective_parameters(nb: Any, name: str) -> dict[str, Any]:
    """What the notebook ran with: the registered notebook's defaults (else papermill's record of
    the parameters cell) overlaid with the values given; secret parameters masked."""
    pm = nb.metadata.get("papermill", {})
    given = dict(pm.get("parameters", {}))
    spec = _spec(name)
    if spec is not None:
        out = {**spec.defaults(), **given}
        for p in spec.params:
            if p.secret and out.get(p.name) not in (None, ""):
                out[p.name] = REDACTED
    else:
        out = {**dict(pm.get("default_parameters") or {}), **given}
    return json.loads(json.dumps(out, default=str))


def gather_facts(nb: Any, name: str) -> dict[str, Any]:
    """Gather this run's facts (:mod:`.run_facts`) and keep them in the notebook's metadata."""
    from .run_facts import gather

    pm = nb.metadata.get("papermill", {})
    params = effective_parameters(nb, name)
    facts = gather(nb, pm.get("parameters", {}).get("log_dir"), _iso(pm.get("start_time")), params)
    facts["notebook"] = name
    nb.metadata.setdefault("runbook", {})[FACTS_KEY] = facts
    return facts


def export_html(nb: Any, path: Path, hide_code: bool = False) -> None:
    path.write_text(render_html(nb, hide_code), encoding="utf-8")


# nbconvert's lab template without anything fetched from the network (require.js, MathJax,
# mermaid and the widget manager come from CDNs): a report opens offline, attached to a bug,
# without console errors. The summary card goes first in <main>; embedded logs go last.
_TEMPLATE_NAME = "runbook_report.html.j2"
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block extra_css -%}<style type="text/css">{{ resources.runbook_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}{{ resources.runbook_card }}{%- endblock body_header -%}
{%- block body_footer -%}{{ resources.runbook_tail }}{{ super() }}{%- endblock body_footer -%}
"""


def render_html(nb: Any, hide_code: bool = False, summary: Mapping[str, Any] | None = None,
                html_path: Path | None = None, embed_logs: bool = False,
                secrets: list[str] | None = None) -> str:
    """The HTML report: nbconvert's lab page (no external scripts) opening with the summary card
    (:mod:`.card`; built from `summary` = the summary JSON's dict, else from the notebook), long
    tables folded, and with `embed_logs` the run's serial and request logs inside (:mod:`.embed`).
    `html_path` is where the page goes: links to the saved logs are relative to it."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    from . import card, embed

    page = copy.deepcopy(nb)
    anchors = card.prepare_outputs(page)
    if summary is None:
        summary = summarize(nb, str(nb.metadata.get("runbook", {}).get(FACTS_KEY, {}).get("notebook")
                                    or (html_path.stem if html_path else "notebook"))).to_dict()
    paths = dict(summary.get("paths") or {})
    log_dir = embed.find_log_dir(paths.get("log_dir"), html_path)
    if log_dir is not None:
        summary = {**summary, "paths": {**paths, "log_dir": str(log_dir)}}
    embedded = embed.embed_logs(log_dir, secrets or ()) if embed_logs else []
    exporter = HTMLExporter(extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                            template_file=_TEMPLATE_NAME, exclude_input=hide_code,
                            exclude_input_prompt=hide_code, exclude_output_prompt=hide_code)
    resources = {"runbook_css": card.CARD_CSS, "runbook_card": card.CARD_PLACEHOLDER,
                 "runbook_tail": embed.section_html(embedded)}
    body, _ = exporter.from_notebook_node(page, resources=resources)
    body = str(body)
    sections = [(i, t) for i, t in card.headings(body)]
    if embedded:
        sections.append((embed.SECTION_ID, "Logs embedded in this report"))
    html_card = card.card_html(summary, html_path=html_path, sections=sections, result_anchors=anchors,
                               embedded=[(e.anchor, e.name) for e in embedded])
    return body.replace(card.CARD_PLACEHOLDER, html_card, 1)


def _write_all(files: Mapping[Path, str]) -> None:
    """Write every file or none: each goes to a private temp file beside it, then all are renamed.

    The last file is renamed last; if any rename fails, the files already renamed are removed.
    """
    umask = os.umask(0)
    os.umask(umask)
    temps: dict[Path, Path] = {}
    placed: list[Path] = []
    try:
        for path, text in files.items():
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps[path] = Path(name)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                os.fchmod(fh.fileno(), 0o666 & ~umask)
        for path, temp in temps.items():
            os.replace(temp, path)
            placed.append(path)
    except BaseException:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        for path in placed:
            path.unlink(missing_ok=True)
        raise


def write_reports(executed: Path, name: str, secret_values: Mapping[str, Any],
                  hide_code: bool = False, *, output: Path | None = None,
                  failure: RunFailure | None = None, gather: bool = False,
                  embed_logs: bool = False) -> tuple[Summary, dict[str, Path]]:
    """Redact and bound an executed notebook, then write it with .html and .json beside it.

    The reports go to `output` (default: `executed`, rewritten in place), all three or none:
    redaction and export happen in memory, each file is written atomically, and on any error
    nothing is left at the destination (the caller removes a private `executed`). `gather`
    (`runbook run`: the run just happened on this machine) collects the run's facts first
    (:func:`gather_facts`); otherwise the facts already kept in the notebook are used.
    """
    nb = nbformat.read(executed, as_version=4)
    if failure is not None:
        record_failure(nb, failure)
    if gather:
        gather_facts(nb, name)
    nb = bound_outputs(redact_notebook(nb, secret_values))
    summary = summarize(nb, name)
    for key in secret_values:
        if key in summary.parameters:
            summary.parameters[key] = REDACTED
    target = output or executed
    paths = {"ipynb": target, "html": target.with_suffix(".html"), "json": target.with_suffix(".json")}
    summary.paths = {k: str(v.absolute()) for k, v in paths.items()}
    summary_dict = redact_tree(summary.to_dict(), _secret_texts(secret_values))
    summary_json = json.dumps(summary_dict, indent=2, default=str) + "\n"
    page = render_html(nb, hide_code, summary=summary_dict, html_path=paths["html"], embed_logs=embed_logs,
                       secrets=_secret_texts(secret_values))
    # the notebook is renamed last: a report dir never holds a notebook without its .html/.json
    _write_all({paths["json"]: summary_json, paths["html"]: page, paths["ipynb"]: nbformat.writes(nb)})
    return summary, paths

