#!/usr/bin/env python3
"""Plan resolution for a generated 1,000-task Makefile.toml (target: < 1 s).

The generated file has carbide's structure at scale: each task depends on up to three earlier
ones, every 10th has a `{ name, path }` dependency, every 25th a `run_task`, every 7th a
`condition`. Prints load (TOML parse) and resolve times, median of N runs, and the plan size.
Usage: .venv/bin/python benchmarks/bench_build_plan.py [N] [TASKS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from runbook_lib.build import makefile as mk


def generate(n: int) -> str:
    out = []
    for i in range(n):
        deps = [f'"t{j}"' for j in (i - 1, i - 3, i - 17) if j >= 0]
        if i % 10 == 5:
            deps.append(f'{{ name = "ext{i}", path = "${{REPO_ROOT}}/sub{i}" }}')
        lines = [f"[tasks.t{i}]", f"dependencies = [{', '.join(deps)}]"]
        if i % 7 == 3:
            lines.append('condition = { env_set = ["CI"], platforms = ["linux"] }')
        if i % 25 == 24:
            # like carbide's bfb-aarch64 -> internal-bfb-aarch64: a sub-flow over a few leaves
            lines.append(f'run_task = "t{i - 1}-internal"')
            out.append(f'[tasks.t{i - 1}-internal]\ndependencies = ["t{i - 2}-leaf"]\n'
                       f'[tasks.t{i - 2}-leaf]\nscript = "echo leaf"\n')
        else:
            lines.append(f'command = "echo"\nargs = ["task {i}", "${{REPO_ROOT}}/pxe"]')
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Makefile.toml"
        path.write_text(generate(n))
        loads, resolves, totals = [], [], []
        plan = None
        for _ in range(runs):
            t0 = time.perf_counter()
            mf = mk.load(path)
            t1 = time.perf_counter()
            plan = mk.resolve(mf, f"t{n - 1}", env={})
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            resolves.append(t2 - t1)
            totals.append(t2 - t0)
    assert plan is not None
    print(f"generated Makefile.toml: {len(mf.tasks)} tasks ({len(generate(n)) // 1024} KiB)")
    print(f"plan steps: {len(plan.steps)} (external {sum(s.kind == 'external' for s in plan.steps)}, "
          f"run_task sub-flows {sum(s.kind == 'run_task' for s in plan.steps)}, max depth "
          f"{max(s.depth for s in plan.steps)})")
    print(f"load (tomllib parse) median {statistics.median(loads) * 1000:.1f} ms")
    print(f"resolve            median {statistics.median(resolves) * 1000:.1f} ms")
    print(f"load + resolve     median {statistics.median(totals) * 1000:.1f} ms, "
          f"max {max(totals) * 1000:.1f} ms over {runs} runs (target < 1000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
