#!/usr/bin/env python3
"""Notebook 00's status board with 1,000 past reports (issue 11: <= 1 s to render).

Generates N summary JSONs in the format `runbook run` writes (runbook_lib.report.export.Summary,
with each notebook's real parameters and step rows; an .html beside each), spread over the four
notebooks and over a year of timestamps, plus a full run history (history.KEEP records of each kind,
build / boot / validate, written with runbook_lib.history) in a private XDG_DATA_HOME, and artifacts
in the sandbox work directory. Then times `status.board()` + rendering it to HTML and text
(what the notebook's cell does), median / p90 / max over --runs, and once in a fresh process
(imports included, as a first `Run all` pays it).

Usage: .venv/bin/python benchmarks/bench_status_board.py [--reports 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def make_reports(directory: Path, n: int) -> None:
    from runbook_lib.params import NOTEBOOKS
    from runbook_lib.report.export import Summary
    from runbook_lib.result import Status

    names = ["01_install_build_tools", "02_build_ipxe_image", "03_pxe_boot_vm", "04_validate"]
    rnd = random.Random(11)
    t0 = time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, 0))
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        nb = names[i % 4]
        verdict = rnd.choice([Status.PASS, Status.PASS, Status.FAIL, Status.ERROR])
        steps = [{"step": f"{nb}: part {k}", "status": "PASS", "summary": "ok " * 20, "cause": None, "fix": None}
                 for k in range(3)]
        if verdict is not Status.PASS:
            steps.append({"step": f"{nb}: run", "status": verdict.value, "summary": "it broke",
                          "cause": "no DHCP offer within 60 s " * 3, "fix": "check the bridge " * 3})
        data = Summary(nb, verdict, steps, None, NOTEBOOKS[nb].defaults()).to_dict()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t0 + i * 31_000 + rnd.randint(0, 600)))
        path = directory / f"{stamp}-{nb}.json"
        path.write_text(json.dumps(data, indent=2))
        path.with_suffix(".html").write_text("<html>report</html>")


def make_history(tree: Path) -> None:
    from runbook_lib import history
    from runbook_lib.params import STEP2, STEP3, STEP4

    for i in range(history.KEEP):  # the history keeps the newest KEEP records of a tree, all kinds
        for kind, spec in (("build", STEP2), ("boot", STEP3), ("validate", STEP4)):
            rec = history.new_record(kind, tree_root=tree, tree_kind="sandbox", params=spec.defaults(), spec=spec,
                                     verdict="PASS" if i % 5 else "FAIL", summary=f"{kind} {i}",
                                     first_failure=None if i % 5 else {"kind": "step", "text": "broke"})
            history.write(rec)


def history_files(tree: Path) -> list[Path]:
    from runbook_lib import history

    return sorted(history.tree_dir(tree).glob("*.json"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-board-") as tmp:
        base = Path(tmp)
        os.environ["XDG_DATA_HOME"] = str(base / "data")
        os.environ.pop("RUNBOOK_HISTORY", None)
        from runbook_lib import paths, status

        reports = base / "reports"
        t = time.perf_counter()
        make_reports(reports, args.reports)
        tree = paths.sandbox_workdir()
        art = paths.artifacts_dir(tree)
        art.mkdir(parents=True)
        for name in ("ipxe.efi", "ipxe.kpxe", "carbide.efi", "carbide.root", "carbide.manifest"):
            (art / name).write_bytes(b"x" * 1024)
        make_history(tree)
        print(f"generated {args.reports} summaries + {len(list(reports.glob('*.json')))} json files, "
              f"history {len(list(history_files(tree)))} records in {time.perf_counter() - t:.1f}s")

        times = []
        board = None
        for _ in range(args.runs):
            t0 = time.perf_counter()
            board = status.board(report_dirs=[reports])
            board.html()
            str(board)
            times.append(time.perf_counter() - t0)
        assert board is not None
        print(f"board + html + text, {args.runs} runs: median {statistics.median(times) * 1000:.1f} ms, "
              f"p90 {p90(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms")
        print("rows:", {r.key: (r.state, r.source, r.when) for r in board.rows})
        print("next:", board.next_step)

        code = ("import time; t=time.perf_counter(); from runbook_lib import status; "
                f"b=status.board(report_dirs=[{str(reports)!r}]); b.html(); "
                "print(f'{time.perf_counter()-t:.3f}')")
        from runbook_lib import shell

        res = shell.run([sys.executable, "-c", code], timeout=60, cwd=str(REPO))
        print(f"fresh process (imports + board + html): {res.tail[-1]} s")
        limit = 1.0
        worst = max(times)
        print(f"target <= {limit:.1f} s: {'met' if worst <= limit else 'MISSED'}")
        return 0 if worst <= limit else 1


if __name__ == "__main__":
    sys.exit(main())
