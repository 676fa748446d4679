#!/usr/bin/env python3
"""Many real step-3 boots in a row: how fast, how often the VM stalls, and whether the
stall retry keeps the verdict right.

Each boot is `preflight` + `boot()` exactly as `runbook boot` runs it (stand-in, QEMU,
serial watch, teardown), against the sandbox artifacts. Prints one line per boot (verdict,
seconds to the login prompt, infrastructure events) and a summary: median and spread of
the time to the prompt, stalls seen, retries that then passed, FAILs.

Usage: .venv/bin/python benchmarks/bench_boot_stall.py [--boots 50] [--tcg-thread multi|single]
       [--cpus 2] [--firmware uefi]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib.boot import step  # noqa: E402
from runbook_lib.boot.standin import free_port  # noqa: E402
from runbook_lib.params import STEP3  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boots", type=int, default=50)
    ap.add_argument("--tcg-thread", default="multi", choices=("multi", "single"))
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--firmware", default="uefi", choices=("uefi", "bios"))
    args = ap.parse_args()
    prompts: list[float] = []
    stalls = fails = 0
    t_all = time.monotonic()
    for i in range(args.boots):
        p = STEP3.validate({"accel": "tcg", "tcg_thread": args.tcg_thread, "cpus": args.cpus,
                            "firmware": args.firmware, "port": free_port(), "boot_timeout_s": 400})
        with tempfile.TemporaryDirectory() as tmp:
            plan = step.preflight(p)
            run = step.boot(plan, Path(tmp), on_event=None)
        events = run.infra_events
        stalls += len(events)
        ok = run.status.value == "PASS"
        fails += not ok
        login = run.timing.get("login_prompt_s")
        if ok and login is not None:
            prompts.append(float(login))
        ff = run.analysis.first_failure if run.analysis else None
        print(f"boot {i + 1:3d}: {run.status.value} prompt {login}s"
              + (f"; stalled and retried: {events[0]['kind']} after {events[0]['after_s']}s" if events else "")
              + (f"; first failure {ff.kind}: {ff.text[:80]}" if ff and not ok else ""), flush=True)
    if prompts:
        q = statistics.quantiles(prompts, n=10) if len(prompts) >= 2 else [prompts[0]] * 9
        print(f"\n{args.boots} boots (tcg thread={args.tcg_thread}, -smp {args.cpus}, {args.firmware}) in "
              f"{time.monotonic() - t_all:.0f}s: login prompt median {statistics.median(prompts):.1f}s, "
              f"p10 {q[0]:.1f}s, p90 {q[-1]:.1f}s; stalls retried: {stalls}; FAIL: {fails}")
    return 0 if fails == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
