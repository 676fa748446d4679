"""`runbook history [--tree DIR] [--kind K] [--json] [--limit N]`: the run history, newest first."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import history


def cmd_history(args: argparse.Namespace) -> int:
    recs, notes = history.scan(args.tree or None, args.kind or None, limit=args.limit)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if args.json:
        print(json.dumps([dict(r.to_dict(), path=str(r.path)) for r in recs], indent=1))
        return 0
    where = history.tree_dir(args.tree) if args.tree else history.history_root()
    if not recs:
        print(f"no runs recorded in {where}" + (f" (kind {args.kind})" if args.kind else ""))
        return 0
    rows = list(history.iter_table_rows(recs))
    cols = ["when", "kind", "tree", "commit", "verdict", "boot", "summary"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols[:-1]}
    print("  ".join(c.ljust(widths[c]) if c in widths else c for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) if c in widths else r[c] for c in cols))
    print(f"{len(rows)} run(s) from {where}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("history", help="runs of steps 2, 3 and validate recorded under the XDG data "
                                              "directory, newest first")
    p.add_argument("--tree", metavar="DIR", help="only this tree (a carbide checkout or the sandbox workdir)")
    p.add_argument("--kind", choices=history.KINDS, help="only this kind of run")
    p.add_argument("--json", action="store_true", help="the records as JSON")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N runs (default 50)")
    p.set_defaults(func=cmd_history)


__all__ = ["register", "cmd_history"]
