"""Live, bounded output for long steps.

In a Jupyter kernel a :class:`LiveTail` shows the last N lines of a running
command in one display that is updated in place (throttled), so a 20-minute
build never floods the notebook; the complete text is in the step's log file.
:func:`note` prints a progress line (few per step) that papermill echoes to the
terminal of `runbook run`.
"""

from __future__ import annotations

import contextlib
import html
import sys
import threading
import time
from collections import deque
from typing import Iterator

from .report.sanitize import clean_text


def in_kernel() -> bool:
    try:
        from IPython import get_ipython  # type: ignore[attr-defined]
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def note(text: str) -> None:
    """A progress line: visible live in Jupyter and in `runbook run`'s terminal."""
    print(text, flush=True)


@contextlib.contextmanager
def notes_to_stderr(enabled: bool = True) -> Iterator[None]:
    """While a command's machine-readable output is due (--json), everything printed goes to
    stderr, so stdout carries the JSON alone. Child processes never write to our stdout
    (shell.py pipes them), so redirecting sys.stdout is enough."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


class LiveTail:
    def __init__(self, title: str, lines: int = 15, min_interval: float = 0.5,
                 echo: bool = False) -> None:
        self.title = title
        self.buf: deque[str] = deque(maxlen=lines)
        self.count = 0
        self.min_interval = min_interval
        self.echo = echo
        self._last = 0.0
        self._lock = threading.Lock()
        self._handle = None
        self._kernel = in_kernel()

    def _html(self) -> str:
        body = html.escape("\n".join(self.buf))
        return (f"<details open><summary>{html.escape(self.title)} — last {len(self.buf)} of "
                f"{self.count} lines</summary><pre style='max-height:22em;overflow:auto'>"
                f"{body}</pre></details>")

    def __call__(self, line: str) -> None:
        text = clean_text(line)
        with self._lock:
            self.buf.append(text)
            self.count += 1
            now = time.monotonic()
            due = now - self._last >= self.min_interval
            if due:
                self._last = now
        if self.echo and not self._kernel:
            print(text, file=sys.stderr, flush=True)
        if due:
            self._refresh()

    def _refresh(self) -> None:
        """Created on the first line, so a command with no output leaves no empty box."""
        if not self._kernel or self.count == 0:
            return
        from IPython.display import HTML, display
        with self._lock:
            content = self._html()
        if self._handle is None:
            self._handle = display(HTML(content), display_id=True)
        else:
            self._handle.update(HTML(content))

    def close(self) -> None:
        self._refresh()


HEADLESS_ENV = "RUNBOOK_HEADLESS"


def headless() -> bool:
    """True when nobody watches widgets: a terminal (`runbook build`), or a kernel run by
    papermill for `runbook run` (which sets RUNBOOK_HEADLESS=1 for its kernels)."""
    import os

    return not in_kernel() or os.environ.get(HEADLESS_ENV, "") not in ("", "0")


class ProgressLines:
    """Progress as plain lines on stderr, for CI logs and watchdogs that kill silent jobs.

    At most one line every `min_interval` seconds (a line that comes sooner is held and printed
    with the next one, or at :meth:`flush`); while a task runs long without a new task line,
    a heartbeat with the last output line is printed every `heartbeat` seconds.
    """

    def __init__(self, min_interval: float = 3.0, heartbeat: float = 60.0, stream=None) -> None:
        self.min_interval = min_interval
        self.heartbeat_s = heartbeat
        self.stream = stream
        self._last = float("-inf")
        self._pending: str | None = None
        self._status = ""
        self._status_since = time.monotonic()
        self._lock = threading.Lock()

    def _emit(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def line(self, text: str, status: str | None = None) -> None:
        with self._lock:
            if status is not None:
                self._status, self._status_since = status, time.monotonic()
            now = time.monotonic()
            if now - self._last >= self.min_interval:
                self._last, self._pending = now, None
                self._emit(text)
            else:
                self._pending = text

    def output(self, last_line: str) -> None:
        """Called per output line of the running command: a heartbeat when it is due."""
        with self._lock:
            now = time.monotonic()
            if self._pending is not None and now - self._last >= self.min_interval:
                self._last, pending, self._pending = now, self._pending, None
                self._emit(pending)
                return
            if now - self._last >= self.heartbeat_s:
                self._last = now
                running = f"{self._status}: " if self._status else ""
                self._emit(f"{running}still running ({now - self._status_since:.0f}s); "
                           f"last output: {clean_text(last_line)[:120]}")

    def flush(self) -> None:
        with self._lock:
            if self._pending is not None:
                self._emit(self._pending)
                self._pending = None
                self._last = time.monotonic()
