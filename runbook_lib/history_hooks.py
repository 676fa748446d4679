"""The steps' hooks into the run history: record a finished step 2 or step 3 run and, for step 3,
compare it with the last good run. They never raise: a failure to record is a note, never a
change of the step's verdict (:func:`attach` puts it on the step's part).

Kept apart from :mod:`runbook_lib.history` (which knows no step and no comparison) so neither
imports the steps.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from .compare_runs import DEFAULT_SLOWER, RunComparison, compare_runs
from .history import DISABLE_ENV, Record, enabled, last_good, record_boot, record_build, write


def compare_and_write(rec: Record, slower: float | None = None) -> RunComparison:
    """Compare an unwritten record with the last good run of its tree, kind and params, then
    write it (the lookup comes first, so a PASS is never its own "last good")."""
    good = last_good(rec.tree["root"], rec.kind, rec.params_key, exclude=rec.id)
    comp = compare_runs(rec, good, DEFAULT_SLOWER if slower is None else slower)
    write(rec)
    return comp


# ---- the steps' hooks: never raise ---------------------------------------------------------
@dataclass
class HookOutcome:
    record: Record | None = None
    comparison: RunComparison | None = None
    note: str = ""  # one line for the step's notes (what was recorded, or why not)
    seconds: float = 0.0


def _wanted(step: Any) -> str | None:
    if not enabled():
        return f"history off ({DISABLE_ENV}={os.environ.get(DISABLE_ENV)})"
    if not getattr(step, "record_history", True):
        return "history off for this step (record_history = False)"
    return None


def attach(part: Any, out: HookOutcome) -> None:
    """Put the hook's outcome on a step part: the record's path in its details; a failure to
    record also as a note (never a change of status)."""
    try:
        part.details["history"] = {"record": str(out.record.path) if out.record and out.record.path else None,
                                   "note": out.note, "seconds": round(out.seconds, 3)}
        if out.record is None and out.note.startswith("run history not recorded") and hasattr(part, "notes"):
            part.notes = (*part.notes, out.note)
    except Exception:  # pragma: no cover - a part without details: nothing to attach to
        pass


def after_build(step: Any, started: str | None = None) -> HookOutcome:
    """Record a finished build; any error becomes the outcome's note."""
    off = _wanted(step)
    if off:
        return HookOutcome(note=off)
    t0 = time.monotonic()
    try:
        rec = record_build(step, started)
    except Exception as exc:
        return HookOutcome(note=f"run history not recorded: {type(exc).__name__}: {exc}",
                           seconds=time.monotonic() - t0)
    return HookOutcome(rec, None, f"run history: {rec.path}", time.monotonic() - t0)


def after_boot(step: Any, started: str | None = None) -> HookOutcome:
    """Record a finished boot and compare it with the last good boot of the same tree and params."""
    off = _wanted(step)
    if off:
        return HookOutcome(note=off)
    t0 = time.monotonic()
    try:
        rec = record_boot(step, started, write_it=False)
        comp = compare_and_write(rec)
    except Exception as exc:
        return HookOutcome(note=f"run history not recorded: {type(exc).__name__}: {exc}",
                           seconds=time.monotonic() - t0)
    return HookOutcome(rec, comp, f"run history: {rec.path}", time.monotonic() - t0)
