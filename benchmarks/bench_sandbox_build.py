"""Cold vs warm sandbox build time per task, side by side, and artifact sizes.

    .venv/bin/python benchmarks/bench_sandbox_build.py [--tasks T ...] [--cache DIR]

cold  = ``build(task, force=True)``: every command runs (mkosi, objcopy, apt/dpkg-deb).
        The mkosi package cache and the downloaded ipxe .deb stay warm unless --cache
        points at an empty directory (then debootstrap downloads everything).
warm  = the same build again with unchanged inputs, same workdir (artifacts up to date).
fresh = unchanged inputs into a NEW workdir (outputs copied from the cache).
Target: warm <= 20% of cold. Needs root (mkosi). Prints figures only; no pass/fail.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib import paths  # noqa: E402
from runbook_lib.sandbox import EXPECTED_ARTIFACTS, TASKS, build  # noqa: E402


def timed(**kw: object) -> tuple[float, object]:
    t0 = time.monotonic()
    r = build(**kw)  # type: ignore[arg-type]
    dt = time.monotonic() - t0
    if r.status.value != "PASS":
        raise SystemExit(f"build failed: {r}")
    waited = float(r.details.get("lock_wait_s", 0.0))  # another build held the lock: not ours
    if waited > 0.5:
        print(f"#   (waited {waited:.1f} s for another sandbox build; excluded)", flush=True)
    return dt - waited, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--cache", default=None, help="cache dir (default: the user's; empty dir = fully cold)")
    args = ap.parse_args()
    cache = Path(args.cache) if args.cache else paths.cache_dir()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        for task in args.tasks:
            wd = Path(tmp) / task
            print(f"# {task}: cold (force) ...", flush=True)
            cold, _ = timed(task=task, workdir=wd, force=True, cache=cache)
            print(f"# {task}: warm (same workdir) ...", flush=True)
            warm, _ = timed(task=task, workdir=wd, cache=cache)
            print(f"# {task}: warm (fresh workdir) ...", flush=True)
            fresh, _ = timed(task=task, workdir=Path(tmp) / f"{task}-fresh", cache=cache)
            rows.append((task, cold, warm, fresh))
        sizes = {a.name: (paths.artifacts_dir(Path(tmp) / args.tasks[-1], "x86_64") / a.name)
                 for a in EXPECTED_ARTIFACTS}
        print()
        print(f"{'task':32} {'cold s':>9} {'warm s':>9} {'warm/cold':>10} {'fresh s':>9} {'fresh/cold':>11}")
        for task, cold, warm, fresh in rows:
            print(f"{task:32} {cold:9.2f} {warm:9.2f} {100 * warm / cold:9.1f}% {fresh:9.2f} "
                  f"{100 * fresh / cold:10.1f}%")
        print()
        print(f"{'artifact':24} {'bytes':>12} {'MiB':>9}")
        for name, p in sizes.items():
            if p.exists():
                n = p.stat().st_size
                print(f"{name:24} {n:12d} {n / 2**20:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
