"""Turn a finished build (exit code, parsed log, artifact inventory) into PASS / FAIL / ERROR.

carbide's docs say the last task "will exit uncleanly because it wants to compress for
CI/CD and upload", and that this is fine *as long as* the artifact directory looks
right. That judgement is made explicit here: a non-zero exit is PASS only when the
failing task matches the CI-only pattern AND every expected artifact exists, is in
its size band and was written after the build started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..result import Status
from .artifacts import Inventory
from .cargo_log import CargoLog

DEFAULT_CI_ONLY_PATTERN = r"upload|compress|publish|artifactory|push|container-"


@dataclass
class Verdict:
    status: Status
    kind: str  # clean | expected-unclean-exit | failed | timeout | interrupted | environment
    summary: str
    cause: str | None = None
    fix: str | None = None
    failing_task: str | None = None
    exit_code: int | None = None
    excerpt: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, Status) else v) for k, v in self.__dict__.items()}


def is_ci_only(task: str | None, pattern: str) -> bool:
    if not task or not pattern:
        return False
    return re.search(pattern, task, flags=re.IGNORECASE) is not None


def excerpt_around_error(lines: list[str], log: CargoLog, before: int = 15, after: int = 3) -> str:
    """The lines before and after the first error line of the log (commands print their cause above it)."""
    err = log.first_error()
    idx = None
    if err:
        for i, ln in enumerate(lines):
            if err.message in ln and "ERROR" in ln:
                idx = i
                break
    if idx is None:
        for i, ln in enumerate(lines):
            if re.search(r"(?i)\berror\b|Build Failed", ln):
                idx = i
                break
    if idx is None:
        return "\n".join(lines[-(before + after):])
    return "\n".join(lines[max(0, idx - before): idx + after + 1])


def classify(*, returncode: int | None, timed_out: bool, interrupted: bool, log: CargoLog,
             inventory: Inventory, ci_only_pattern: str = DEFAULT_CI_ONLY_PATTERN,
             log_lines: list[str] | None = None, log_path: str = "", timeout_s: float | None = None,
             tool: str = "cargo-make") -> Verdict:
    lines = log_lines or []
    where = f" (full log: {log_path})" if log_path else ""
    problems = inventory.problems(require_fresh=False)
    stale = inventory.stale()
    warnings = []
    if stale and returncode == 0:
        warnings.append("not rewritten by this run (the builder reused them): "
                        + ", ".join(r.name for r in stale))
    if inventory.leftovers:
        warnings.append("leftover mkosi work directories: " + ", ".join(inventory.leftovers))

    if timed_out:
        task = log.last_task()
        return Verdict(Status.FAIL, "timeout",
                       f"the build did not finish within {timeout_s:.0f} s" if timeout_s else
                       "the build did not finish in time",
                       cause=f"timed out while running task {task!r}; the process group was killed" if task
                       else "timed out before any task started; the process group was killed",
                       fix=f"look at the end of the log{where}; if it was still making progress, "
                           f"raise build_timeout_s",
                       failing_task=task, excerpt="\n".join(lines[-15:]), warnings=warnings)
    if interrupted:
        return Verdict(Status.ERROR, "interrupted", "the build was interrupted",
                       cause="interrupted by the user (the process group was killed)",
                       fix="run the step again", failing_task=log.last_task(), warnings=warnings)

    if returncode == 0:
        if problems:
            first = problems[0]
            return Verdict(Status.FAIL, "failed",
                           f"the build exited 0 but {len(problems)} expected artifact(s) are wrong",
                           cause=f"{first.name}: {first.problem()} ({first.note})",
                           fix="check the task that writes it in the log" + where +
                               "; rebuild with force=True if an old partial file is reused",
                           warnings=warnings)
        return Verdict(Status.PASS, "clean",
                       f"the build finished cleanly; all {sum(r.expected for r in inventory.rows)} "
                       "expected artifacts are present and in their size bands",
                       warnings=warnings)

    failing = log.failing_task()
    code = log.exit_code()
    code = code if code is not None else returncode
    excerpt = excerpt_around_error(lines, log)

    if tool == "sandbox" and returncode == 2:
        err = log.first_error()
        return Verdict(Status.ERROR, "environment",
                       "the sandbox builder reports an environment problem (exit 2)",
                       cause=(err.message if err else (lines[-1] if lines else "no output")),
                       fix=_builder_fix(lines) or "install what is missing (step 1: 01_install_build_tools) and run again",
                       failing_task=failing, exit_code=code, excerpt=excerpt, warnings=warnings)

    if is_ci_only(failing, ci_only_pattern):
        fresh_problems = inventory.problems(require_fresh=True)
        if not fresh_problems:
            return Verdict(
                Status.PASS, "expected-unclean-exit",
                f"exited uncleanly in the CI-only task {failing!r} (exit {code}), as carbide's docs "
                "expect; every expected artifact is present, in its size band and written by this build",
                failing_task=failing, exit_code=code, excerpt=excerpt, warnings=warnings)
        first = fresh_problems[0]
        return Verdict(
            Status.FAIL, "failed",
            f"the CI-only task {failing!r} failed (exit {code}), which alone would be fine, but "
            f"{len(fresh_problems)} expected artifact(s) are not right",
            cause=f"{first.name}: {first.problem(True)} ({first.note})",
            fix="an earlier task did not produce it: search the log" + where + " for that file",
            failing_task=failing, exit_code=code, excerpt=excerpt, warnings=warnings)

    return Verdict(
        Status.FAIL, "failed",
        f"task {failing!r} failed with exit code {code}" if failing else f"{tool} exited with {returncode}",
        cause=(f"task {failing!r} exited {code}; it is not a CI-only packaging/upload task "
               f"(pattern {ci_only_pattern!r})") if failing else f"{tool} exited {returncode}",
        fix=f"fix what the excerpt shows in {failing!r} and run again" + where if failing else
            "read the log" + where,
        failing_task=failing, exit_code=code, excerpt=excerpt, warnings=warnings)


def _builder_fix(lines: list[str]) -> str | None:
    """The sandbox builder prints its result last (``  fix:   ...``): its own fix is the precise one."""
    for ln in reversed(lines[-40:]):
        if ln.lstrip().startswith("fix:"):
            return ln.split("fix:", 1)[1].strip() or None
    return None
