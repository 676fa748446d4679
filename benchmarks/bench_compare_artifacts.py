#!/usr/bin/env python3
"""`runbook compare-artifacts` on two sandbox-sized artifact sets, cold and warm (issue 10: warm <= 3 s).

REF is a real sandbox build (``runbook sandbox build`` output, ~160 MB: carbide.efi, carbide.root,
carbide.manifest, ipxe.efi, ipxe.kpxe, ...) or, with --ref, any artifact directory. DIR is a copy
of it in a temporary directory whose ipxe.efi is replaced by another real iPXE (QEMU's NIC ROM
by default: a different version, no embedded script), so the comparison has a difference to
find. Cold = an empty facts cache (both sets read: sha256 of every byte, the UKI's initrd and the
root unpacked through zstd); warm = the same comparison again (facts from the cache: stat() and
JSON). Also times the CLI (a new Python process: imports included) warm.

Usage: .venv/bin/python benchmarks/bench_compare_artifacts.py [--ref DIR] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runbook_lib import paths, shell  # noqa: E402
from runbook_lib.compare import compare_artifacts  # noqa: E402

OTHER_IPXE = Path("/usr/lib/ipxe/qemu/pxe-virtio.rom")


def total_size(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file() and not p.name.startswith("."))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", type=Path, default=paths.artifacts_dir(paths.sandbox_workdir()))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    ref: Path = args.ref
    if not (ref / "carbide.efi").is_file():
        print(f"no sandbox build in {ref}: run `runbook sandbox build` first (or give --ref)")
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # cold = empty facts cache
        mine = Path(tmp) / "dir"
        shutil.copytree(ref, mine)
        if OTHER_IPXE.is_file():
            shutil.copyfile(OTHER_IPXE, mine / "ipxe.efi")
        size_ref, size_dir = total_size(ref), total_size(mine)
        print(f"REF {ref}: {size_ref / 1e6:.1f} MB; DIR {mine}: {size_dir / 1e6:.1f} MB")
        t0 = time.perf_counter()
        cmp = compare_artifacts(ref, mine)
        cold = time.perf_counter() - t0
        print(f"cold: {cold:.2f} s  verdict {cmp.verdict}, {len(cmp.differences)} differences; first: "
              f"{cmp.differences[0].sentence[:140] if cmp.differences else '-'}")
        warm = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            again = compare_artifacts(ref, mine)
            warm.append(time.perf_counter() - t0)
            assert again.verdict == cmp.verdict
        print(f"warm (library, {args.runs} runs): median {statistics.median(warm):.3f} s, max {max(warm):.3f} s")
        cli = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            rr = shell.run([sys.executable, "-m", "runbook_lib.cli", "compare-artifacts", str(ref), str(mine)],
                           timeout=120, cwd=REPO, env={"PYTHONPATH": str(REPO)})
            cli.append(time.perf_counter() - t0)
            assert rr.returncode == cmp.exit_code, rr.tail_text()
        print(f"warm (CLI process, {args.runs} runs): median {statistics.median(cli):.3f} s, max {max(cli):.3f} s "
              f"(exit {cmp.exit_code})")
        ok = max(cli) <= 3.0
        print("target warm <= 3 s:", "met" if ok else "MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
