"""`runbook run all -p workdir X`: step 2 builds in X and step 3 boots what is in X (one
parameter, one meaning across steps). Real papermill runs, a real sandbox build (cached outputs
are reused when the inputs did not change) and a real PXE boot under TCG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.paths import artifacts_dir, sandbox_workdir

pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="mkosi needs root"),
              pytest.mark.usefixtures("no_leftover_processes")]


def test_run_all_with_workdir_builds_and_boots_there(tmp_path):
    work = tmp_path / "work"
    reports = tmp_path / "reports"
    res = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "all", "-p", "workdir", str(work),
                          "-p", "accel", "tcg", "--report-dir", str(reports), "--quiet"],
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    built = artifacts_dir(work)
    assert (built / "carbide.efi").is_file() and (built / "ipxe.efi").is_file()
    boot_nb = next(reports.glob("*-03_pxe_boot_vm.ipynb")).read_text()
    assert str(built) in boot_nb  # the pre-flight names the artifacts it boots: X's
    assert str(artifacts_dir(sandbox_workdir())) not in boot_nb
    summary = json.loads(next(reports.glob("*-03_pxe_boot_vm.json")).read_text())
    assert summary["status"] == "PASS" and summary["parameters"]["workdir"] == str(work)
