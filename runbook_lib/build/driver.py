"""Run a planned build: live bounded output, the full log in a file, a progress bar.

The progress bar advances on ``Running Task:`` lines (cargo-make's, or the sandbox's
``[sandbox]`` lines) for tasks of the plan. In a live Jupyter session it is an ipywidgets
``IntProgress``; headless (a terminal, or papermill under ``runbook run``) each task is a
progress line on stderr (``[3/11] Running Task: NAME``, at most one every few seconds, plus a
heartbeat while a long task runs), so CI logs show progress and watchdogs see a live job.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import live, shell
from ..report.sanitize import clean_text, redact
from .cargo_log import CargoLog, TaskRun
from .target import Target


class Progress:
    def __init__(self, names: list[str], title: str) -> None:
        self.names = names
        self.total = max(1, len(names))
        self.done: list[str] = []
        self.title = title
        self._bar: Any = None
        self._label: Any = None
        self.lines = live.ProgressLines() if live.headless() else None
        if not live.headless():
            try:
                import ipywidgets as w
                from IPython.display import display
                self._bar = w.IntProgress(value=0, min=0, max=self.total, description="tasks",
                                          bar_style="info")
                self._label = w.Label(value=f"{title}: waiting for the first task")
                display(w.HBox([self._bar, self._label]))
            except ImportError:
                self._bar = None
        if self.lines is not None:
            self.lines.line(f"{title}: {len(names)} planned task(s): {', '.join(names)}")

    def on_task(self, run: TaskRun) -> None:
        if run.skipped or run.level != 0:
            return
        if run.name in self.names and run.name not in self.done:
            self.done.append(run.name)
        text = f"[{len(self.done)}/{self.total}] Running Task: {run.name}"
        if self._bar is not None:
            self._bar.value = min(len(self.done), self.total)
            self._label.value = text
        if self.lines is not None:
            self.lines.line(text, status=f"[{len(self.done)}/{self.total}] {run.name}")

    def on_output(self, line: str) -> None:
        if self.lines is not None:
            self.lines.output(line)

    def finish(self, ok: bool) -> None:
        if self._bar is not None:
            self._bar.bar_style = "success" if ok else "danger"
            self._label.value = (f"{self.title}: finished, {len(self.done)}/{self.total} planned tasks ran"
                                 if ok else f"{self.title}: stopped after {len(self.done)}/{self.total} tasks")
        if self.lines is not None:
            self.lines.flush()
            self.lines.line(f"{self.title}: {'finished' if ok else 'stopped'}; "
                            f"{len(self.done)}/{self.total} planned tasks ran")
            self.lines.flush()


@dataclass
class RunOutcome:
    commands: list[str]
    results: list[shell.RunResult]
    log: CargoLog
    log_path: Path
    start_wall: float
    duration_s: float
    timeout_s: float
    progress_done: list[str] = field(default_factory=list)

    @property
    def last(self) -> shell.RunResult | None:
        return self.results[-1] if self.results else None

    @property
    def returncode(self) -> int | None:
        return self.last.returncode if self.last else 0

    @property
    def timed_out(self) -> bool:
        return bool(self.last and self.last.timed_out)

    @property
    def interrupted(self) -> bool:
        return bool(self.last and self.last.interrupted)

    def log_lines(self) -> list[str]:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [clean_text(ln) for ln in text.splitlines()]

    def to_dict(self) -> dict[str, Any]:
        return {"commands": self.commands, "returncode": self.returncode, "timed_out": self.timed_out,
                "duration_s": round(self.duration_s, 2), "log": str(self.log_path),
                "cargo_log": self.log.to_dict(), "runs": [r.to_dict() for r in self.results]}


def execute(target: Target, log_path: Path, timeout_s: float, *, force: bool = False,
            root_password: str = "") -> RunOutcome:
    """Run the target's commands one after another, stopping at the first failure."""
    argvs = target.commands(force=force, root_password=root_password)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail = live.LiveTail(f"{target.tool} output (last lines; full log: {log_path})")
    clog = CargoLog()
    progress = Progress(target.plan.task_names(), f"{target.tool} {' && '.join(target.tasks)}")
    clog.on_task = progress.on_task

    def on_line(line: str) -> None:
        clog.feed(line)
        tail(redact(line))
        progress.on_output(redact(line))

    start_wall = time.time()
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    results: list[shell.RunResult] = []
    shown: list[str] = []
    try:
        for argv in argvs:
            shown.append(redact(shell.quote(argv)))
            remaining = max(1.0, deadline - time.monotonic())
            # On timeout or Ctrl-C the builder gets SIGTERM and, before SIGKILL, the time it
            # needs to stop its own command (mkosi) and remove its staging.
            rr = shell.run(argv, timeout=remaining, log_path=log_path, cwd=target.run_dir,
                           env=target.env(root_password), on_line=on_line, tail_lines=400,
                           stop_grace=shell.BUILDER_CLEANUP_GRACE_S)
            results.append(rr)
            if not rr.ok:
                break
    finally:
        ok = bool(results) and all(r.ok for r in results)
        progress.finish(ok or not argvs)
        tail.close()
        scrub_file(log_path)
    return RunOutcome(shown, results, clog, log_path, start_wall, time.monotonic() - t0, timeout_s,
                      list(progress.done))


def scrub_file(path: Path) -> None:
    """Redact secrets (e.g. the builder's `--root-password VALUE`) from a saved log."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    cleaned = redact(text)
    if cleaned != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(cleaned, encoding="utf-8")
        shutil.move(str(tmp), path)
