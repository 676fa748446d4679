"""The step protocol: every runbook step has the same shape.

::

    step = BuildStep(ctx)        # validated params in (a RunContext or a dict); nothing runs yet
    step.requires()              # -> [(Requirement, required)] from the one registry (requirements.py)
    step.preflight()             # -> StepResult "step N: NAME: pre-flight"; ERROR = nothing started
    step.run()                   # streams progress; -> StepResult "step N: NAME: run"
    step.sections()              # the parts the notebook shows, in order; each displays itself
    step.result()                # the one Result: verdict, first cause, fix (JSON/JUnit read this)

A part is a :class:`~runbook_lib.result.StepResult` named ``step N: NAME: PART``; the overall
result is named ``step N: NAME``. :func:`combine` makes the overall result: the status is the
worst part's, the first cause is the *earliest* part that did not pass (a FAIL of the build is
not hidden by a later ownership ERROR). State kept between runs (baselines, history) lives under
:func:`state_dir`, keyed by tree, never beside a report directory.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import requirements as reqs
from .context import RunContext, default_log_dir
from .params import NotebookSpec
from .paths import data_dir
from .result import Status, StepResult


def state_dir(tree: str | Path, kind: str = "state") -> Path:
    """Per-tree state under the XDG data directory: ``<data>/state/<name>-<hash of the path>``."""
    resolved = str(Path(tree).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(resolved).name or "root")[:40]
    return data_dir() / kind / f"{name}-{digest}"


def combine(title: str, parts: Iterable[StepResult], empty_summary: str = "nothing ran") -> StepResult:
    """One result from ordered parts: worst status; first cause and fix from the earliest bad part."""
    parts = list(parts)
    if not parts:
        return StepResult(title, Status.ERROR, empty_summary, cause="no part of the step ran",
                          fix="run the step's cells in order (preflight, then run)")
    status = Status.worst([p.status for p in parts])
    first_bad = next((p for p in parts if p.status is not Status.PASS), None)
    import pandas as pd

    table = pd.DataFrame([{"part": _part_name(title, p.step), "status": p.status.value, "summary": p.summary}
                          for p in parts], columns=["part", "status", "summary"])
    logs = {k: v for p in parts for k, v in p.logs.items()}
    if first_bad is not None:
        summary = f"{_part_name(title, first_bad.step)}: {first_bad.summary}"
        if first_bad.status is not status:
            worst = next(p for p in parts if p.status is status)
            summary += f" (then {_part_name(title, worst.step)}: {worst.status.value})"
    else:  # all passed: the run part says what the step did (else the last part)
        main = next((p for p in parts if p.step == f"{title}: run"), parts[-1])
        summary = main.summary
    return StepResult(title, status, summary, cause=first_bad.cause if first_bad else None,
                      fix=first_bad.fix if first_bad else None, tables={"parts": table}, logs=logs,
                      details={_part_name(title, p.step): p.to_dict() for p in parts})


def _part_name(title: str, step: str) -> str:
    return step[len(title) + 2:] if step.startswith(title + ": ") else step


class Step:
    """Base of every step. Subclasses set `number`, `name`, `spec` and implement
    :meth:`_preflight` and :meth:`_run`; parts are recorded with :meth:`keep`."""

    number: int = 0
    name: str = ""
    spec: NotebookSpec
    registry_step: str = ""  # which steps' entries of requirements.REGISTRY apply (tools/build/boot)
    record_history: bool = True  # steps 2 and 3 write a run record (runbook_lib.history) after run()

    def __init__(self, params: Mapping[str, Any] | RunContext, log_dir: str | Path | None = None) -> None:
        if isinstance(params, RunContext):
            log_dir = log_dir or params.log_dir
            params = params.params
        self.params: dict[str, Any] = self.spec.validate(dict(params))
        self.log_dir = Path(log_dir or self.params.get("log_dir") or default_log_dir(self.spec.name))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.parts: dict[str, StepResult] = {}

    # ---- naming ---------------------------------------------------------------------------
    @property
    def title(self) -> str:
        return f"step {self.number}: {self.name}"

    def part_title(self, part: str) -> str:
        return f"{self.title}: {part}"

    # ---- protocol -------------------------------------------------------------------------
    def needs(self) -> reqs.Needs:
        """Which conditional requirements apply to this run (from the parameters)."""
        return reqs.Needs()

    def requirement_targets(self) -> dict[str, str]:
        return {}

    def requires(self) -> list[tuple[reqs.Requirement, bool]]:
        return reqs.for_step(self.registry_step, self.needs(), **self.requirement_targets())

    def check_requirements(self) -> list[reqs.Check]:
        return [reqs.check_one(r, required) for r, required in self.requires()]

    def preflight(self) -> StepResult:
        return self.keep("pre-flight", self._preflight())

    def run(self) -> StepResult:
        if "pre-flight" not in self.parts:
            self.preflight()
        pre = self.parts["pre-flight"]
        if pre.status is not Status.PASS:
            return self.keep("run", StepResult(self.part_title("run"), pre.status,
                                               f"not run: {pre.summary}", cause=pre.cause, fix=pre.fix))
        return self.keep("run", self._run())

    def sections(self) -> list[Any]:
        """What the notebook shows after run(), in order (each part displays itself)."""
        return list(self.parts.values())

    def section(self, name: str) -> Any:
        if name not in self.parts:
            raise KeyError(f"{self.title} has no part {name!r} (parts: {', '.join(self.parts) or 'none yet'}); "
                           "run preflight() and run() first")
        return self.parts[name]

    def result(self) -> StepResult:
        return combine(self.title, self.parts.values())

    def checklist(self) -> Any:
        """Part and status only: stable across reruns and hosts (checked by nbval)."""
        import pandas as pd

        return pd.DataFrame([{"part": k, "status": r.status.value} for k, r in self.parts.items()],
                            columns=["part", "status"])

    # ---- for subclasses -------------------------------------------------------------------
    def _preflight(self) -> StepResult:
        raise NotImplementedError

    def _run(self) -> StepResult:
        raise NotImplementedError

    def keep(self, part: str, res: StepResult) -> StepResult:
        self.parts[part] = res
        return res

    def requirements_result(self, checks: list[reqs.Check], ready: str = "ready") -> StepResult:
        """A pre-flight part from requirement checks: ERROR naming the first unmet one."""
        table = reqs.frame(checks)
        bad = reqs.first_unmet(checks)
        if bad is None:
            return StepResult(self.part_title("pre-flight"), Status.PASS, ready, tables={"requirements": table})
        cause, fix = reqs.unmet(bad)
        return StepResult(self.part_title("pre-flight"), Status.ERROR, f"{bad.tool} is not usable",
                          cause=cause, fix=fix, tables={"requirements": table})
