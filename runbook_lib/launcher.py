"""Run a step's notebook in the background, as `runbook run` does, and follow its progress.

Notebook 00's Run buttons use this. The child is ``python -m runbook_lib.launcher run NAME -p KEY
VALUE ... --report-dir DIR``: the CLI's own ``run`` (papermill, reports, exit code), with papermill's
per-cell log lines turned on (``Executing Cell 3---``), started through :func:`shell.spawn` in a
process group of its own. Secret parameters do not go on its command line (where ``ps`` shows
them): they are handed over on stdin as JSON.

The lines the child prints are parsed as they come: papermill's cell lines (the progress bar),
the build's headless ``[i/N] Running Task: X`` lines, each result's text (``FAIL: step 2: ...``:
the live verdict), the CLI's ``== PASS NAME in 12.3s`` and the report paths after it.

Cancel is Ctrl-C first: SIGINT to the papermill kernel (the child's child, found by parent pid),
so the running cell stops its own commands and the CLI still writes an ERROR report; after a
grace period the child's process group and the kernel's are stopped (:func:`shell.kill_group`).
Only one run per notebook at a time (:func:`launch`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import shell
from .params import NotebookSpec, ParamError
from .result import Status

_CELL_START = re.compile(r"^Executing Cell (\d+)-*\s*$")
_CELL_END = re.compile(r"^Ending Cell (\d+)-*\s*$")
_TASK = re.compile(r"^\[(\d+)/(\d+)\]\s+(.+)$")
_PART = re.compile(r"^(PASS|FAIL|ERROR): (.+)$")
_FINAL = re.compile(r"^== (PASS|FAIL|ERROR) (\S+) in ([\d.]+)s\s*$")
_FILE = re.compile(r"^ {3}(\w+)\s+(\S.*)$")
_REPORT = re.compile(r"^ {3}report: (.+)$")
_CLI_ERROR = re.compile(r"^runbook: error: (.+)$")

STDIN_FLAG = "--params-stdin"
CANCEL_GRACE_S = 20.0


class AlreadyRunning(RuntimeError):
    def __init__(self, run: "StepRun") -> None:
        super().__init__(f"{run.spec.name} is already running (pid {run.pid}); wait for it or cancel it")
        self.run = run


@dataclass
class Progress:
    """What is known about a background run; a copy goes to every update callback."""

    notebook: str
    state: str = "starting"  # starting | running | cancelling | finished | cancelled | failed
    verdict: str | None = None  # the live verdict (worst result so far), final once finished
    cells_done: int = 0
    cells_total: int = 0
    cell: int | None = None  # the cell running now (1-based, as papermill counts)
    task: str = ""  # the last `[i/N] ...` line of a build
    parts: list[tuple[str, str]] = field(default_factory=list)  # (status, text) of each result shown
    reports: dict[str, str] = field(default_factory=dict)  # ipynb / html / json (+ what the CLI adds)
    planned_report: str | None = None
    error: str | None = None
    exit_code: int | None = None
    elapsed_s: float = 0.0
    tail: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        if self.state in ("finished", "cancelled"):
            return 1.0
        return min(self.cells_done / self.cells_total, 1.0) if self.cells_total else 0.0

    @property
    def done(self) -> bool:
        return self.state in ("finished", "cancelled", "failed")

    def line(self) -> str:
        """One line for a status label: state, verdict, where it is."""
        if self.state == "failed":
            return f"could not start: {self.error}"
        where = f"cell {self.cell}/{self.cells_total}" if self.cell else ""
        if self.task:
            where = f"{where}, {self.task}" if where else self.task
        verdict = f" — {self.verdict}" if self.verdict else ""
        if self.done:
            extra = f" ({self.error})" if self.error else ""
            return f"{self.state}{verdict} in {self.elapsed_s:.0f}s{extra}"
        return f"{self.state}{verdict} ({self.elapsed_s:.0f}s{', ' + where if where else ''})"

    def copy(self) -> "Progress":
        return Progress(**{**self.__dict__, "parts": list(self.parts), "reports": dict(self.reports),
                           "tail": list(self.tail)})


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def count_cells(notebook: Path) -> int:
    """Cells papermill will run: the notebook's own plus the parameters it injects."""
    try:
        data = json.loads(notebook.read_text(encoding="utf-8"))
        return len(data.get("cells") or []) + 1
    except (OSError, ValueError):
        return 0


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process."""
    return {pid: ppid for pid, (ppid, _) in shell.process_table().items()}


def children_of(pid: int) -> list[int]:
    """Live direct children of `pid` (by parent pid in /proc: never by name)."""
    return sorted(c for c, parent in _parents().items() if parent == pid)


def descendants_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (children, their children, ...)."""
    parents = _parents()
    kids: dict[int, list[int]] = {}
    for child, parent in parents.items():
        kids.setdefault(parent, []).append(child)
    out: list[int] = []
    todo = list(kids.get(pid, []))
    while todo:
        cur = todo.pop()
        out.append(cur)
        todo.extend(kids.get(cur, []))
    return sorted(out)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


