"""Elevation as a real non-root user: a refused sudo is ERROR (exit 2) naming the fix, not FAIL.

A throw-away user is created (and removed afterwards); it runs real step entry points
through `runuser`: step 1's apt installer and the sandbox image build, once without any
sudo rights, then (installer) with a sudoers drop-in granting NOPASSWD.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="creates a user and a sudoers drop-in: needs root")]

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGE = "hello"  # small, not needed by anything: what the user installs through sudo
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "install ok installed"


@pytest.fixture(scope="module")
def sudo() -> str:
    """sudo, installed when missing (scripts/test.sh installs it already)."""
    if shutil.which("sudo") is None:
        out = subprocess.run(["apt-get", "install", "-y", "-q", "sudo"], capture_output=True, text=True,
                             timeout=900, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if out.returncode != 0 or shutil.which("sudo") is None:
            msg = f"sudo is not installed and apt-get install sudo failed: {out.stdout[-500:]}{out.stderr[-500:]}"
            if _ci():
                pytest.fail(msg)
            pytest.skip(msg)
    path = shutil.which("sudo")
    assert path
    return path


@pytest.fixture
def user(sudo: str):
    """A fresh non-root user with a home directory and no sudo rights; removed afterwards."""
    name = f"rbtest{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True, timeout=60)
    dropin = Path("/etc/sudoers.d") / name
    try:
        yield pwd.getpwnam(name)
    finally:
        dropin.unlink(missing_ok=True)
        subprocess.run(["userdel", "--remove", name], capture_output=True, timeout=60)


def _python_for(user: pwd.struct_passwd) -> str:
    """The venv's interpreter if the user may run it; else the system's of the same version.

    (A venv made from an interpreter under /root, e.g. pyenv's, is not executable by others.)
    """
    candidates = [sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"]
    for py in candidates:
        if not os.path.exists(py):
            continue
        probe = subprocess.run(["runuser", "-u", user.pw_name, "--", py, "-c", "pass"],
                               capture_output=True, timeout=60)
        if probe.returncode == 0:
            return py
    pytest.fail(f"no Python {sys.version_info[0]}.{sys.version_info[1]} the user {user.pw_name} may run "
                f"(tried {', '.join(candidates)})")


def as_user(user: pwd.struct_passwd, code: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run Python `code` as `user` with this checkout and this venv's packages, in a clean environment."""
    purelib = sysconfig.get_paths()["purelib"]
    prelude = (f"import site, sys\nsite.addsitedir({purelib!r})\nsys.path.insert(0, {str(REPO)!r})\n")
    env = {"HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name, "PATH": SAFE_PATH,
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    argv = ["runuser", "-u", user.pw_name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
            _python_for(user), "-c", prelude + code]
    return subprocess.run(argv, cwd=user.pw_dir, capture_output=True, text=True, timeout=timeout)


INSTALL = f"""
from runbook_lib import tools
out = tools.install_packages([{PACKAGE!r}])
print("STATUS", out.status.name)
print("MESSAGE", out.message)
sys.exit(out.status.exit_code)
"""


def test_refused_sudo_is_an_error_naming_the_fix_then_nopasswd_works(user: pwd.struct_passwd) -> None:
    had_package = _installed(PACKAGE)
    refused = as_user(user, INSTALL)
    out = refused.stdout + refused.stderr
    assert refused.returncode == 2, out  # ERROR, not FAIL (1): the environment is at fault
    assert "STATUS ERROR" in out and "Traceback" not in out
    assert f"allow passwordless sudo for {user.pw_name}" in out and "run as root" in out
    assert "check the package name" not in out and "apt-get failed" not in out

    dropin = Path("/etc/sudoers.d") / user.pw_name
    dropin.write_text(f"{user.pw_name} ALL=(root) NOPASSWD: ALL\n")
    dropin.chmod(0o440)
    subprocess.run(["visudo", "-cf", str(dropin)], check=True, capture_output=True, timeout=60)
    try:
        allowed = as_user(user, INSTALL)
        out = allowed.stdout + allowed.stderr
        assert allowed.returncode == 0, out
        assert "STATUS PASS" in out and _installed(PACKAGE)
    finally:
        if not had_package and _installed(PACKAGE):
            subprocess.run(["apt-get", "purge", "-y", "-q", PACKAGE], capture_output=True, timeout=600,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def test_refused_sudo_stops_the_sandbox_build_with_error_not_fail(user: pwd.struct_passwd,
                                                                  tmp_path: Path) -> None:
    workdir = Path(user.pw_dir) / "tree"
    code = ("from runbook_lib.sandbox.cli import main\n"
            f"sys.exit(main(['build', '--task', 'create-ephemeral-image', '--workdir', {str(workdir)!r}]))\n")
    res = as_user(user, code)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out  # ERROR: before this was mkosi's "sudo: a password is required", FAIL
    assert f"allow passwordless sudo for {user.pw_name}" in out and "Traceback" not in out
    assert "Execute Command" not in out or "mkosi" not in out  # mkosi never started
