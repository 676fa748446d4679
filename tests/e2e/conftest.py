"""One real, forced sandbox build per test session, through step 2 (BuildStep), shared by every
e2e test that inspects a fresh build. Each forced build costs 1-2.5 min on 2 cores; the suite
used to run three of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PASSWORD = "e2e-Sandbox-pw"  # not the public default: the tests check it never reaches a log


@pytest.fixture(scope="session")
def session_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if os.geteuid() != 0:
        pytest.skip("mkosi needs root")
    from runbook_lib import paths
    from runbook_lib.build.step import BuildStep

    root = tmp_path_factory.mktemp("session-build")
    workdir = root / "sandbox"
    step = BuildStep({"workdir": str(workdir), "force": True, "build_timeout_s": 1800,
                      "root_password": PASSWORD}, log_dir=root / "reports" / "run1")
    step.preflight()
    step.run()
    log = Path(step.parts["run"].logs["build"]) if "run" in step.parts and step.parts["run"].logs else None
    lines = log.read_text(errors="replace").splitlines() if log and log.exists() else []
    return {"step": step, "workdir": workdir, "root": root, "lines": lines, "log": log,
            "dir": paths.artifacts_dir(workdir, "x86_64"), "password": PASSWORD}
