from __future__ import annotations

import os
from pathlib import Path

import pytest

from runbook_lib import tools
from runbook_lib.result import Status
from runbook_lib.tools import Check, Platform, ToolReport, ToolSpec


@pytest.mark.parametrize("text,version", [
    ("mkosi 14", "14"),
    ("*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***", "1.5.4"),
    ("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)", "7.2.22"),
    ("debootstrap 1.0.128+nmu2+deb12u2", "1.0.128+nmu2+deb12u2"),
    ("", ""),
])
def test_parse_version(text, version):
    assert tools.parse_version(text) == version


def test_version_tuple_compares_numerically():
    assert tools.version_tuple("9") < (14,) <= tools.version_tuple("14.1")


@pytest.mark.parametrize("lines,msg,pkg", [
    (["Reading package lists...", "E: Unable to locate package carbide-nope"],
     "Unable to locate package carbide-nope", "carbide-nope"),
    (["E: Package 'ipxe' has no installation candidate"], "Package 'ipxe' has no installation candidate", "ipxe"),
    (["E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 12"],
     "Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 12", None),
    (["all fine"], "", None),
])
def test_parse_apt_error(lines, msg, pkg):
    assert tools.parse_apt_error(lines) == (msg, pkg)


def test_missing_command_gives_exact_apt_fix(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    spec = ToolSpec("frobnicate", "step 9", "frob-pkg", target="frobnicate-not-installed")
    check = tools.check_one(spec, required=True)
    assert check.status == "missing" and check.installable
    assert check.fix == "sudo apt-get install -y frob-pkg"


def test_too_old_is_detected(monkeypatch):
    spec = ToolSpec("python", "x", "python3", target="python3",
                    version_argv=("python3", "-c", "print('python 3.11')"), min_version=(99,))
    check = tools.check_one(spec, required=True)
    assert check.status == "too old" and "needs >= 99" in check.fix


def test_file_check_reports_missing_path(tmp_path):
    spec = ToolSpec("stub", "x", "systemd-boot-efi", kind="file", target=str(tmp_path / "nope.stub"))
    assert tools.check_one(spec, required=True).found.startswith("missing: ")


@pytest.mark.parametrize("content,status", [
    ("allow carbide0\n", "ok"), ("allow all\n", "ok"), ("allow virbr0\n", "missing"), (None, "missing"),
    ("allow carbide0 # dev bridge\n", "ok"), ("# allow carbide0\n", "missing"),
    ("allow carbide0 extra\n", "missing"),
])
def test_bridge_conf_step1_and_step3_agree(tmp_path, content, status):
    """One parser: step 1's row and step 3's pre-flight give the same answer for every file."""
    from runbook_lib.system_paths import bridge_allowed

    conf = tmp_path / "bridge.conf"
    if content is not None:
        conf.write_text(content)
    base = Check("bridge.conf", "x", True, "missing")
    assert tools.check_bridge_conf(base, conf).status == status
    assert bridge_allowed("carbide0", conf)[0] is (status == "ok")


def test_requirements_follow_mode_and_wants():
    specs = {s.name: s for s in tools._spec_list()}
    assert tools.is_required(specs["cargo-make"], "carbide", False, False)
    assert not tools.is_required(specs["cargo-make"], "sandbox", False, False)
    assert tools.is_required(specs["dnsmasq"], "sandbox", True, False)
    assert not tools.is_required(specs["swtpm"], "sandbox", False, False)
    assert not tools.is_required(specs["KVM"], "sandbox", True, True)


def _report(checks, apt=True):
    return ToolReport(checks, "sandbox", Platform("debian", "12", apt))


def test_summary_error_names_first_missing_tool_and_one_install_command(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    rep = _report([
        Check("mkosi", "s1", True, "missing", package="mkosi", fix=tools.apt_fix("mkosi")),
        Check("debootstrap", "s1", True, "missing", package="debootstrap"),
        Check("swtpm", "s3", False, "missing", package="swtpm"),
    ])
    res = tools.summarize(rep)
    assert res.status is Status.ERROR
    assert res.cause.startswith("mkosi: missing")
    assert "apt-get install -y mkosi debootstrap swtpm" in res.fix
    assert rep.installable_packages(["swtpm"]) == ["swtpm"]


def test_non_apt_host_is_an_error_with_manual_instructions():
    plat = Platform("fedora", "40", apt=False)
    rep = ToolReport([plat.check(), Check("mkosi", "s1", True, "missing", package="mkosi")], "sandbox", plat)
    res = tools.summarize(rep)
    assert res.status is Status.ERROR and "install by hand" in res.fix
    out = tools.install_packages(["mkosi"], platform=plat)
    assert out.status is Status.ERROR and "not a Debian/Ubuntu host" in out.message


def test_dry_run_install_shows_exact_command_and_runs_nothing(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    seen: list[str] = []
    out = tools.install_packages(["mkosi", "debootstrap"], dry_run=True, on_line=seen.append,
                                 platform=Platform("debian", "12", True))
    assert out.status is Status.PASS and not out.ran
    assert out.command.endswith("apt-get install -y -q --no-install-recommends mkosi debootstrap")
    assert seen and "would run" in seen[0]


def test_platform_detect_reads_os_release(tmp_path):
    f = tmp_path / "os-release"
    f.write_text('ID=debian\nVERSION_ID="12"\n')
    plat = Platform.detect(f)
    assert (plat.distro, plat.version) == ("debian", "12")


def test_disk_check(tmp_path):
    assert tools.check_disk(tmp_path / "not" / "yet", 0).status == "ok"
    assert tools.check_disk(tmp_path, 1e9).status == "unusable"


def test_all_packages_unique_and_cover_the_documented_step():
    pkgs = tools.all_packages()
    assert len(pkgs) == len(set(pkgs)) and {"mkosi", "debootstrap"} <= set(pkgs)


def test_install_panel_offers_missing_packages():
    from runbook_lib.widgets import install_panel

    rep = _report([Check("mkosi", "s1", True, "missing", package="mkosi"),
                   Check("zstd", "s2", True, "ok", package="zstd")])
    res = tools.summarize(rep)
    panel = install_panel(res)
    boxes = [c for c in panel.children[1].children]
    assert [b.description for b in boxes] == ["mkosi"]
    done = tools.summarize(_report([Check("zstd", "s2", True, "ok", package="zstd")]))
    assert "Nothing to install" in install_panel(done).value


@pytest.mark.integration  # runs every registry check for real (~1.5 s of version probes)
def test_step1_checklist_is_host_independent(tmp_path):
    """Notebook 01's checked cell: required tools and ok/not, no paths, versions, users or KVM,
    so it holds on any host that has the tools (a KVM host, a non-root user, cargo-make present)."""
    import re

    step = tools.ToolsStep({}, tmp_path)
    step.run()
    table = step.checklist()
    assert list(table.columns) == ["tool", "needed for", "status"]
    text = table.to_string()
    assert not re.search(r"/(usr|root|home|tmp)/|\d+\.\d+|KVM|cargo-make|" + re.escape(os.environ.get("USER", "root") + ":"), text)
    assert set(table["tool"]) >= {"mkosi", "debootstrap", "qemu-system-x86_64"}
