"""`runbook analyze-bootlog FILE [--json]` and `runbook boot [...]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from ..live import notes_to_stderr
from ..params import STEP3, ParamError, check_regex
from ..result import Status, StepResult
from .analyze import DEFAULT_SUCCESS, analyze_file


def _regex(value: str) -> str:
    """Checked when the command line is parsed, before any file is read."""
    try:
        check_regex("--success-pattern", value)
    except ParamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "analyze-bootlog", help="explain a saved serial console log of a PXE boot",
        description="The verdict from how the boot ended (exit 0 PASS, 1 FAIL, 2 unreadable file), "
                    "the milestones, the firmware's boot attempts, the first failure (the cause of "
                    "that end) with a hint, and warnings for the trouble the boot got past.")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="print the analysis as JSON")
    p.add_argument("--success-pattern", default=DEFAULT_SUCCESS, type=_regex,
                   help=f"regex that means success (default {DEFAULT_SUCCESS!r})")
    p.set_defaults(func=analyze_handler)

    b = subparsers.add_parser(
        "boot", help="PXE boot a QEMU VM against the carbide-pxe stand-in (step 3, no notebook)",
        description="Parameters as in notebooks/03_pxe_boot_vm.ipynb, given as -p NAME VALUE.")
    b.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=boot_handler)


def analyze_handler(args: argparse.Namespace) -> int:
    try:
        with notes_to_stderr(args.json):
            an = analyze_file(args.file, args.success_pattern)
    except OSError as exc:
        print(f"ERROR: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return Status.ERROR.exit_code
    if args.json:
        print(an.to_json())
    else:
        print(f"{an.verdict}: {args.file} ({an.lines} lines)")
        for m in an.milestones:
            t = f"{m.seconds:8.2f}s" if m.seconds is not None else "       -"
            print(f"  {t}  {m.label:<38} line {m.line}")
        for a in an.attempts:
            took = f" {a.duration_s:.1f}s" if a.duration_s is not None else ""
            print(f"  attempt {a.outcome:<10} {a.name} (line {a.line}{took})")
        ff = an.first_failure
        if ff:
            print(f"first failure: {ff.kind} at line {ff.line}: {ff.text}")
            print(f"hint: {ff.hint}")
        for w in an.warnings[:20]:
            print(f"warning: {w.kind} at line {w.line}: {w.text[:160]}")
        if len(an.warnings) > 20:
            print(f"... {len(an.warnings) - 20} more warnings (--json lists up to 50)")
        print(f"last milestone: {an.last_milestone or 'none'}")
    return Status(an.verdict).exit_code


def report_step(step: Callable[[], StepResult], as_json: bool) -> int:
    """Run `step` and print its result: as text, or as JSON alone on stdout (with `as_json`,
    the notes it prints while running, such as `qemu: <command>`, go to stderr)."""
    with notes_to_stderr(as_json):
        res = step()
    print(json.dumps(res.to_dict(), indent=2, default=str) if as_json else str(res), flush=True)
    return res.status.exit_code


def boot_handler(args: argparse.Namespace) -> int:
    from ..context import start
    from . import step

    try:
        ns = {k: v for k, v in args.p}
        params = STEP3.validate(ns)
    except ParamError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2

    def boot_once() -> StepResult:
        ctx = start(STEP3, params)
        plan = step.preflight(ctx.params)
        return step.result(step.boot(plan, ctx.log_dir))

    return report_step(boot_once, args.json)
