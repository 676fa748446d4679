#!/usr/bin/env python3
"""Overhead of the step-2 runbook over the same build command run bare (target: <= 5 % + 10 s).

bare    = the build command alone (`cargo make TASK` in <tree>/pxe, or the sandbox builder),
          output to a file, nothing else.
runbook = BuildStep: plan (Makefile.toml / task list, tool checks), run (live tail, log parsing,
          progress), classification, artifact inventory, manifest diff, ownership check.
Modes:
  fixture  the docs-era fixture tree through the real `cargo` and the fixture's cargo-make
           stand-in (cargo-make itself is not installed here), seconds per run
  sandbox  the embedded sandbox builder; add --force for a real mkosi build each run (minutes)
Usage: .venv/bin/python benchmarks/bench_build_overhead.py [fixture|sandbox] [N] [--force]
Runs alternate bare/runbook so both see the same machine load (2 shared cores).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "carbide_tree"


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    mode = args[0] if args else "fixture"
    n = int(args[1]) if len(args) > 1 else 3
    force = "--force" in sys.argv
    from runbook_lib.build.step import BuildStep

    bare_t: list[float] = []
    book_t: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        if mode == "fixture":
            os.environ["PATH"] = f"{FIXTURES / 'bin'}{os.pathsep}{os.environ['PATH']}"
            root = tmpd / "tree"
            shutil.copytree(FIXTURES / "docs_era", root)
            bare_argv = ["cargo", "make", "build-boot-artifacts-x86_64"]
            bare_cwd = root / "pxe"
            params = {"carbide_root_dir": str(root)}
        elif mode == "sandbox":
            root = tmpd / "sandbox"
            bare_argv = [sys.executable, "-m", "runbook_lib.sandbox", "build", "--task",
                         "build-boot-artifacts-x86_64", "--workdir", str(root)] + (["--force"] if force else [])
            bare_cwd = REPO
            params = {"workdir": str(root), "force": force}
        else:
            print(f"unknown mode {mode!r}", file=sys.stderr)
            return 2
        for i in range(n):
            with open(tmpd / f"bare-{i}.log", "wb") as fh:
                t0 = time.perf_counter()
                rc = subprocess.run(bare_argv, cwd=bare_cwd, stdout=fh, stderr=subprocess.STDOUT).returncode
                bare_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            s = BuildStep(params, log_dir=tmpd / "reports" / f"run{i}")
            s.preflight()
            s.run()  # build, then artifacts, manifest and ownership
            res = s.result()
            book_t.append(time.perf_counter() - t0)
            print(f"run {i}: bare {bare_t[-1]:.2f} s (exit {rc}), runbook {book_t[-1]:.2f} s "
                  f"({res.status.value}: {res.summary[:70]})", flush=True)
    b, r = statistics.median(bare_t), statistics.median(book_t)
    over = r - b
    print(f"mode {mode}{' --force' if force else ''}, {n} runs each")
    print(f"bare    median {b:.2f} s  (min {min(bare_t):.2f}, max {max(bare_t):.2f})")
    print(f"runbook median {r:.2f} s  (min {min(book_t):.2f}, max {max(book_t):.2f})")
    print(f"overhead {over:+.2f} s = {100 * over / b:+.1f} % of bare; allowed 5 % + 10 s = "
          f"{0.05 * b + 10:.2f} s -> {'within' if over <= 0.05 * b + 10 else 'OVER'} target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
