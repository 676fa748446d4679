"""Real apt transactions. Needs root and Debian's mirror; CI runs these."""

from __future__ import annotations

import os
import shutil

import pytest

from runbook_lib import shell, tools
from runbook_lib.result import Status

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"),
                                 reason="needs root and apt-get")]


def test_apt_failure_is_fail_naming_the_package_and_apt_message(tmp_path):
    out = tools.install_packages(["carbide-runbook-no-such-package"], log_path=tmp_path / "apt.log")
    assert out.status is Status.FAIL
    assert out.failed_package == "carbide-runbook-no-such-package"
    assert "Unable to locate package carbide-runbook-no-such-package" in out.apt_message
    assert (tmp_path / "apt.log").exists()


def test_install_missing_installs_then_second_run_installs_nothing(tmp_path):
    """Removes mtools (only used to build iPXE from source), lets step 1 put it back."""
    removed = shell.run(["apt-get", "remove", "-y", "-q", "mtools"], timeout=300,
                        env={"DEBIAN_FRONTEND": "noninteractive"})
    assert removed.ok, removed.tail_text()
    try:
        first = tools.run_step1(install_missing=True, log_dir=tmp_path)
        assert first.status is Status.PASS, str(first)
        assert "installed mtools" in first.summary
        before = first.tables["tools before install"].set_index("tool")
        after = first.tables["tools"].set_index("tool")
        assert before.loc["mtools", "status"] == "missing" and after.loc["mtools", "status"] == "ok"
        second = tools.run_step1(install_missing=True, log_dir=tmp_path)
        assert second.status is Status.PASS and "installed" not in second.summary
    finally:
        shell.run(["apt-get", "install", "-y", "-q", "mtools"], timeout=600,
                  env={"DEBIAN_FRONTEND": "noninteractive"})
