#!/usr/bin/env python3
"""Setup + teardown of the test network (issue 9 target: < 2 s), N times in a row.

Each round: TestNet.start() (stale-namespace sweep, namespace, bridge carbide0 + tap0,
dnsmasq started and ready) and TestNet.stop() (dnsmasq, namespace deleted); optionally also
the carbide-pxe stand-in inside the namespace (--standin), and a first DHCP lease by a real
client (--dhcp, busybox udhcpc on a veth from a second namespace: the time to the first ACK).
Prints median / p90 / max per phase. Needs root.

Usage: sudo .venv/bin/python benchmarks/bench_testnet.py [--runs 10] [--standin] [--dhcp]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib import shell  # noqa: E402
from runbook_lib.boot.standin import StandIn  # noqa: E402
from runbook_lib.boot.testnet import (BRIDGE, PREFIX, TestNet, TestNetConfig,  # noqa: E402
                                      privileges_problem)


def p90(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def first_lease(tn: TestNet) -> float:
    """Seconds from a client's start to its lease (udhcpc, UEFI iPXE-like request)."""
    ns = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(2)}"
    run = lambda *a: shell.run(["ip", *a], timeout=15)  # noqa: E731
    run("netns", "add", ns)
    try:
        run("-n", tn.name, "link", "add", "vb0", "type", "veth", "peer", "name", "vc0")
        run("-n", tn.name, "link", "set", "vb0", "master", BRIDGE)
        run("-n", tn.name, "link", "set", "vb0", "up")
        run("-n", tn.name, "link", "set", "vc0", "netns", ns)
        run("-n", ns, "link", "set", "vc0", "up")
        t = time.perf_counter()
        rr = shell.run(["ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", "vc0", "-f", "-q", "-n", "-B",
                        "-t", "5", "-T", "1", "-s", "/bin/true", "-x", "0x5d:0007", "-x", "0x4d:69505845",
                        "-V", "PXEClient:Arch:00007:UNDI:003010"], timeout=30)
        took = time.perf_counter() - t
        if not rr.ok:
            raise RuntimeError("no lease: " + rr.tail_text(5))
        return took
    finally:
        shell.run(["ip", "netns", "del", ns], timeout=15)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--standin", action="store_true", help="also start/stop the stand-in in the namespace")
    ap.add_argument("--dhcp", action="store_true", help="also time a first lease by busybox udhcpc")
    args = ap.parse_args()
    problem = privileges_problem()
    if problem:
        print(f"cannot run: {problem[0]}; fix: {problem[1]}")
        return 2
    phases: dict[str, list[float]] = {"start": [], "stop": [], "total": []}
    if args.standin:
        phases["stand-in start+stop"] = []
    if args.dhcp:
        phases["first lease"] = []
    with tempfile.TemporaryDirectory(prefix="bench-testnet-") as tmp:
        art = Path(tmp) / "art"
        art.mkdir()
        (art / "ipxe.efi").write_bytes(b"MZ")
        for i in range(args.runs):
            tn = TestNet(TestNetConfig(artifacts=art, log_dir=Path(tmp) / f"log{i}",
                                       machine_uuid="6a3f6f0e-8c1b-4d6e-9b7a-2f4c1e5d8a90"))
            t0 = time.perf_counter()
            try:
                tn.start()
                t1 = time.perf_counter()
                extra = 0.0
                if args.standin:
                    t = time.perf_counter()
                    StandIn(art, host=tn.cfg.bridge_ip, port=tn.cfg.port, netns=tn.name).start().stop()
                    phases["stand-in start+stop"].append(time.perf_counter() - t)
                    extra += time.perf_counter() - t
                if args.dhcp:
                    t = time.perf_counter()
                    phases["first lease"].append(first_lease(tn))
                    extra += time.perf_counter() - t
                t2 = time.perf_counter()
            finally:
                tn.stop()
            t3 = time.perf_counter()
            if tn.leftovers:
                print(f"round {i}: leftovers {tn.leftovers}")
            phases["start"].append(t1 - t0)
            phases["stop"].append(t3 - t2)
            phases["total"].append((t1 - t0) + (t3 - t2))
    print(f"test network setup + teardown, {args.runs} rounds (seconds; target: total < 2 s)")
    print(f"{'phase':<22}{'median':>9}{'p90':>9}{'max':>9}")
    for name, xs in phases.items():
        print(f"{name:<22}{statistics.median(xs):>9.3f}{p90(xs):>9.3f}{max(xs):>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
