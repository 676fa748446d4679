"""The status board of notebook 00: where you stand in steps 1-3 (and validate), what to do next.

Everything comes from what is on disk, read newest first and only as far as needed:

* the run history (:mod:`runbook_lib.history`): the newest build / boot / validate record of the
  tree (the sandbox work directory, or ``carbide_root_dir``);
* the reports ``runbook run`` wrote (``<report dir>/<UTC stamp>-<notebook>.json``): the newest
  summary of each notebook (step 1 has no history record, so its row comes from there);
* the artifacts present in ``<tree>/pxe/static/blobs/internal/<arch>/``;
* a cheap presence test (no version probe) of the tools the requirements registry marks required.

The newer of a history record and a report wins. The board is information, never a verdict:
:meth:`Board.result` is PASS whenever the board could be rendered, with the next step as its summary.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import history, paths
from .result import RESULT_MIME, Status, StepResult, badge

NEVER = "never run"
SAME_RUN_S = 6 * 3600  # a report stamped this long before a record's end can be the same run


@dataclass(frozen=True)
class StepInfo:
    key: str  # "01", "02", "03", "04"
    notebook: str
    title: str
    history_kind: str | None  # the run history's kind, None for step 1 (no record)


STEPS: tuple[StepInfo, ...] = (
    StepInfo("01", "01_install_build_tools", "Step 1: build tools", None),
    StepInfo("02", "02_build_ipxe_image", "Step 2: build the image", "build"),
    StepInfo("03", "03_pxe_boot_vm", "Step 3: PXE boot", "boot"),
    StepInfo("04", "04_validate", "Validate", "validate"),
)
_BY_NOTEBOOK = {s.notebook: s for s in STEPS}
_REPORT_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<name>[A-Za-z0-9_.-]+)\.json$")
_STATE_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "ERROR": "#9a6700", NEVER: "#6e7781"}


@dataclass
class StepState:
    key: str
    notebook: str
    title: str
    state: str = NEVER  # never run | PASS | FAIL | ERROR
    when: str | None = None  # ISO UTC
    summary: str = ""
    cause: str | None = None
    fix: str | None = None
    source: str = ""  # "run history" | "report"
    report: str | None = None  # the HTML report, when one is known

    @property
    def passed(self) -> bool:
        return self.state == "PASS"

    @property
    def detail(self) -> str:
        if self.state in ("FAIL", "ERROR"):
            return self.cause or self.summary
        return self.summary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso_from_stamp(stamp: str) -> str:
    t = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return t.isoformat().replace("+00:00", "Z")


def _time(iso: str | None) -> datetime:
    t = history.parse_time(iso) if iso else None
    if t is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


# ---- reports ---------------------------------------------------------------------------------
def default_report_dirs(report_dir: str = "", log_dir: str = "") -> list[Path]:
    """Where to look for summaries: `report_dir` when given, else the repository's reports/ and
    ./reports; plus the directory `runbook run` writes this notebook's report to (the parent of
    its `log_dir`, ``<report dir>/<stamp>-00_start_here.logs``)."""
    if report_dir:
        dirs = [Path(report_dir).expanduser()]
    else:
        dirs = [paths.repo_root() / "reports", Path.cwd() / "reports"]
    if log_dir and Path(log_dir).name.endswith(".logs"):
        dirs.append(Path(log_dir).expanduser().parent)
    out: list[Path] = []
    seen: set[str] = set()
    for d in dirs:
        key = os.path.realpath(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _first_bad(data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for step in data.get("steps") or []:
        if isinstance(step, dict) and step.get("status") not in (None, "PASS"):
            return step.get("cause") or step.get("summary"), step.get("fix")
    err = data.get("error")
    if isinstance(err, dict) and (err.get("evalue") or err.get("ename")):
        return f"{err.get('ename') or 'error'}: {err.get('evalue') or ''}".strip(), None
    return None, None


def _summary_text(data: Mapping[str, Any]) -> str:
    steps = [s for s in data.get("steps") or [] if isinstance(s, dict)]
    return str(steps[-1].get("summary") or "") if steps else ""


def newest_reports(dirs: Iterable[Path], notebooks: Iterable[str]) -> tuple[dict[str, StepState], list[str]]:
    """The newest readable summary JSON of each notebook: one directory listing per directory,
    newest first by the file name's stamp, one file read per notebook (more only when the newest
    cannot be read)."""
    wanted = set(notebooks)
    candidates: dict[str, list[tuple[str, Path]]] = {n: [] for n in wanted}
    notes: list[str] = []
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            m = _REPORT_RE.match(name)
            if m and m.group("name") in wanted:
                candidates[m.group("name")].append((m.group("stamp"), d / name))
    out: dict[str, StepState] = {}
    for nb, files in candidates.items():
        files.sort(key=lambda sp: sp[0], reverse=True)
        for stamp, path in files:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                verdict = str(data.get("status") or data.get("verdict") or "")
                if verdict not in Status.__members__:
                    raise ValueError(f"no verdict in {path.name}")
            except (OSError, ValueError, AttributeError) as exc:
                notes.append(f"skipped report {path}: {exc}")
                continue
            info = _BY_NOTEBOOK[nb]
            cause, fix = _first_bad(data) if verdict != "PASS" else (None, None)
            when = data.get("finished") or _iso_from_stamp(stamp)
            html_path = path.with_suffix(".html")
            out[nb] = StepState(info.key, nb, info.title, verdict, str(when), _summary_text(data),
                                cause, fix, "report", str(html_path) if html_path.exists() else None)
            break
    return out, notes


# ---- run history -----------------------------------------------------------------------------
def _report_of_record(rec: history.Record) -> str | None:
    """`runbook run` puts a run's logs at ``<report dir>/<stamp>-<notebook>.logs``: its HTML report
    is beside them."""
    log_dir = (rec.report or {}).get("log_dir")
    if not log_dir or not str(log_dir).endswith(".logs"):
        return None
    html_path = Path(str(log_dir)[:-len(".logs")] + ".html")
    return str(html_path) if html_path.exists() else None


def newest_record(tree: Path, info: StepInfo) -> tuple[StepState | None, list[str]]:
    if info.history_kind is None:
        return None, []
    recs, notes = history.scan(tree, info.history_kind, limit=1)
    if not recs:
        return None, notes
    rec = recs[0]
    cause = None
    if rec.verdict != "PASS":
        ff = rec.first_failure or {}
        cause = str(ff.get("text") or rec.summary or "") or None
    return StepState(info.key, info.notebook, info.title, rec.verdict, rec.finished, rec.summary, cause,
                     None, "run history", _report_of_record(rec)), notes


# ---- tools and artifacts ---------------------------------------------------------------------
def missing_tools(mode: str = "sandbox") -> list[str]:
    """Required commands and files of the requirements registry that are not there (presence
    only: `which` and `exists`, no version probe; step 1 checks versions and privileges)."""
    from .requirements import TOOLS, Needs, for_step, present

    return [req.name for req, required in for_step(TOOLS, Needs(mode=mode))
            if required and req.kind in ("command", "file") and not present(req)]


def artifact_files(directory: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(directory) if e.is_file() and not e.name.startswith("."))
    except OSError:
        return []


# ---- the board -------------------------------------------------------------------------------
def _names(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _cut(text: str | None, limit: int = 160) -> str:
    t = " ".join(str(text or "").split())
    return t if len(t) <= limit else t[:limit - 1] + "…"


def next_step(rows: Mapping[str, StepState], missing: list[str], artifacts: list[str],
              artifacts_dir: Path) -> str:
    """The one thing to do next, in one sentence."""
    s1, s2, s3, s4 = rows["01"], rows["02"], rows["03"], rows["04"]
    if missing:
        n = len(missing)
        return (f"Run step 1: {n} required tool{'s are' if n != 1 else ' is'} missing: {_names(missing)} "
                "(it installs them with install_missing).")
    if s1.state == NEVER:
        return "Run step 1: it has never run here; it checks every tool, privilege and the disk steps 2 and 3 need."
    if not s1.passed:
        return f"Run step 1 again once this is fixed: {_cut(s1.detail)}."
    if s2.state in ("FAIL", "ERROR") and _time(s2.when) >= _time(s3.when):
        return f"Run step 2 again once this is fixed: {_cut(s2.detail)}."
    if not artifacts:
        if s2.passed:
            return f"Run step 2: the artifacts it built are gone from {artifacts_dir}."
        return "Run step 2: no artifacts yet."
    if s3.state == NEVER or _time(s3.when) < _time(s2.when):
        return "Boot them: step 3."
    if not s3.passed:
        return f"Run step 3 again once this is fixed: {_cut(s3.detail)}."
    if s4.state in ("FAIL", "ERROR") and _time(s4.when) >= _time(s3.when):
        return f"Steps 1-3 passed, the last validate did not: {_cut(s4.detail)}."
    return "All three passed: use 04_validate after each change."


@dataclass
class Board:
    rows: list[StepState]
    next_step: str
    tree: str
    tree_kind: str  # sandbox | carbide
    artifacts_dir: str
    artifacts: list[str]
    missing_tools: list[str]
    report_dirs: list[str]
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    handle: Any = field(default=None, repr=False, compare=False)  # IPython DisplayHandle once shown

    def show(self) -> None:
        """Display the board with a display id, so the form can update it in place after a run."""
        from IPython.display import display

        self.handle = display(self, display_id=True)

    def row(self, key: str) -> StepState:
        return next(r for r in self.rows if r.key == key)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "next_step": self.next_step, "tree": self.tree,
                "tree_kind": self.tree_kind, "artifacts_dir": self.artifacts_dir, "artifacts": self.artifacts,
                "missing_tools": self.missing_tools, "report_dirs": self.report_dirs, "notes": self.notes,
                "elapsed_s": round(self.elapsed_s, 4)}

    def result(self) -> StepResult:
        """PASS whenever the board rendered: its content is information, not a verdict."""
        return StepResult("start here: status board", Status.PASS, self.next_step,
                          details={"rows": {r.key: r.state for r in self.rows}})

    # -- rendering --------------------------------------------------------------------------
    def _lines(self) -> list[tuple[str, str, str, str]]:
        out = []
        for r in self.rows:
            when = history.when_text(r.when) if r.when else ""
            out.append((r.title, r.state, when, _cut(r.detail, 100)))
        return out

    def __str__(self) -> str:
        lines = self._lines()
        head = ("step", "status", "when", "detail")
        widths = [max(len(x[i]) for x in [head, *lines]) for i in range(3)]
        text = [f"{head[0]:{widths[0]}}  {head[1]:{widths[1]}}  {head[2]:{widths[2]}}  {head[3]}"]
        text += [f"{a:{widths[0]}}  {b:{widths[1]}}  {c:{widths[2]}}  {d}" for a, b, c, d in lines]
        text.append(f"tree: {self.tree} ({self.tree_kind}); artifacts: "
                    f"{', '.join(self.artifacts) if self.artifacts else 'none'} in {self.artifacts_dir}")
        text.append(f"next: {self.next_step}")
        return "\n".join(text)

    def _state_html(self, state: str) -> str:
        if state in Status.__members__:
            return badge(Status(state))
        return (f'<span style="background:{_STATE_COLOURS[NEVER]};color:#fff;padding:1px 8px;'
                f'border-radius:4px">{html.escape(state)}</span>')

    def html(self, link_base: Path | None = None) -> str:
        """The board as an HTML table (escaped); report links relative to `link_base` (the
        notebook's directory; default the current directory)."""
        base = link_base or Path.cwd()
        rows = []
        for r in self.rows:
            when = html.escape(history.when_text(r.when)) if r.when else ""
            detail = html.escape(_cut(r.detail, 220))
            if r.fix and r.state in ("FAIL", "ERROR"):
                detail += f"<br><b>Fix:</b> <code>{html.escape(_cut(r.fix, 220))}</code>"
            link = ""
            if r.report:
                href = html.escape(os.path.relpath(r.report, base), quote=True)
                link = f'<a class="runbook-board-report" href="{href}" target="_blank">report</a>'
            rows.append(f'<tr class="runbook-board-row" data-step="{r.key}" data-state="{html.escape(r.state)}">'
                        f"<td><b>{html.escape(r.title)}</b></td><td>{self._state_html(r.state)}</td>"
                        f"<td>{when}</td><td>{detail}</td><td>{html.escape(r.source)} {link}</td></tr>")
        arts = (f"{len(self.artifacts)} file(s): {html.escape(_names(self.artifacts, 6))}"
                if self.artifacts else "none yet")
        style = "text-align:left;padding:2px 8px"
        return (f'<div class="runbook-status-board">'
                f'<table class="runbook-status-board-table" style="border-collapse:collapse">'
                f'<thead><tr><th style="{style}">step</th><th style="{style}">status</th>'
                f'<th style="{style}">when</th><th style="{style}">last result / first cause</th>'
                f'<th style="{style}">from</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
                f"<div>Tree: <code>{html.escape(self.tree)}</code> ({html.escape(self.tree_kind)}); "
                f"artifacts in <code>{html.escape(self.artifacts_dir)}</code>: {arts}</div>"
                f'<p class="runbook-next-step"><b>Next:</b> {html.escape(self.next_step)}</p></div>')

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": str(self), "text/html": self.html(), RESULT_MIME: self.result().headline()}


def tree_of(carbide_root_dir: str = "", workdir: str = "") -> tuple[Path, str]:
    if carbide_root_dir:
        return Path(carbide_root_dir).expanduser().resolve(), "carbide"
    return paths.sandbox_workdir(workdir or None), "sandbox"


def board(carbide_root_dir: str = "", workdir: str = "", report_dir: str = "", log_dir: str = "",
          arch: str = "x86_64", report_dirs: Iterable[str | os.PathLike[str]] | None = None) -> Board:
    """Read the board from disk (history, newest summaries, artifacts, tool presence)."""
    t0 = time.perf_counter()
    tree, kind = tree_of(carbide_root_dir, workdir)
    dirs = ([Path(d) for d in report_dirs] if report_dirs is not None
            else default_report_dirs(report_dir, log_dir))
    reports, notes = newest_reports(dirs, [s.notebook for s in STEPS])
    rows: dict[str, StepState] = {}
    for info in STEPS:
        rec, rec_notes = newest_record(tree, info)
        notes += rec_notes
        rep = reports.get(info.notebook)
        chosen = StepState(info.key, info.notebook, info.title)
        for cand in (rec, rep):
            if cand is not None and (chosen.state == NEVER or _time(cand.when) > _time(chosen.when)):
                chosen = cand
        if chosen is rec and rep is not None and rec.report is None and rep.state == rec.state:
            # the same run's report: started (its file stamp) before the record was finished
            gap = (_time(rec.when) - _time(rep.when)).total_seconds()
            if 0 <= gap <= SAME_RUN_S:
                rec.report = rep.report
        rows[info.key] = chosen
    art_dir = paths.artifacts_dir(tree, arch)
    arts = artifact_files(art_dir)
    missing = missing_tools("carbide" if kind == "carbide" else "sandbox")
    sentence = next_step(rows, missing, arts, art_dir)
    return Board(list(rows.values()), sentence, str(tree), kind, str(art_dir), arts, missing,
                 [str(d) for d in dirs], notes, time.perf_counter() - t0)


def from_namespace(ns: Mapping[str, Any]) -> Board:
    """The board for notebook 00's parameters (its globals()); `log_dir`, injected by `runbook run`,
    adds the report directory that run writes to."""
    from .params import START

    values = START.from_namespace(ns)
    return board(values["carbide_root_dir"], values["workdir"], values["report_dir"],
                 str(ns.get("log_dir") or ""))