class StepRun:
    """One background `runbook run` of a notebook. Create, then :meth:`start`."""

    def __init__(self, notebook: str, params: Mapping[str, Any] | None = None, *,
                 report_dir: str | os.PathLike[str], on_update: Callable[[Progress], None] | None = None,
                 log_path: str | os.PathLike[str] | None = None, python: str | None = None,
                 cell_timeout: int | None = None, tail_lines: int = 12) -> None:
        from .cli import resolve_notebook

        self.spec, self.source = resolve_notebook(notebook)
        self.values = self.spec.validate(params or {}) if self.spec.params else {}
        if params and not self.spec.params:
            raise ParamError(next(iter(params)), f"{self.spec.name} takes no parameters")
        self.given = {k: self.values[k] for k in (params or {})}
        self.report_dir = Path(report_dir).expanduser().resolve()
        self.on_update = on_update
        self.log_path = Path(log_path) if log_path else None
        self.python = python or sys.executable
        self.cell_timeout = cell_timeout
        self.progress = Progress(self.spec.name, cells_total=count_cells(self.source))
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._lock = threading.Lock()
        self._after_final = False
        self.proc: shell.Proc | None = None
        self.kernel_pgids: list[int] = []  # the papermill kernels' groups, seen when cancelling
        self.groups: list[int] = []  # every process group below the child, seen when cancelling
        self._t0 = 0.0
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()
        self._cancelled = False

    # -- the command ------------------------------------------------------------------------------
    def secret_params(self) -> dict[str, str]:
        secret = {p.name for p in self.spec.params if p.secret}
        return {k: _arg(v) for k, v in self.given.items() if k in secret}

    def argv(self) -> list[str]:
        out = [self.python, "-m", "runbook_lib.launcher", "run", self.spec.name if self.spec.params
               else str(self.source)]
        secret = self.secret_params()
        for key, value in self.given.items():
            if key not in secret:
                out += ["-p", key, _arg(value)]
        out += ["--report-dir", str(self.report_dir)]
        if self.cell_timeout:
            out += ["--cell-timeout", str(self.cell_timeout)]
        if secret:
            out.append(STDIN_FLAG)
        return out

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> "StepRun":
        from .paths import repo_root

        self._t0 = time.monotonic()
        secret = self.secret_params()
        env = {"PYTHONUNBUFFERED": "1"}
        root = str(repo_root())
        pythonpath = os.environ.get("PYTHONPATH", "")
        if root not in pythonpath.split(os.pathsep):
            env["PYTHONPATH"] = root + (os.pathsep + pythonpath if pythonpath else "")
        try:
            self.proc = shell.spawn(self.argv(), log_path=self.log_path, cwd=root, env=env,
                                    on_line=self._on_line, tail_lines=400,
                                    stdin=subprocess.PIPE if secret else subprocess.DEVNULL)
        except (OSError, shell.ShellError) as exc:
            with self._lock:
                self.progress.state, self.progress.error = "failed", str(exc)
            self._done.set()
            self._notify()
            return self
        if secret:
            pipe = self.proc.popen.stdin
            assert pipe is not None
            try:
                pipe.write(json.dumps(secret).encode())
                pipe.close()
            except (BrokenPipeError, ValueError):
                pass
        with self._lock:
            self.progress.state = "running"
        self._watcher = threading.Thread(target=self._watch, name=f"runbook-launch-{self.spec.name}",
                                         daemon=True)
        self._watcher.start()
        self._notify()
        return self

    # -- following it ----------------------------------------------------------------------------
    def _on_line(self, line: str) -> None:
        text = line.rstrip()
        with self._lock:
            p = self.progress
            if text.strip():
                self._tail.append(text)
            m = _CELL_START.match(text)
            if m:
                p.cell = int(m.group(1))
            elif (m := _CELL_END.match(text)):
                p.cells_done = max(p.cells_done, int(m.group(1)))
                p.cells_total = max(p.cells_total, p.cells_done)
            elif (m := _FINAL.match(text)):
                p.verdict = m.group(1)
                self._after_final = True
            elif self._after_final and (m := _FILE.match(text)):
                p.reports[m.group(1)] = m.group(2).strip()
            elif (m := _REPORT.match(text)):
                p.planned_report = m.group(1).strip()
            elif (m := _TASK.match(text)):
                p.task = f"[{m.group(1)}/{m.group(2)}] {m.group(3)[:80]}"
            elif (m := _PART.match(text)):
                p.parts.append((m.group(1), m.group(2)))
                if not self._after_final:
                    p.verdict = Status.worst([Status(s) for s, _ in p.parts]).value
            elif (m := _CLI_ERROR.match(text)):
                p.error = m.group(1)
        self._notify()

    def _watch(self) -> None:
        assert self.proc is not None
        rc = self.proc.wait()
        self.proc.stop(grace=2.0)  # reap anything left in its group; drops the registry entry
        if self._cancelled:
            self._stop_groups()
        with self._lock:
            p = self.progress
            p.exit_code = rc
            p.state = "cancelled" if self._cancelled else "finished"
            if p.verdict is None or not self._after_final:
                p.verdict = {0: "PASS", 1: "FAIL"}.get(rc, "ERROR") if not self._cancelled else "ERROR"
            if self._cancelled and not p.error:
                p.error = "cancelled"
        self._done.set()
        self._notify()

    def _notify(self) -> None:
        with self._lock:
            self.progress.elapsed_s = time.monotonic() - self._t0 if self._t0 else 0.0
            self.progress.tail = list(self._tail)
            snap = self.progress.copy()
        if self.on_update is not None:
            try:
                self.on_update(snap)
            except Exception:  # a display problem must not stop the run
                logging.getLogger(__name__).exception("progress callback failed")

    def snapshot(self) -> Progress:
        with self._lock:
            self.progress.elapsed_s = time.monotonic() - self._t0 if self._t0 else 0.0
            self.progress.tail = list(self._tail)
            return self.progress.copy()

    def running(self) -> bool:
        return self.proc is not None and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> Progress:
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.spec.name} still running after {timeout} s")
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        return self.snapshot()

    # -- stopping it -----------------------------------------------------------------------------
    def _collect_groups(self) -> None:
        """The process groups below the child: the papermill kernel's (a session of its own) and
        those its commands started (shell.spawn gives each its own). Found by parent pid."""
        if self.proc is None:
            return
        direct = set(children_of(self.proc.pid))
        for pid in descendants_of(self.proc.pid):
            pg = _pgid(pid)
            if pg is None or pg == self.proc.pgid:
                continue
            if pid in direct and pg not in self.kernel_pgids:
                self.kernel_pgids.append(pg)
            if pg not in self.groups:
                self.groups.append(pg)

    def _stop_groups(self) -> None:
        """Groups that outlived a cancelled run (a kernel that ignored Ctrl-C, what it started)."""
        for pg in reversed(self.groups):
            shell.kill_group(pg, grace=3.0)

    def cancel(self, grace: float = CANCEL_GRACE_S) -> Progress:
        """Interrupt the running cell (SIGINT to the kernel: the step stops its own commands and
        the CLI writes an ERROR report), then stop the process groups after `grace` seconds."""
        if self.proc is None or self._done.is_set():
            return self.snapshot()
        with self._lock:
            self._cancelled = True
            self.progress.state = "cancelling"
        self._notify()
        self._collect_groups()
        targets = self.kernel_pgids or [self.proc.pgid]
        for pg in targets:
            try:
                os.killpg(pg, signal.SIGINT)
            except ProcessLookupError:
                pass
        if not self._done.wait(grace):
            self._collect_groups()
            self.proc.stop(grace=3.0)
            self._stop_groups()
        return self.wait(timeout=30)


