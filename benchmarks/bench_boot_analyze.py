#!/usr/bin/env python3
"""Analyzer throughput and memory on a generated 100 MB serial log.

The log is made of the real recorded boots in tests/fixtures/bootlogs repeated (ANSI,
\\r, 80-column BIOS rows and all) until it reaches the size. Prints MB/s and the peak
RSS growth while analyzing (flat memory = streaming works).

Usage: .venv/bin/python benchmarks/bench_boot_analyze.py [--mb 100]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib.boot.analyze import analyze_file  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "bootlogs"


def make_log(path: Path, mb: int, kind: str = "dense") -> int:
    """dense: every recorded boot back to back (worst case: most lines are boot events);
    console: one real boot, then the kernel/systemd lines of a boot repeated, like a VM
    left running with its console captured."""
    logs = [p.read_bytes().replace(b"login:", b"log1n:") for p in sorted(FIXTURES.glob("*.log"))]
    if kind == "dense":
        head, body = b"", b"".join(logs)
    else:
        head = (FIXTURES / "uefi_uki_login.log").read_bytes().replace(b"login:", b"log1n:")
        body = b"".join(ln for ln in head.splitlines(keepends=True) if b"] [" in ln)
    target = mb * 1024 * 1024
    written = len(head)
    with open(path, "wb") as fh:
        fh.write(head)
        while written < target:
            fh.write(body)
            written += len(body)
        fh.write(b"[+ 9999.000s] carbide-sandbox login: \n")
    return path.stat().st_size


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--kind", choices=("dense", "console", "both"), default="both")
    args = ap.parse_args()
    for kind in (("console", "dense") if args.kind == "both" else (args.kind,)):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "big.log"
            size = make_log(log, args.mb, kind)
            rss0 = maxrss_mb()
            t0 = time.perf_counter()
            an = analyze_file(log)
            dt = time.perf_counter() - t0
            rss1 = maxrss_mb()
        print(f"[{kind}] log: {size / 1e6:.1f} MB, {an.lines} lines, "
              f"{an.counts['failures_seen']} failures seen, verdict {an.verdict}")
        print(f"[{kind}] analyze: {dt:.2f} s = {size / 1e6 / dt:.1f} MB/s (target >= 50 MB/s)")
        print(f"[{kind}] peak RSS: {rss0:.1f} MB before, {rss1:.1f} MB after (+{rss1 - rss0:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
