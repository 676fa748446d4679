"""Widgets: step 1's install panel, and notebook 00's form (a Run button per step).

The install panel of step 1: tick packages, press Install.

It calls the same :func:`runbook_lib.tools.install_packages` that the
`install_missing` parameter drives under papermill, then re-checks and shows the
new table. Outside a live kernel (papermill, nbconvert) it only shows what it
would offer, since nobody can press a button there.
"""

from __future__ import annotations

import html as _html
import json as _json
import os as _os
import threading as _threading
import time as _time
from dataclasses import dataclass as _dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from . import tools
from .live import LiveTail
from .params import STEP1, STEP2, STEP3, STEP4, NotebookSpec, Param, ParamError


def install_panel(result: "tools.Step1Result", log_dir: Path | None = None) -> Any:
    import ipywidgets as w
    from IPython.display import HTML, display

    from .report.render import table_html

    report = result.report
    pkgs = report.installable_packages() if report else []
    if report is None or not pkgs:
        return w.HTML("<i>Nothing to install: every tool with a Debian package is present.</i>")
    boxes = [w.Checkbox(value=True, description=p, indent=False) for p in pkgs]
    button = w.Button(description="Install selected", button_style="primary", icon="download")
    dry = w.Checkbox(value=False, description="dry run (show the command only)", indent=False)
    out = w.Output()

    def on_click(_: Any) -> None:
        chosen = [b.description for b in boxes if b.value]
        button.disabled = True
        with out:
            out.clear_output()
            tail = LiveTail("apt-get")
            outcome = tools.install_packages(
                chosen, dry_run=dry.value, on_line=tail,
                log_path=(log_dir / "apt-install.log") if log_dir else None)
            tail.close()
            print(f"{outcome.status.value}: {outcome.message}")
            if outcome.command:
                print(f"command: {outcome.command}")
            if not dry.value:
                again = tools.check_tools(report.mode)
                display(HTML(table_html(again.frame())))
        button.disabled = False

    button.on_click(on_click)
    return w.VBox([w.HTML("<b>Missing Debian packages</b> (one apt transaction, elevated with "
                          "sudo when not root):"), w.HBox(boxes), dry, button, out])


# ---- notebook 00: the form ----------------------------------------------------------------------
# A form built from the typed parameters (params.py), one panel per step with a Run button that
# runs the step's notebook in the background (runbook_lib.launcher), a progress bar, the live
# verdict, a Cancel button, and at the end a link to the report and the results table. Every
# widget carries stable CSS classes (runbook-...) so a browser test can find it.

FORM_STEPS: tuple[tuple[str, str, NotebookSpec], ...] = (
    ("01", "Step 1: build tools", STEP1),
    ("02", "Step 2: build the image", STEP2),
    ("03", "Step 3: PXE boot", STEP3),
    ("04", "Validate", STEP4),
)
SHARED = ("carbide_root_dir", "workdir")  # one box for every step
NOT_IN_FORM = frozenset({"log_dir"})  # set by the runner: beside the report
RUN_LABELS = {"01": "Run step 1", "02": "Run step 2", "03": "Run step 3", "04": "Run validate"}
_INT_LIMIT = 2**31 - 1
_VERDICT_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "ERROR": "#9a6700"}


def param_widget(p: Param, value: Any = None) -> Any:
    """One input for one parameter: choices -> Dropdown, bool -> Checkbox, int/float -> bounded
    number box, secret -> Password, str -> Text. Its description is the parameter's name, its
    tooltip the help, its CSS class ``runbook-param-<name>``."""
    import ipywidgets as w

    v = p.default if value is None else value
    common: dict[str, Any] = {"description": p.name, "tooltip": p.help,
                              "style": {"description_width": "14em"},
                              "layout": w.Layout(width="42em")}
    widget: Any
    if p.choices:
        widget = w.Dropdown(options=list(p.choices), value=v, **common)
    elif p.type is bool:
        widget = w.Checkbox(value=bool(v), indent=True, **common)
    elif p.type is int:
        lo = int(p.minimum) if p.minimum is not None else -_INT_LIMIT
        hi = int(p.maximum) if p.maximum is not None else _INT_LIMIT
        widget = w.BoundedIntText(value=int(v), min=lo, max=hi, **common)
    elif p.type is float:
        lo_f = float(p.minimum) if p.minimum is not None else -1e12
        hi_f = float(p.maximum) if p.maximum is not None else 1e12
        widget = w.BoundedFloatText(value=float(v), min=lo_f, max=hi_f, **common)
    elif p.secret:
        widget = w.Password(value=str(v), **common)
    else:
        widget = w.Text(value=str(v), placeholder="(empty)" if not v else "", **common)
    widget.add_class("runbook-param")
    widget.add_class(f"runbook-param-{p.name}")
    return widget


