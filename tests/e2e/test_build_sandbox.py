"""A real sandbox build (mkosi + objcopy + iPXE) through the step-2 runbook functions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runbook_lib.build.step import BuildStep, build_ipxe_image
from runbook_lib.result import Status

pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="mkosi needs root")]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd and str(os.getpid()) != pid:
                found.append(f"{pid} {cmd[:120]}")
    return found


def test_real_sandbox_build_through_step2(session_build, tmp_path):
    """The session's forced build (tests/e2e/conftest.py) ran through BuildStep: check every part."""
    s = session_build["step"]
    workdir = session_build["workdir"]
    password = session_build["password"]
    plan = s.section("pre-flight")
    assert plan.status is Status.PASS, plan
    assert [r for r in plan.tables["plan"]["task"]] == [
        "create-ephemeral-image", "ipxe-x86_64", "build-boot-artifacts-x86_64"]
    run = s.section("run")
    assert run.status is Status.PASS, run
    assert s.verdict.kind == "clean"
    assert s.outcome.progress_done == ["create-ephemeral-image", "ipxe-x86_64",
                                       "build-boot-artifacts-x86_64"]
    log_text = Path(run.logs["build"]).read_text()
    assert password not in log_text  # the password travels in the environment, never logged

    arts = s.section("artifacts")
    assert arts.status is Status.PASS, arts
    table = arts.tables["artifacts"].set_index("file")
    for name in ("carbide.efi", "carbide.manifest", "carbide.root", "ipxe.efi", "ipxe.kpxe"):
        assert table.loc[name, "status"] == "ok" and table.loc[name, "fresh"] == "yes", name
    prov = json.loads((workdir / "pxe/static/blobs/internal/x86_64/ipxe.provenance.json").read_text())
    assert "iPXE provenance (ipxe.provenance.json)" in arts.tables
    assert any(str(prov.get("path", "")) in n for n in arts.notes)

    man = s.section("manifest")
    assert man.status is Status.PASS and man.details["packages"] > 50
    assert any(p == "systemd" for p in man.tables["packages"]["package"])
    assert s.section("ownership").status is Status.PASS
    assert s.result().status is Status.PASS
    # nothing of this build (mkosi, builder) is still running: matched by its own work dir
    assert _processes_mentioning(str(workdir)) == []

    # A second run with unchanged inputs: the builder's cache; the previous manifest is compared.
    again = build_ipxe_image({"workdir": str(workdir), "build_timeout_s": 1800, "root_password": password},
                             log_dir=tmp_path / "reports" / "run2")
    assert again.status is Status.PASS, again
    assert again.details["manifest"]["details"]["previous_found"] is True
    assert "no package changes" in again.details["manifest"]["summary"]
