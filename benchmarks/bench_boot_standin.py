#!/usr/bin/env python3
"""The carbide-pxe stand-in serving carbide.efi, against `python -m http.server`.

Both serve the sandbox artifacts dir on a free port; a client downloads carbide.efi
N times from each (alternating) and the median MB/s is printed. The stand-in's
figure inside a real boot (iPXE as the client, from its request log) is in the
step-3 report: the `carbide.efi` row of the HTTP request log.

Usage: .venv/bin/python benchmarks/bench_boot_standin.py [--runs 5] [--file carbide.efi]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib import shell  # noqa: E402
from runbook_lib.boot.standin import StandIn, free_port  # noqa: E402
from runbook_lib.paths import artifacts_dir, sandbox_workdir  # noqa: E402


def fetch(url: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    with urllib.request.urlopen(url, timeout=60) as resp:
        while True:
            buf = resp.read(1 << 20)
            if not buf:
                break
            n += len(buf)
    return n, time.perf_counter() - t0


def wait_port(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--file", default="carbide.efi")
    args = ap.parse_args()
    art = artifacts_dir(sandbox_workdir())
    size = (art / args.file).stat().st_size
    p1, p2 = free_port(), free_port()
    res: dict[str, list[float]] = {"stand-in": [], "http.server": []}
    with StandIn(art, port=p1):
        with shell.spawn([sys.executable, "-m", "http.server", str(p2), "--bind", "127.0.0.1",
                          "--directory", str(art)]) as srv:
            wait_port(p2)
            for _ in range(args.runs):
                n, dt = fetch(f"http://127.0.0.1:{p1}/public/blobs/internal/x86_64/{args.file}")
                assert n == size
                res["stand-in"].append(n / dt / 1e6)
                n, dt = fetch(f"http://127.0.0.1:{p2}/{args.file}")
                assert n == size
                res["http.server"].append(n / dt / 1e6)
            del srv
    print(f"{args.file}: {size / 1e6:.1f} MB, {args.runs} downloads each")
    for name, vals in res.items():
        print(f"  {name:<12} median {statistics.median(vals):7.0f} MB/s  "
              f"(min {min(vals):.0f}, max {max(vals):.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
