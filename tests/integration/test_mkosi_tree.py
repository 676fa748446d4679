"""mkosi_tree against real mkosi: the distribution's (Debian 12's mkosi 14) and a real pinned mkosi 25.

PyPI has no mkosi (its JSON API answers 404 for the name), so the pinned v25 comes from Debian's
mkosi source package (trixie: the upstream v25.3 tarball, laid out like the git submodule:
bin/mkosi launcher, mkosi/ package, pyproject.toml). It is fetched with apt-get source through a
private apt configuration (the system's apt sources stay untouched) and cached under
~/.cache/carbide-runbooks/test-inputs/. Without a reachable mirror the test skips locally and
fails under CI=true.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from runbook_lib import shell
from runbook_lib.build import mkosi_tree as mt
from runbook_lib.sandbox.ipxe import PrivateApt, system_mirror

pytestmark = pytest.mark.integration

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "carbide-runbooks" / "test-inputs"
SUITE = "trixie"  # ships mkosi 25.3


def _unavailable(msg: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{msg} (CI=true: this input must be reachable)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def mkosi25_source() -> Path:
    """The upstream mkosi 25.x source tree (from Debian's orig tarball), cached."""
    work = CACHE / "mkosi-src"
    tarballs = sorted(work.glob("mkosi_25.*.orig.tar.*"))
    if not tarballs:
        if not shutil.which("apt-get"):
            _unavailable("apt-get is needed to fetch Debian's mkosi source package")
        apt = PrivateApt(work / "apt", system_mirror(), SUITE, kind="deb-src")
        apt.prepare()
        rr = shell.run(apt.argv("update"), timeout=300)
        if not rr.ok:
            _unavailable(f"apt-get update ({SUITE} deb-src) failed: {rr.tail_text(3)}")
        # apt checks each file against the suite's Sources index as it lands. On this project's
        # machines the mirror answers 404 for the .dsc and the Debian diff but serves the upstream
        # tarball, which is all we need: apt-get exits 100 then, with the tarball in place.
        rr = shell.run(apt.argv("source", "--download-only", "mkosi"), timeout=300, cwd=work)
        tarballs = sorted(work.glob("mkosi_25.*.orig.tar.*"))
        if not tarballs:
            _unavailable(f"apt-get source --download-only mkosi failed: {rr.tail_text(3)}")
    tree = work / "tree"
    if not (tree / "bin" / "mkosi").exists():
        shutil.rmtree(tree, ignore_errors=True)
        tmp = work / "unpack"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(tarballs[-1]) as tf:
            tf.extractall(tmp, filter="data")
        (top,) = [d for d in tmp.iterdir() if d.is_dir()]
        top.rename(tree)
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


CONF = "[Distribution]\nDistribution=debian\nRelease=bookworm\n\n[Output]\nFormat=uki\n\n[Content]\nBootable=yes\n"
PROFILE = ("[Output]\nFormat=cpio\n\n[Distribution]\nDistribution=ubuntu\nRelease=noble\n\n"
           "[Build]\nToolsTreeDistribution=ubuntu\nToolsTree=default\n")


def _tree(root: Path) -> Path:
    pxe = root / "pxe"
    (pxe / "mkosi.profiles" / "rootfs").mkdir(parents=True)
    (pxe / "mkosi.conf").write_text(CONF)
    (pxe / "mkosi.profiles" / "rootfs" / "mkosi.conf").write_text(PROFILE)
    return root


@pytest.mark.needs_tool("mkosi", "Debian 12's mkosi, which old carbide trees run")
def test_distribution_mkosi_detected_with_its_real_version(tmp_path, no_leftover_processes):
    root = _tree(tmp_path)
    want = shell.capture(["mkosi", "--version"], timeout=30)
    assert want.ok, want.tail_text()
    rows = mt.mkosi_checks(root, [mt.MkosiUse("mkosi", (), ("create-ephemeral-image",), True)])
    row = rows[0]
    assert row.tool == "mkosi" and row.status == "ok", row
    assert row.found == f"{shutil.which('mkosi')} (the distribution's mkosi; the tree pins none)"
    assert row.version and row.version in want.tail[0]  # "mkosi 14" -> "14"
    by = {r.tool: r for r in rows}
    if mt.version_tuple(row.version) < (15,):
        assert "debootstrap" in by  # mkosi 14 builds Debian with debootstrap
        assert by["Format=uki"].status == "unusable"  # and has no uki format


def test_real_pinned_mkosi_25(tmp_path, mkosi25_source, no_leftover_processes):
    root = _tree(tmp_path)
    shutil.copytree(mkosi25_source, root / "pxe" / "mkosi", symlinks=True)
    exe = root / "pxe" / "mkosi" / "bin" / "mkosi"
    uses = [mt.MkosiUse(str(exe), ("rootfs",), ("mkosi-build-rootfs",), True)]
    rows = mt.mkosi_checks(root, uses, lambda p: "pxe/mkosi")
    first = rows[0]
    assert first.tool == "mkosi (pinned: pxe/mkosi/bin/mkosi)" and first.status == "ok", first
    assert first.version.startswith("25."), first
    assert "is not used by this tree" in first.found
    if shutil.which("mkosi"):
        assert f"{shutil.which('mkosi')} " in first.found  # names the distribution's, with its version
    py = next(r for r in rows if r.tool == "python3 (runs the pinned mkosi)")
    # the real pyproject.toml of mkosi 25 says requires-python = ">=3.9"
    assert "requires-python >=3.9" in py.needed_for and "execs python3" in py.needed_for
    assert py.status == "ok", py
    by = {r.tool: r for r in rows}
    ring = by["ubuntu archive keyring"]
    assert ring.needed_for == "mkosi (profile rootfs: ToolsTree=default, ubuntu)"
    assert ring.status == ("ok" if Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg").exists() else "missing")
    assert "ukify" not in by  # the tools tree brings it


def test_pinned_mkosi_missing_then_present(tmp_path, mkosi25_source):
    """The submodule not checked out: missing with the exact fix; once there, its version."""
    root = _tree(tmp_path)
    exe = root / "pxe" / "mkosi" / "bin" / "mkosi"
    uses = [mt.MkosiUse(str(exe), ("rootfs",), ("mkosi-build-rootfs",), True)]
    missing = mt.mkosi_checks(root, uses, lambda p: "pxe/mkosi")[0]
    assert missing.status == "missing" and missing.fix.endswith("submodule update --init pxe/mkosi")
    shutil.copytree(mkosi25_source, root / "pxe" / "mkosi", symlinks=True)
    assert mt.mkosi_checks(root, uses, lambda p: "pxe/mkosi")[0].status == "ok"
