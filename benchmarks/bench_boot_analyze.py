#!/usr/bin/env python3
"""Analyzer throughput and memory on a generated 100 MB serial log.

dense: the real consoles of the corpus (tests/fixtures/bootlogs, recorded here and quoted
from public issue threads: iPXE, OVMF, SeaBIOS and kernel lines, ANSI, \\r, 80-column BIOS
rows and all) concatenated until the size is reached, with every login prompt defused so the
whole file is analyzed: the worst case users send. console: one boot, then its kernel lines
repeated (a VM left running). Prints MB/s in-process, the whole `runbook analyze-bootlog
--json` process time and its peak RSS (flat memory = streaming works), and the time from
the login prompt to the verdict on a live console.

Usage: .venv/bin/python benchmarks/bench_boot_analyze.py [--mb 100]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib.boot.analyze import analyze_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "bootlogs"


def prompt_to_verdict(runs: int = 20) -> None:
    """The live path: a whole recorded boot is on the serial port; how long from the moment
    the login prompt line is there to the watch's verdict (median of `runs`)."""
    from runbook_lib.boot import console

    data = b"\n".join(ln.split(b"] ", 1)[1] if ln.startswith(b"[+") else ln
                      for ln in (FIXTURES / "uefi_uki_login.log").read_bytes().split(b"\n"))
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "serial.raw"
            raw.write_bytes(data)
            t0 = time.monotonic()
            out = console.watch(raw, Path(tmp) / "serial.log", t0=t0, timeout_s=60,
                                is_running=lambda: True, success_pattern=r"[\w.-]+ login:")
            assert out.ended == "success"
            times.append(out.verdict_at)  # the prompt was on the port from the start: an upper bound
    times.sort()
    print(f"login prompt on the port -> verdict: median {times[len(times) // 2]:.3f} s, "
          f"max {times[-1]:.3f} s over {runs} runs (target <= 0.5 s)")


def make_log(path: Path, mb: int, kind: str = "dense") -> int:
    """dense: every recorded boot back to back (worst case: most lines are boot events);
    console: one real boot, then the kernel/systemd lines of a boot repeated, like a VM
    left running with its console captured."""
    logs = [p.read_bytes().replace(b"login:", b"log1n:") for p in sorted(FIXTURES.rglob("*.log"))]
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
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "analyze-bootlog", str(log), "--json"],
                                  cwd=ROOT, capture_output=True)
            wall = time.perf_counter() - t0
            child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"[{kind}] `runbook analyze-bootlog --json`: exit {proc.returncode}, {wall:.2f} s = "
                  f"{size / 1e6 / wall:.1f} MB/s for the whole process, peak RSS {child_rss:.0f} MB")
    prompt_to_verdict()
    return 0


if __name__ == "__main__":
    sys.exit(main())
