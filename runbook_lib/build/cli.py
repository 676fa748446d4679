"""`runbook plan --tree DIR TASK` and `runbook build ...` (step 2 without Jupyter)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..live import notes_to_stderr
from ..params import STEP2, ParamError
from ..result import Status
from .target import TargetError, resolve


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        with notes_to_stderr(args.json):  # --json: the JSON alone on stdout
            target = resolve(args.tree or "", args.arch, args.variant, " ".join(args.task),
                             args.workdir or "")
    except TargetError as exc:
        print(f"ERROR: {exc.cause}", file=sys.stderr)
        print(f"  fix: {exc.fix}", file=sys.stderr)
        return Status.ERROR.exit_code
    plan = target.plan
    if args.json:
        print(json.dumps({"target": target.to_dict(), "plan": plan.to_dict()}, indent=2))
        return 0
    print(f"plan for {' && '.join(target.tasks) or '(directories only)'} from {plan.source}")
    if plan.steps:
        print(plan.table().to_string(index=False))
    for n in [*target.notes, *plan.notes]:
        print(f"note: {n}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .step import build_ipxe_image

    raw: dict[str, Any] = {k: v for k, v in args.param}
    try:
        params = STEP2.validate({k: STEP2.param(k).check(v) for k, v in raw.items()})
    except ParamError as exc:
        print(f"runbook: error: {exc}", file=sys.stderr)
        return Status.ERROR.exit_code
    result = build_ipxe_image(params, log_dir=params["log_dir"] or None)
    print(result)
    return result.status.exit_code


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("plan", help="step 2: show the run order of a cargo-make task "
                                           "(carbide pxe/Makefile.toml, or the sandbox)")
    p.add_argument("task", nargs="*", help="task name(s); default from --variant and --arch")
    p.add_argument("--tree", default="", help="carbide checkout (holds pxe/Makefile.toml); "
                                              "default: the embedded sandbox")
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"])
    p.add_argument("--variant", default="full", choices=["full", "package-only"])
    p.add_argument("--workdir", default="", help="sandbox work directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)

    b = subparsers.add_parser("build", help="step 2 without Jupyter: plan, build, verify, chown")
    b.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a 02_build_ipxe_image parameter, e.g. -p carbide_root_dir ~/carbide")
    b.set_defaults(func=cmd_build)


__all__ = ["register", "cmd_plan", "cmd_build"]