# ---- one run per notebook ------------------------------------------------------------------------
_ACTIVE: dict[str, StepRun] = {}
_ACTIVE_LOCK = threading.Lock()


def active(notebook: str) -> StepRun | None:
    from .cli import resolve_notebook

    name = resolve_notebook(notebook)[0].name
    with _ACTIVE_LOCK:
        run = _ACTIVE.get(name)
        return run if run is not None and run.running() else None


def launch(notebook: str, params: Mapping[str, Any] | None = None, *, report_dir: str | os.PathLike[str],
           on_update: Callable[[Progress], None] | None = None, **kw: Any) -> StepRun:
    """Start `notebook` in the background; :class:`AlreadyRunning` while the previous run of the
    same notebook is still going. Bad parameters raise :class:`ParamError` before anything starts."""
    run = StepRun(notebook, params, report_dir=report_dir, on_update=on_update, **kw)
    with _ACTIVE_LOCK:
        prev = _ACTIVE.get(run.spec.name)
        if prev is not None and prev.running():
            raise AlreadyRunning(prev)
        _ACTIVE[run.spec.name] = run
    return run.start()


# ---- the child ---------------------------------------------------------------------------------
def child_main(argv: list[str]) -> int:
    """`python -m runbook_lib.launcher run ...`: the CLI's run with papermill's cell lines on.

    With ``--params-stdin`` a JSON object on stdin adds ``-p KEY VALUE`` pairs (secrets) that
    never appear on the command line."""
    from . import cli

    args = list(argv)
    if STDIN_FLAG in args:
        args.remove(STDIN_FLAG)
        try:
            extra = json.loads(sys.stdin.read() or "{}")
        except ValueError as exc:
            print(f"runbook: error: {STDIN_FLAG}: not JSON: {exc}", file=sys.stderr)
            return cli.EXIT_USAGE
        for key, value in dict(extra).items():
            args += ["-p", str(key), str(value)]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    pm_log = logging.getLogger("papermill")
    pm_log.addHandler(handler)
    pm_log.setLevel(logging.INFO)
    pm_log.propagate = False
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
