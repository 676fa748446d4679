"""Step 2 is not silent headless: `runbook run 02` on a fixture carbide tree prints
`[i/N] Running Task: ...` progress lines (papermill kernel -> stderr -> the terminal)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.needs_tool("cargo", "the real cargo dispatches `cargo make` to the fixture's cargo-make")]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree"


def test_runbook_run_02_prints_task_progress_lines(tmp_path):
    root = tmp_path / "docs_era"
    shutil.copytree(FIXTURES / "docs_era", root)
    env = dict(os.environ, PATH=f"{FIXTURES / 'bin'}{os.pathsep}{os.environ['PATH']}",
               XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("CI_UPLOAD_TOKEN", None)
    env.pop("RUNBOOK_HEADLESS", None)
    res = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "02", "-p", "carbide_root_dir",
                          str(root), "--report-dir", str(tmp_path / "reports")],
                         capture_output=True, text=True, timeout=600, env=env)
    both = res.stdout + res.stderr
    assert res.returncode == 0, both[-3000:]
    # at most one line every few seconds: the fixture's tasks are quick, so some are folded
    assert re.search(r"^\[\d+/12\] Running Task: [\w-]+$", both, re.M), both[-3000:]
    assert any("planned task(s)" in ln for ln in both.splitlines())
    assert any("finished" in ln or "stopped" in ln for ln in both.splitlines() if "planned tasks ran" in ln)
