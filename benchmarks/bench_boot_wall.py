#!/usr/bin/env python3
"""The runbook's boot against the bare qemu command, to the same login prompt.

bare: the stand-in is started (the boot needs it), then exactly the qemu argv the
runbook would run, with the serial file polled every 20 ms for the prompt.
runbook: preflight + boot() (stand-in, qemu, serial watch, analysis, teardown).
runbook run 03: the whole `runbook run 03` (papermill kernel, imports, the notebook's
pre-flight, boot, views, report export), wall time only.
Prints time to the prompt and total wall time for each, and the ratios to the bare boot.

Usage: .venv/bin/python benchmarks/bench_boot_wall.py [--firmware uefi|bios] [--runs 1]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib import shell  # noqa: E402
from runbook_lib.boot import qemu as vmq  # noqa: E402
from runbook_lib.boot import step  # noqa: E402
from runbook_lib.boot.analyze import DEFAULT_SUCCESS  # noqa: E402
from runbook_lib.boot.standin import BootScript, StandIn, free_port  # noqa: E402
from runbook_lib.params import STEP3  # noqa: E402


def bare(p: dict, tmp: Path) -> tuple[float, float]:
    t_start = time.monotonic()
    plan = step.Plan(p, step.resolve_artifacts(p), "tcg")
    serial = tmp / "serial.raw"
    cfg = vmq.VmConfig(serial_path=serial, firmware=p["firmware"], accel="tcg", mac=p["mac"],
                       uuid=vmq.default_uuid(p["mac"]))
    if p["firmware"] == "uefi":
        cfg.ovmf_vars = vmq.copy_vars(tmp / "vars.fd")
        cfg.tftp_dir = step.tftp_root(plan.artifacts, p["port"], tmp, [])
    else:
        cfg.bootfile = vmq.boot_url(p["port"], cfg.uuid)
    rx = re.compile(DEFAULT_SUCCESS.encode())
    with StandIn(plan.artifacts, BootScript(), port=p["port"]):
        t0 = time.monotonic()
        with shell.spawn(vmq.build_argv(cfg)):
            while True:
                data = serial.read_bytes() if serial.exists() else b""
                if rx.search(data[-4096:]):
                    prompt = time.monotonic() - t0
                    break
                if time.monotonic() - t0 > p["boot_timeout_s"]:
                    raise RuntimeError("bare qemu: no prompt")
                time.sleep(0.02)
    return prompt, time.monotonic() - t_start


def runbook(p: dict, tmp: Path) -> tuple[float, float]:
    t_start = time.monotonic()
    plan = step.preflight(p)
    run = step.boot(plan, tmp, on_event=None)
    assert run.status.value == "PASS", run.cause
    return float(run.timing["login_prompt_s"]), time.monotonic() - t_start


def runbook_run(p: dict, tmp: Path) -> tuple[float, float]:
    import subprocess

    t_start = time.monotonic()
    subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "03", "--quiet", "--report-dir", str(tmp),
                    "-p", "accel", "tcg", "-p", "port", str(p["port"]), "-p", "firmware", p["firmware"]],
                   check=True, capture_output=True, cwd=Path(__file__).resolve().parent.parent)
    wall = time.monotonic() - t_start
    return float("nan"), wall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--firmware", default="uefi", choices=("uefi", "bios"))
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for i in range(args.runs):
        for name, fn in (("bare qemu", bare), ("runbook", runbook), ("runbook run 03", runbook_run)):
            p = STEP3.validate({"accel": "tcg", "port": free_port(), "firmware": args.firmware,
                                "boot_timeout_s": 600})
            with tempfile.TemporaryDirectory() as tmp:
                prompt, wall = fn(p, Path(tmp))
            rows.append((name, prompt, wall))
            print(f"run {i + 1} {name:<10} prompt after {prompt:6.1f} s, wall {wall:6.1f} s", flush=True)
    b = [r for r in rows if r[0] == "bare qemu"]
    r = [x for x in rows if x[0] == "runbook"]
    bp, bw = sum(x[1] for x in b) / len(b), sum(x[2] for x in b) / len(b)
    rp, rw = sum(x[1] for x in r) / len(r), sum(x[2] for x in r) / len(r)
    w3 = [x[2] for x in rows if x[0] == "runbook run 03"]
    print(f"{args.firmware}: prompt runbook/bare = {rp / bp:.2f}x, wall runbook/bare = {rw / bw:.2f}x; "
          f"`runbook run 03` {sum(w3) / len(w3):.1f}s = {sum(w3) / len(w3) / bw:.2f}x the bare boot's wall "
          f"{bw:.1f}s (target <= 1.05x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
