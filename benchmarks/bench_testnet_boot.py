#!/usr/bin/env python3
"""Testnet boot time against the same boot under QEMU user networking, side by side.

Same artifacts (the default sandbox output), same firmware (OVMF PXEv4 -> TFTP ipxe.efi -> its
script -> /api/v0/pxe/boot -> the UKI -> login), same accel: only the network differs. Runs the
two alternately (user, testnet, user, ...) so host load drifts hit both alike, and prints the
time to the login prompt for each plus the testnet's overhead. Root (network namespaces).

    .venv/bin/python benchmarks/bench_testnet_boot.py [--runs 3] [--firmware uefi] [--artifacts DIR]
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
from runbook_lib.result import Status  # noqa: E402


def one(network: str, args: argparse.Namespace, logs: Path) -> tuple[float | None, float]:
    p = {"network": network, "firmware": args.firmware, "accel": "tcg", "boot_timeout_s": 300,
         "port": free_port() if network == "user" else 8080}
    if args.artifacts:
        p["artifacts_dir"] = args.artifacts
    plan = step.preflight(STEP3.validate(p))
    if plan.first_problem() is not None:
        raise SystemExit(f"{network}: pre-flight: {plan.first_problem()}")
    t0 = time.monotonic()
    run = step.boot(plan, logs, on_event=None)
    wall = time.monotonic() - t0
    if run.status is not Status.PASS:
        print(f"  {network}: {run.status.value}: {run.cause}")
        return None, wall
    return run.timing.get("login_prompt_s"), wall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--firmware", default="uefi", choices=("uefi", "bios"))
    ap.add_argument("--artifacts", default="")
    args = ap.parse_args()
    got: dict[str, list[float]] = {"user": [], "testnet": []}
    walls: dict[str, list[float]] = {"user": [], "testnet": []}
    with tempfile.TemporaryDirectory(prefix="bench-testnet-") as tmp:
        for i in range(args.runs):
            for network in ("user", "testnet"):
                login, wall = one(network, args, Path(tmp) / f"{network}-{i}")
                walls[network].append(wall)
                if login is not None:
                    got[network].append(login)
                print(f"run {i + 1} {network:8} login prompt {login if login is not None else '-':>6} s, "
                      f"whole boot() {wall:6.1f} s", flush=True)
    print(f"\n{args.firmware}, TCG, {args.runs} runs each")
    for network in ("user", "testnet"):
        xs = got[network]
        if xs:
            print(f"  {network:8} login prompt median {statistics.median(xs):6.1f} s "
                  f"(min {min(xs):.1f}, max {max(xs):.1f}); boot() incl. setup/teardown median "
                  f"{statistics.median(walls[network]):.1f} s")
    if got["user"] and got["testnet"]:
        ratio = statistics.median(got["testnet"]) / statistics.median(got["user"])
        print(f"  testnet / user = {ratio:.3f} (target: within 1.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
