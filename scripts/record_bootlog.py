#!/usr/bin/env python3
"""Record a real serial console of a VM boot as a stamped log (for the boot-log corpus).

    scripts/record_bootlog.py OUT.log [--timeout 120] [--stop REGEX] -- ARGV...

ARGV is the whole command that starts the VM (qemu-system-x86_64 ..., possibly behind
``ip netns exec NS``); the token ``{serial}`` in it is replaced by a raw serial file
(use ``-serial file:{serial}``). Each complete line is written to OUT.log with the host
time since the start (``[+  12.345s] ``), exactly as step 3 records its consoles. The
recording ends when REGEX (default: a login prompt) is seen, when the VM exits, or on
the timeout; the VM's process group is always stopped. Nothing here judges the boot:
no early stop on a failure, so the log shows what really came next.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runbook_lib import shell  # noqa: E402
from runbook_lib.boot.analyze import DEFAULT_SUCCESS  # noqa: E402
from runbook_lib.boot.console import watch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--stop", default=DEFAULT_SUCCESS, help="regex that ends the recording")
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    args, cmd = ap.parse_args(argv[:cut]), argv[cut + 1:]
    if not cmd or not any("{serial}" in a for a in cmd):
        ap.error("give the VM command after --, with -serial file:{serial} in it")
    with tempfile.TemporaryDirectory(prefix="record-bootlog-") as tmp:
        raw = Path(tmp) / "serial.raw"
        full = [a.replace("{serial}", str(raw)) for a in cmd]
        t0 = time.monotonic()
        vm = shell.spawn(full, log_path=Path(tmp) / "vm.log")
        try:
            out = watch(raw, args.out, t0=t0, timeout_s=args.timeout, is_running=vm.running,
                        success_pattern=args.stop, stop_early=False)
        finally:
            vm.stop(grace=2.0)
        vm_log = (Path(tmp) / "vm.log").read_text(errors="replace").strip()
    print(f"{args.out}: ended={out.ended} after {out.duration_s:.1f}s, {out.analysis.lines} lines")
    if vm_log:
        print("vm output:\n" + vm_log[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