@_dataclass
class RootCheck:
    ok: bool  # False: not a carbide tree (nothing can run on it)
    message: str
    fix: str = ""
    warning: bool = False  # a carbide tree, but step 2 cannot resolve its task as set

    @property
    def level(self) -> str:
        return "bad" if not self.ok else "warn" if self.warning else "ok"

    def html(self) -> str:
        colour = {"ok": "#1a7f37", "warn": "#9a6700", "bad": "#cf222e"}[self.level]
        fix = f"<br><b>Fix:</b> {_html.escape(self.fix)}" if self.fix and self.level != "ok" else ""
        return (f'<span class="runbook-root-check" data-ok="{str(self.ok).lower()}" data-level="{self.level}" '
                f'style="color:{colour}">{_html.escape(self.message)}</span>{fix}')


def check_root(text: str, arch: str = "x86_64", workdir: str = "", task: str = "") -> RootCheck:
    """Is `text` a carbide tree step 2 can build? Step 1's identity check of "your tree" (not a
    tree: ok=False), then step 2's target resolution with `task` (Makefile.toml readable, the task
    defined; when not: a warning naming the task to set)."""
    from .build import target
    from .build.checkout import _identity
    from .paths import artifacts_dir, sandbox_workdir

    raw = text.strip()
    if not raw:
        return RootCheck(True, f"empty: the embedded sandbox, built in {sandbox_workdir(workdir or None)}")
    root = Path(raw).expanduser()
    row, _ = _identity(root)
    if row.status != "ok":
        return RootCheck(False, f"not a carbide tree: {row.found}", row.fix)
    try:
        tgt = target.resolve(raw, arch, "full", task=task)
    except target.TargetError as exc:
        return RootCheck(True, f"a carbide tree, but step 2 cannot build it as set: {exc.cause}",
                         f"{exc.fix} (step 2's task box)", warning=True)
    return RootCheck(True, f"carbide checkout: step 2 runs {' '.join(tgt.tasks)} "
                           f"({len(tgt.plan.steps)} tasks in its plan); artifacts land in "
                           f"{artifacts_dir(tgt.root, arch)}")


