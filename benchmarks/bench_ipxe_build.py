"""iPXE from source (the sandbox's ipxe-x86_64 task): cold vs warm build time and compiled objects.

    .venv/bin/python benchmarks/bench_ipxe_build.py [--source TARBALL_OR_DIR] [--keep]

cold     = an empty private cache: extract the source, copy it into a build tree, make
           bin-x86_64-efi/snponly.efi + bin/undionly.kpxe (everything compiles).
warm     = the same inputs with --force: make runs again in the cached tree (0 compiles).
relink   = another port, so another embedded script: embedded.o twice, then both links.
reuse    = unchanged inputs without --force: the cached outputs are installed, make never runs.
Prints figures only; no pass/fail.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook_lib.sandbox import build  # noqa: E402
from runbook_lib.sandbox.ipxe_source import PINNED_COMMIT  # noqa: E402
from runbook_lib.sandbox.tasks import IPXE_TASK  # noqa: E402

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / f"ipxe-{PINNED_COMMIT}.tar.gz"


def run(label: str, **kw: object) -> tuple[str, float, dict]:
    t0 = time.monotonic()
    r = build(IPXE_TASK, download=False, **kw)  # type: ignore[arg-type]
    dt = time.monotonic() - t0 - float(r.details.get("lock_wait_s", 0.0))
    if r.status.value != "PASS":
        raise SystemExit(f"{label}: build failed: {r}")
    facts = dict(r.details.get("ipxe_build") or {})
    print(f"# {label}: {dt:.1f} s, {facts}", flush=True)
    return label, dt, facts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="iPXE source tarball or directory")
    ap.add_argument("--keep", action="store_true", help="keep the private cache and workdir")
    args = ap.parse_args()
    if not args.source.exists():
        raise SystemExit(f"{args.source} is missing (see ../shared/data/README.md)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ipxe-"))
    try:
        kw = {"workdir": tmp / "wd", "cache": tmp / "cache", "ipxe_source": args.source}
        rows = [run("cold", **kw), run("warm (force)", force=True, **kw),
                run("relink (new script)", port=18080, **kw), run("reuse (unchanged)", port=18080, **kw)]
        cold = rows[0][1]
        print()
        print(f"{'build':22} {'seconds':>9} {'of cold':>8} {'compiled':>9} {'make s':>7}  make steps")
        for label, dt, facts in rows:
            steps = facts.get("make_steps", {})
            shown = {k: v for k, v in steps.items() if k != "DEPS"} if isinstance(steps, dict) else steps
            print(f"{label:22} {dt:9.1f} {100 * dt / cold:7.1f}% {facts.get('compiled_objects', 0):9} "
                  f"{facts.get('make_seconds', 0.0) or 0.0:7.1f}  {shown or '-'}")
        for name in ("ipxe.efi", "ipxe.kpxe"):
            p = tmp / "wd" / "pxe" / "static" / "blobs" / "internal" / "x86_64" / name
            print(f"{name:22} {p.stat().st_size:9d} bytes")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
