"""Parse cargo-make's log lines (and the sandbox builder's, which use the same format).

Lines look like ``[cargo-make] INFO - Running Task: NAME``; nested runs (a
``{ name, path }`` dependency runs another cargo make) print ``[cargo-make][1]``;
the sandbox builder prints ``[sandbox]``. Everything else (compiler output,
mkosi's output) is the commands' own text. :class:`CargoLog` is fed line by line
while the build runs and knows which tasks started, the commands they ran, the
errors with exit codes, and how the build ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..report.sanitize import clean_text

LINE = re.compile(
    r"^\[(?P<tool>cargo-make|sandbox)\](?:\[(?P<level>\d+)\])?\s+"
    r"(?P<sev>INFO|WARN|WARNING|ERROR|DEBUG|TRACE)\s+-\s+(?P<msg>.*)$"
)
_RUNNING = re.compile(r"^Running Task:\s*(?P<task>\S+)")
_SKIPPING = re.compile(r"^Skipping Task:\s*(?P<task>\S+)")
_EXEC = re.compile(r"^Execute Command:\s*(?P<cmd>.*)$")
_EXIT = re.compile(r"exit code:\s*(?P<code>-?\d+)")
_DONE = re.compile(r"^Build Done in\s+(?P<s>[0-9.]+)\s*seconds")
_FAILED = re.compile(r"^Build Failed")
_VERSION = re.compile(r"^cargo make\s+(?P<v>\S+)")


@dataclass(frozen=True)
class LogEvent:
    tool: str  # cargo-make | sandbox
    level: int  # nesting: 0 = this run, 1 = a nested cargo make ...
    severity: str
    message: str
    kind: str  # running | skipping | command | error | done | failed | version | info
    task: str | None = None
    exit_code: int | None = None
    seconds: float | None = None


def parse_line(line: str) -> LogEvent | None:
    """One log line -> an event, or None for the commands' own output."""
    m = LINE.match(clean_text(line).strip())
    if not m:
        return None
    tool, sev, msg = m.group("tool"), m.group("sev"), m.group("msg").strip()
    level = int(m.group("level") or 0)
    sev = "WARN" if sev == "WARNING" else sev
    if r := _RUNNING.match(msg):
        return LogEvent(tool, level, sev, msg, "running", task=r.group("task"))
    if r := _SKIPPING.match(msg):
        return LogEvent(tool, level, sev, msg, "skipping", task=r.group("task"))
    if r := _EXEC.match(msg):
        return LogEvent(tool, level, sev, msg, "command")
    if r := _DONE.match(msg):
        return LogEvent(tool, level, sev, msg, "done", seconds=float(r.group("s")))
    if _FAILED.match(msg):
        return LogEvent(tool, level, sev, msg, "failed")
    if r := _VERSION.match(msg):
        return LogEvent(tool, level, sev, msg, "version")
    if sev == "ERROR":
        e = _EXIT.search(msg)
        return LogEvent(tool, level, sev, msg, "error", exit_code=int(e.group("code")) if e else None)
    return LogEvent(tool, level, sev, msg, "info")


@dataclass
class TaskRun:
    name: str
    level: int
    line_no: int
    commands: list[str] = field(default_factory=list)
    skipped: bool = False


@dataclass
class ErrorEvent:
    task: str | None
    level: int
    exit_code: int | None
    message: str
    line_no: int


@dataclass
class CargoLog:
    """Accumulates what a build's log says; feed it with :meth:`feed` (an on_line callback)."""

    tasks: list[TaskRun] = field(default_factory=list)
    errors: list[ErrorEvent] = field(default_factory=list)
    done_seconds: float | None = None
    failed: bool = False
    version: str | None = None
    lines: int = 0
    on_task: Callable[[TaskRun], None] | None = None
    _current: dict[int, TaskRun] = field(default_factory=dict)

    def feed(self, line: str) -> None:
        self.lines += 1
        ev = parse_line(line)
        if ev is None:
            return
        if ev.kind in ("running", "skipping"):
            run = TaskRun(ev.task or "?", ev.level, self.lines, skipped=ev.kind == "skipping")
            self.tasks.append(run)
            if ev.kind == "running":
                self._current[ev.level] = run
            if self.on_task:
                self.on_task(run)
        elif ev.kind == "command":
            cur = self._current.get(ev.level)
            if cur:
                cur.commands.append(ev.message.split(":", 1)[1].strip())
        elif ev.kind == "error":
            cur = self._current.get(ev.level)
            self.errors.append(ErrorEvent(cur.name if cur else None, ev.level, ev.exit_code,
                                          ev.message, self.lines))
        elif ev.kind == "done" and ev.level == 0:
            self.done_seconds = ev.seconds
        elif ev.kind == "failed" and ev.level == 0:
            self.failed = True
        elif ev.kind == "version" and ev.level == 0 and self.version is None:
            self.version = ev.message.split(None, 2)[-1]

    def feed_all(self, text: str) -> "CargoLog":
        for line in text.splitlines():
            self.feed(line)
        return self

    def started(self, level: int | None = 0) -> list[str]:
        return [t.name for t in self.tasks if not t.skipped and (level is None or t.level == level)]

    def skipped(self) -> list[str]:
        return [t.name for t in self.tasks if t.skipped and t.level == 0]

    def first_error(self) -> ErrorEvent | None:
        """The first cause: the earliest error line (a nested run's error comes first)."""
        return self.errors[0] if self.errors else None

    def failing_task(self) -> str | None:
        """The innermost task that failed, e.g. `upload-boot-artifacts-ci`."""
        err = self.first_error()
        if err and err.task:
            return err.task
        if self.failed or self.errors:
            running = [t for t in self.tasks if not t.skipped]
            return running[-1].name if running else None
        return None

    def exit_code(self) -> int | None:
        err = self.first_error()
        return err.exit_code if err else None

    def last_task(self) -> str | None:
        running = [t.name for t in self.tasks if not t.skipped]
        return running[-1] if running else None

    def to_dict(self) -> dict:
        return {
            "tasks_started": self.started(None),
            "tasks_skipped": self.skipped(),
            "errors": [e.__dict__ for e in self.errors],
            "done_seconds": self.done_seconds,
            "failed": self.failed,
            "version": self.version,
        }


def excerpt(lines: list[str], around: int, before: int = 12, after: int = 4) -> str:
    """Lines around a 1-based line number, cleaned (ANSI stripped) for display."""
    lo = max(0, around - 1 - before)
    hi = min(len(lines), around + after)
    return "\n".join(clean_text(ln) for ln in lines[lo:hi])