class Debounce:
    """Call `fn(*args)` once typing pauses for `delay` seconds (each new call restarts the wait)."""

    def __init__(self, delay: float, fn: Callable[..., None]) -> None:
        self.delay = delay
        self.fn = fn
        self._timer: _threading.Timer | None = None
        self._args: tuple[Any, ...] = ()
        self._lock = _threading.Lock()
        self._running = 0  # fn calls in progress (pending until the check has finished)
        self.calls = 0  # how many times fn really ran

    def __call__(self, *args: Any) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._args = args
            self._timer = _threading.Timer(self.delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer, args = None, self._args
            self._running += 1
        try:
            self.calls += 1
            self.fn(*args)
        finally:
            with self._lock:
                self._running -= 1

    @property
    def pending(self) -> bool:
        """A check is waiting for typing to pause, or running."""
        return self._timer is not None or self._running > 0

    def flush(self) -> None:
        """Run a pending call now (tests; a Run press while the check is still waiting)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            self.calls += 1
            self.fn(*self._args)


def _result_table(summary_json: str | None) -> str:
    """The results of a finished run from its summary JSON: one row per result shown."""
    if not summary_json:
        return ""
    try:
        data = _json.loads(Path(summary_json).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    rows = []
    for s in data.get("steps") or []:
        st = str(s.get("status", ""))
        colour = _VERDICT_COLOURS.get(st, "#6e7781")
        rows.append(f'<tr data-status="{_html.escape(st)}"><td style="color:{colour}"><b>{_html.escape(st)}</b></td>'
                    f"<td>{_html.escape(str(s.get('step', '')))}</td>"
                    f"<td>{_html.escape(str(s.get('summary', '')))}</td>"
                    f"<td>{_html.escape(str(s.get('cause') or ''))}</td>"
                    f"<td>{_html.escape(str(s.get('fix') or ''))}</td></tr>")
    if not rows:
        err = data.get("error") or {}
        rows.append(f"<tr data-status=\"ERROR\"><td><b>ERROR</b></td><td></td><td>no result</td>"
                    f"<td>{_html.escape(str(err.get('evalue') or ''))}</td><td></td></tr>")
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>'
                   for h in ("status", "step", "summary", "first cause", "fix"))
    return (f'<table class="runbook-run-result"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


class StepPanel:
    """The inputs, Run / Cancel buttons, progress bar, verdict and result of one step."""

    def __init__(self, form: "StartForm", key: str, title: str, spec: NotebookSpec) -> None:
        import ipywidgets as w

        self.form, self.key, self.title, self.spec = form, key, title, spec
        self.inputs = {p.name: param_widget(p) for p in spec.params
                       if p.name not in NOT_IN_FORM and p.name not in SHARED}
        self.run_button = w.Button(description=RUN_LABELS[key], button_style="primary", icon="play",
                                   tooltip=f"run {spec.name} in the background (runbook run)")
        self.run_button.add_class("runbook-run")
        self.run_button.add_class(f"runbook-run-{key}")
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop",
                                      disabled=True, tooltip="stop this run (its process group)")
        self.cancel_button.add_class("runbook-cancel")
        self.cancel_button.add_class(f"runbook-cancel-{key}")
        self.progress = w.IntProgress(value=0, min=0, max=100, description="", bar_style="info",
                                      layout=w.Layout(width="30em"))
        self.progress.add_class(f"runbook-progress-{key}")
        self.verdict = w.HTML(self._verdict_html("not started", None))
        self.verdict.add_class(f"runbook-verdict-{key}")
        self.tail = w.HTML("")
        self.tail.add_class(f"runbook-tail-{key}")
        self.result = w.HTML("")
        self.result.add_class(f"runbook-result-{key}")
        self.run: Any = None  # the launcher.StepRun
        self.last: Any = None  # the last launcher.Progress shown
        self._last_paint = 0.0
        self.run_button.on_click(lambda _b: self.start())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.box = w.VBox([w.HTML(f"<i>{_html.escape(spec.description)}</i>"),
                           *self.inputs.values(),
                           w.HBox([self.run_button, self.cancel_button, self.progress]),
                           self.verdict, self.tail, self.result])
        self.box.add_class("runbook-step")
        self.box.add_class(f"runbook-step-{key}")

    @staticmethod
    def _verdict_html(state: str, verdict: str | None) -> str:
        v = verdict or ""
        colour = _VERDICT_COLOURS.get(v, "#6e7781")
        badge = (f' <b class="runbook-verdict" data-verdict="{v}" style="color:{colour}">{v}</b>' if v else
                 ' <b class="runbook-verdict" data-verdict=""></b>')
        return f'<span class="runbook-run-state" data-state="{_html.escape(state.split(" ")[0])}">' \
               f"{_html.escape(state)}</span>{badge}"

    def values(self) -> dict[str, Any]:
        """This step's parameters that differ from their defaults (shared boxes included)."""
        out: dict[str, Any] = {}
        for p in self.spec.params:
            if p.name in NOT_IN_FORM:
                continue
            widget = self.form.shared.get(p.name) if p.name in SHARED else self.inputs.get(p.name)
            if widget is None:
                continue
            value = widget.value
            if p.type is str:
                value = str(value).strip()
            if value != p.default:
                out[p.name] = value
        return out

    def start(self) -> Any:
        from . import launcher

        if self.run is not None and self.run.running():
            self.verdict.value = self._verdict_html(f"already running (pid {self.run.pid})", None)
            return self.run
        self.form.root_debounce.flush()
        root = self.form.root_check
        if root is not None and not root.ok:
            self.verdict.value = self._verdict_html(f"not started: carbide_root_dir: {root.message}", "ERROR")
            return None
        try:
            values = self.values()
            self.spec.validate(values)
            self.result.value = self.tail.value = ""
            self.progress.value, self.progress.bar_style = 0, "info"
            self.run = launcher.launch(self.spec.name, values, report_dir=self.form.report_dir,
                                       on_update=self._update)
        except (ParamError, launcher.AlreadyRunning) as exc:
            self.verdict.value = self._verdict_html(f"not started: {exc}", "ERROR")
            return None
        return self.run

    def cancel(self) -> Any:
        if self.run is None or not self.run.running():
            return None
        self.cancel_button.disabled = True
        return self.run.cancel()

    def _update(self, p: Any) -> None:
        now = _time.monotonic()
        if not p.done and now - self._last_paint < self.form.paint_interval:
            return
        self._last_paint = now
        self.last = p
        self.progress.value = int(round(p.fraction * 100))
        self.verdict.value = self._verdict_html(p.line(), p.verdict)
        self.tail.value = ("<pre style='max-height:12em;overflow:auto;font-size:85%'>"
                           + _html.escape("\n".join(p.tail)) + "</pre>") if p.tail and not p.done else ""
        running = not p.done
        self.run_button.disabled = running
        self.cancel_button.disabled = not running or p.state == "cancelling"
        if p.done:
            self.progress.bar_style = {"PASS": "success", "FAIL": "danger"}.get(p.verdict or "", "warning")
            self.result.value = self._result_html(p)
            self.form.refresh_board()

    def _result_html(self, p: Any) -> str:
        parts = []
        report = p.reports.get("html")
        if report:
            href = _html.escape(_os.path.relpath(report, self.form.link_base), quote=True)
            parts.append(f'<div>Report: <a class="runbook-report-link" href="{href}" target="_blank">'
                         f"{_html.escape(Path(report).name)}</a> (and the .ipynb and .json beside it)</div>")
        elif p.error:
            parts.append(f"<div>{_html.escape(p.error)}</div>")
        parts.append(_result_table(p.reports.get("json")))
        return "".join(parts)


class StartForm:
    """Notebook 00's form: the status board, the tree boxes and one panel per step."""

    def __init__(self, carbide_root_dir: str = "", workdir: str = "", report_dir: str = "",
                 board: Any = None, debounce_s: float = 0.4, link_base: str | Path | None = None,
                 paint_interval: float = 0.3) -> None:
        import ipywidgets as w

        from .paths import repo_root
        from .params import START

        self.report_dir = Path(report_dir).expanduser() if report_dir else repo_root() / "reports"
        self.link_base = str(link_base or Path.cwd())
        self.paint_interval = paint_interval
        self.shared = {name: param_widget(START.param(name)) for name in SHARED}
        self.shared["carbide_root_dir"].value = carbide_root_dir
        self.shared["workdir"].value = workdir
        self.shared["carbide_root_dir"].continuous_update = True
        self.root_status = w.HTML("")
        self.root_status.add_class("runbook-root-status")
        self.root_check: RootCheck | None = None
        self.root_debounce = Debounce(debounce_s, self._check_root)
        self.shared["carbide_root_dir"].observe(lambda ch: self.root_debounce(ch["new"]), names="value")
        self.board = board
        self.board_html = w.HTML(board.html(Path(self.link_base)) if board is not None else "")
        self.board_html.add_class("runbook-board")
        self.panels = {key: StepPanel(self, key, title, spec) for key, title, spec in FORM_STEPS}
        self.panels["02"].inputs["task"].observe(
            lambda _ch: self.root_debounce(self.shared["carbide_root_dir"].value), names="value")
        self._check_root(carbide_root_dir)
        acc = w.Accordion(children=[p.box for p in self.panels.values()],
                          titles=tuple(p.title for p in self.panels.values()), selected_index=0)
        acc.add_class("runbook-steps")
        tree = w.VBox([w.HTML("<b>Your tree</b> (every step uses these)"), self.shared["carbide_root_dir"],
                       self.root_status, self.shared["workdir"]])
        tree.add_class("runbook-tree")
        # a board already shown by its own cell (Board.show) is updated there; else it is part of the form
        shown = board is not None and getattr(board, "handle", None) is not None
        self.widget = w.VBox([tree, acc] if shown else [self.board_html, tree, acc])
        self.widget.add_class("runbook-start-form")

    def _check_root(self, text: str) -> None:
        panels = getattr(self, "panels", {})
        task = str(panels["02"].inputs["task"].value) if "02" in panels else ""
        try:
            self.root_check = check_root(text, workdir=str(self.shared["workdir"].value), task=task)
        except Exception as exc:  # an unreadable tree must not break the form
            self.root_check = RootCheck(False, f"could not check: {type(exc).__name__}: {exc}")
        self.root_status.value = self.root_check.html()
        if self.root_check.ok and getattr(self, "panels", None):
            self.refresh_board()  # the board of the tree now named

    def refresh_board(self) -> None:
        from . import status

        old = self.board
        try:
            new = status.board(str(self.shared["carbide_root_dir"].value).strip(),
                               str(self.shared["workdir"].value).strip(),
                               report_dirs=[self.report_dir, *(old.report_dirs if old else [])])
        except Exception as exc:  # the board is information: never break the form over it
            self.board_html.value = f"<i>status board not refreshed: {_html.escape(str(exc))}</i>"
            return
        self.board = new
        self.board_html.value = new.html(Path(self.link_base))
        handle = getattr(old, "handle", None)
        if handle is not None:
            new.handle = handle
            try:
                handle.update(new)
            except Exception:  # a closed notebook, a dead frontend: the form's copy is still right
                pass

    def panel(self, key: str) -> StepPanel:
        return self.panels[key]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Any:
        return self.widget._repr_mimebundle_(include=include, exclude=exclude)


class FormSkipped:
    """What the form cell shows without a widget frontend (papermill, `runbook run 00`)."""

    text = ("The form is skipped: no widget frontend here (papermill / runbook run). Open this notebook "
            "in JupyterLab and run all cells to get the parameters and a Run button per step.")

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return f'<p class="runbook-form-skipped"><i>{_html.escape(self.text)}</i></p>'


def start_form(values: Mapping[str, Any], board: Any = None, **kw: Any) -> StartForm | FormSkipped:
    """Notebook 00's form in a live kernel; a note when nobody can press a button (headless)."""
    from .live import headless

    if headless():
        return FormSkipped()
    return StartForm(str(values.get("carbide_root_dir") or ""), str(values.get("workdir") or ""),
                     str(values.get("report_dir") or ""), board=board, **kw)
