#!/usr/bin/env python3
"""Fixed overhead of `runbook run` (papermill, kernel start, report export) for step 1.

Prints: wall time of `runbook run 01_install_build_tools` (median of N), wall time of the
step itself called in-process (run_step1), and their difference = the runbook's overhead.
Target (issue 2): overhead <= 10 s on a 2-core machine. Not a test: figures only.
Usage: .venv/bin/python benchmarks/bench_runbook_overhead.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    from runbook_lib.tools import run_step1

    step = [timed(run_step1) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        def cli() -> None:
            subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "01_install_build_tools",
                            "--quiet", "--report-dir", tmp], check=True, capture_output=True)
        whole = [timed(cli) for _ in range(n)]
        from runbook_lib.report.export import export_html
        import nbformat
        from pathlib import Path
        nb_path = sorted(Path(tmp).glob("*.ipynb"))[-1]
        nb = nbformat.read(nb_path, as_version=4)
        export = [timed(lambda: export_html(nb, Path(tmp) / "x.html")) for _ in range(n)]
    s, w, e = statistics.median(step), statistics.median(whole), statistics.median(export)
    print(f"step 1 in-process (run_step1):      median {s:6.2f} s  runs {[round(x, 2) for x in step]}")
    print(f"runbook run 01 (papermill+reports): median {w:6.2f} s  runs {[round(x, 2) for x in whole]}")
    print(f"  of which HTML export:             median {e:6.2f} s")
    print(f"fixed overhead of runbook run:      {w - s:6.2f} s  (target <= 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
