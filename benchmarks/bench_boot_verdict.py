#!/usr/bin/env python3
"""Time from the login prompt appearing on the serial port to the verdict.

A writer thread plays a recorded boot into a serial file the way QEMU does (the
prompt last, without a newline); the real console watcher follows the file. The
latency is verdict time minus the moment the prompt bytes were written.

Usage: .venv/bin/python benchmarks/bench_boot_verdict.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib.boot.analyze import DEFAULT_SUCCESS, STAMP_RE  # noqa: E402
from runbook_lib.boot.console import watch  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/bootlogs/uefi_uki_login.log"


def raw_boot() -> tuple[bytes, bytes]:
    lines = []
    for ln in FIXTURE.read_bytes().splitlines(keepends=True):
        m = STAMP_RE.match(ln)
        lines.append(ln[m.end():] if m else ln)
    body = b"".join(lines)
    cut = body.index(b"carbide-sandbox login:")
    return body[:cut], b"carbide-sandbox login: "


def one(tmp: Path) -> float:
    before, prompt = raw_boot()
    serial = tmp / "serial.raw"
    serial.write_bytes(b"")
    written: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        with open(serial, "ab") as fh:
            for i in range(0, len(before), 4096):
                fh.write(before[i:i + 4096])
                fh.flush()
            time.sleep(0.3)
            fh.write(prompt)
            fh.flush()
            written.append(time.monotonic())
        stop.wait(10)

    th = threading.Thread(target=writer)
    th.start()
    t0 = time.monotonic()
    out = watch(serial, tmp / "serial.log", t0=t0, timeout_s=30, is_running=lambda: True,
                success_pattern=DEFAULT_SUCCESS)
    done = time.monotonic()
    stop.set()
    th.join()
    assert out.ended == "success", out.ended
    return done - written[0]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    lat = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            lat.append(one(Path(tmp)))
    print(f"prompt -> verdict over {args.runs} runs: median {statistics.median(lat) * 1000:.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms (target <= 500 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
