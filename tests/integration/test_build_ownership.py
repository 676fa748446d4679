"""Ownership fix with real files owned by another uid in a tmp dir (needs root, as on these machines)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from runbook_lib.build import ownership as own
from runbook_lib.build.step import BuildStep
from runbook_lib.result import Status

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree"


def root_owned_static(base: Path) -> Path:
    static = base / "pxe" / "static"
    d = static / "blobs" / "internal" / "x86_64"
    d.mkdir(parents=True)
    (d / "carbide.efi").write_bytes(b"x" * 10)
    (d / ".mkosi-abc").mkdir()
    os.symlink("/etc/hostname", d / "link")  # must not be followed
    for p in [static, *static.rglob("*")]:
        os.lchown(p, 0, 0)
    return static


def test_root_owned_tree_is_chowned_back_and_verified(tmp_path):
    static = root_owned_static(tmp_path)
    nobody = pwd.getpwnam("nobody")
    etc_owner = os.stat("/etc/hostname").st_uid
    rep = own.fix(static, "nobody", log_path=tmp_path / "chown.log")
    assert rep.ran and rep.ok, rep.summary()
    assert rep.command.startswith("chown -R nobody:") and rep.command.endswith(str(static))
    assert len(rep.before) == 7  # static, blobs, internal, x86_64, carbide.efi, .mkosi-abc, link
    assert all(p.lstat().st_uid == nobody.pw_uid for p in [static, *static.rglob("*")])
    assert os.stat("/etc/hostname").st_uid == etc_owner  # the symlink target was left alone
    again = own.fix(static, "nobody")
    assert not again.ran and "nothing to do" in again.summary()


def test_sudo_user_is_the_default_target(tmp_path, monkeypatch):
    static = root_owned_static(tmp_path)
    monkeypatch.setenv("SUDO_USER", "nobody")
    rep = own.fix(static)
    assert rep.user.source == "SUDO_USER" and rep.ok and rep.ran


@pytest.mark.needs_tool("cargo", "the pre-flight runs `cargo make --version` (the fixture's cargo-make)")
def test_ownership_step_reports_the_command(tmp_path, monkeypatch):
    # the fixture's cargo-make stand-in: the pre-flight (plan + requirements) passes, nothing is built
    monkeypatch.setenv("PATH", f"{FIXTURES / 'bin'}{os.pathsep}{os.environ['PATH']}")
    root = tmp_path / "tree"
    (root / "pxe").mkdir(parents=True)
    (root / "Cargo.toml").write_text((FIXTURES / "docs_era" / "Cargo.toml").read_text())
    (root / "pxe" / "Makefile.toml").write_text((FIXTURES / "docs_era" / "pxe" / "Makefile.toml").read_text())
    root_owned_static(root)
    s = BuildStep({"carbide_root_dir": str(root), "chown_user": "nobody"}, log_dir=tmp_path / "logs")
    assert s.preflight().status is Status.PASS
    res = s.ownership()
    assert res.status is Status.PASS, res
    assert any(n.startswith("ran: chown -R nobody:") for n in res.notes)
    assert "chowned" in res.summary and "verified" in res.summary
