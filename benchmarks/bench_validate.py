#!/usr/bin/env python3
"""`runbook validate` with nothing changed: wall time and the runbook's own overhead (issue 10:
<= 90 s wall, overhead <= 10 s, on 2 cores under TCG).

Runs ValidateStep N times in a row on the sandbox (the cached build; the first run may build),
with history under a temporary XDG_DATA_HOME. For each run it splits the wall time into the
build command (the sandbox builder process), QEMU (boot start to VM end) and everything else
(the overhead: planning, checks, the stand-in, analysis, inventory, facts, history, comparison).
Then the same through papermill (`runbook validate`, one report) for the notebook's own cost.

Usage: sudo .venv/bin/python benchmarks/bench_validate.py [--runs 3] [--cli]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runbook_lib.paths import sandbox_workdir  # noqa: E402

SANDBOX = sandbox_workdir()  # before XDG_DATA_HOME moves: the cached sandbox build


def one(log_dir: Path) -> dict[str, float]:
    from runbook_lib.boot.standin import free_port
    from runbook_lib.validate import ValidateStep

    t0 = time.perf_counter()
    step = ValidateStep({"workdir": str(SANDBOX), "accel": "tcg", "port": free_port()}, log_dir=log_dir)
    step.preflight()
    step.run()
    res = step.result()
    wall = time.perf_counter() - t0
    build_cmd = step.build.outcome.duration_s if step.build.outcome else 0.0
    boot = step.boot.run_
    qemu = float(boot.timing.get("boot_s") or 0.0) if boot is not None else 0.0
    return {"wall": wall, "build command": build_cmd, "qemu": qemu,
            "overhead": wall - build_cmd - qemu, "status": res.status.value == "PASS"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cli", action="store_true", help="also time `runbook validate` (papermill, reports)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        os.environ["XDG_DATA_HOME"] = str(Path(tmp) / "data")
        rows = []
        for i in range(args.runs):
            r = one(Path(tmp) / f"run{i}")
            rows.append(r)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f} s" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in r.items()), flush=True)
        warm = rows[1:] or rows
        for key in ("wall", "build command", "qemu", "overhead"):
            xs = [r[key] for r in warm]
            print(f"{key:14} median {statistics.median(xs):6.1f} s  max {max(xs):6.1f} s  (runs 2..{len(rows)})")
        if args.cli:
            t0 = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "validate", "--quiet",
                                  "--report-dir", str(Path(tmp) / "reports"), "-p", "workdir", str(SANDBOX),
                                  "-p", "accel", "tcg"], capture_output=True, text=True, timeout=1800)
            print(f"runbook validate (papermill + reports): {time.perf_counter() - t0:.1f} s, exit {res.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
