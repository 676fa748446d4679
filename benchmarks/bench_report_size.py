#!/usr/bin/env python3
"""Report size and export time for a step-3 report of a 1 MB, 10 MB and 100 MB serial console.

The console is a recorded boot whose kernel lines repeat until the size is reached
(tests/fixtures/big_serial_log.py); it is replayed through step 3's report views by a real
`runbook run` (papermill, once per size). Then the report writer runs again in-process, timed:
`export` = what `runbook run` does after papermill (facts gathered, redaction, HTML with the
summary card, JSON), `export --embed-logs` = the same with the serial log embedded (what
`runbook report --embed-logs` writes). Targets: report <= 2 MB, export <= 5 s.

Usage: .venv/bin/python benchmarks/bench_report_size.py [--mb 1 10 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runbook_lib.report.export import write_reports  # noqa: E402
from runbook_lib.report.replay import write_notebook  # noqa: E402

LIMIT = 2 * 1024 * 1024


def _big_log():
    spec = importlib.util.spec_from_file_location("big_serial_log", ROOT / "tests" / "fixtures" / "big_serial_log.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def one(mb: float, runs: int, tmp: Path) -> None:
    log = tmp / f"serial-{mb:g}mb.log"
    t0 = time.perf_counter()
    size = _big_log().make(log, mb)
    made = time.perf_counter() - t0
    nb = write_notebook(tmp / f"replayed_{mb:g}mb.ipynb", log)
    out = tmp / f"r{mb:g}"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", str(nb), "--report-dir", str(out),
                          "--quiet"], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    run_s = time.perf_counter() - t0
    if res.returncode != 0:
        print(res.stdout[-2000:], res.stderr[-2000:])
        raise SystemExit(f"runbook run failed for {mb} MB")
    (executed,) = out.glob("*.ipynb")
    keep = tmp / "executed.ipynb"
    shutil.copyfile(executed, keep)
    for embed in (False, True):
        times = []
        for _ in range(runs):
            target = out / executed.name
            shutil.copyfile(keep, target)
            t0 = time.perf_counter()
            _, paths = write_reports(target, executed.stem, {}, gather=True, embed_logs=embed)
            times.append(time.perf_counter() - t0)
        html = paths["html"].stat().st_size
        times.sort()
        label = "export --embed-logs" if embed else "export"
        flag = "ok" if html <= LIMIT and times[len(times) // 2] <= 5 else "OVER TARGET"
        print(f"{mb:>5g} MB console ({size / 1e6:6.1f} MB, made in {made:.1f} s; runbook run {run_s:5.1f} s): "
              f"{label:20} html {html / 1e6:5.2f} MB, ipynb {paths['ipynb'].stat().st_size / 1e6:5.2f} MB, "
              f"median {times[len(times) // 2]:.2f} s (min {times[0]:.2f}) [{flag}]")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, nargs="+", default=[1, 10, 100])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print("targets: report <= 2 MB, export <= 5 s")
    with tempfile.TemporaryDirectory(prefix="bench-report-size-") as tmp:
        for mb in args.mb:
            one(mb, args.runs, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
