"""Running a task's commands: the `Execute Command` line, the full log, failures.

:class:`BuildFailure` means the build itself went wrong (FAIL, exit 1);
:class:`EnvironmentProblem` means the machine is not fit to build (ERROR,
exit 2: a tool is missing, the mirror is unreachable, the disk is full).
Both carry the first cause and a concrete fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from .. import shell
from . import progress

Emit = Callable[[str], None]


class SandboxProblem(Exception):
    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix


class BuildFailure(SandboxProblem):
    """The build went wrong (FAIL)."""


class EnvironmentProblem(SandboxProblem):
    """The machine cannot build right now (ERROR)."""


_NO_SPACE = ("No space left on device", "ENOSPC", "write error: No space")


class Runner:
    """Runs commands for one build: echoes cargo-make-like lines, logs every output line."""

    def __init__(self, emit: Emit, log_path: Path) -> None:
        self.emit = emit
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)

    def say(self, text: str) -> None:
        """A progress line: shown and written to the log."""
        self.emit(text)
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    def run(self, argv: Sequence[str | os.PathLike[str]], *, timeout: float,
            cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
            elevate: bool = False, what: str = "", fix: str = "",
            check: bool = True) -> shell.RunResult:
        full = shell.build_argv(argv, elevate)
        self.say(progress.execute_command(full))
        try:
            # A stopped command (mkosi) gets time to undo its mounts; the build driver gives
            # this builder shell.BUILDER_CLEANUP_GRACE_S, which covers this and our own cleanup.
            rr = shell.run(argv, timeout=timeout, cwd=cwd, env=env, elevate=elevate,
                           log_path=self.log_path, on_line=self.emit,
                           stop_grace=shell.COMMAND_CLEANUP_GRACE_S)
        except shell.CommandNotFound as exc:
            raise EnvironmentProblem(f"{exc.program} is not installed",
                                     "run step 1 (01_install_build_tools) with install_missing=True") from exc
        except shell.ElevationUnavailable as exc:
            raise EnvironmentProblem(exc.cause, exc.fix or "run as root or allow passwordless sudo") from exc
        if rr.ok or not check:
            return rr
        self.say(progress.command_failed(rr.returncode))
        label = what or os.path.basename(full[0])
        tail = "\n".join(rr.tail[-200:])
        if any(marker in tail for marker in _NO_SPACE):
            raise EnvironmentProblem(f"{label}: the disk is full (No space left on device)",
                                     "free space in the work and cache directories "
                                     "(at least 3 GB) and rebuild")
        if rr.timed_out:
            raise BuildFailure(f"{label} timed out after {timeout:.0f} s", fix or "see the log; rerun")
        return self._fail(label, rr, fix)

    def _fail(self, label: str, rr: shell.RunResult, fix: str) -> shell.RunResult:
        last = next((ln for ln in reversed(rr.tail) if ln.strip()), "")
        raise BuildFailure(f"{label} exited with {rr.returncode}: {last.strip()[:300]}",
                           fix or f"see the full log {self.log_path}")
