"""mkosi_tree: the tree's mkosi configuration read with mkosi's syntax, the host rules per mkosi
version, and the rows step 1 shows (pinned vs. distribution's mkosi, required vs. optional)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runbook_lib.build import mkosi_tree as mt

HOST = mt.HostInfo(distribution="debian", release="bookworm", architecture="x86-64", kernel="6.1.0")

# Shaped like carbide's pxe/ tree (our own values): a Debian base building a UKI, a cpio profile
# on Ubuntu with a default tools tree, a loader profile that sets ToolsTree= in [Host] (as one of
# carbide's does), and a profile that only renames the output.
BASE = """\
[Distribution]
Distribution=debian
Release=bookworm

[Output]
Format=uki    # the whole image in a UKI

[Content]
Bootable=true
Packages=
     linux-image-amd64
     systemd-boot
Packages=less
"""
CPIO = """\
[Output]
Output=rootfs
CompressOutput=zstd
Format=cpio

[Distribution]
Distribution=ubuntu
Release=noble

[Build]
ToolsTreeDistribution=ubuntu
ToolsTree=default

[Content]
Bootable=no
"""
LOADER = """\
[Output]
Output=boot

[Distribution]
Distribution=ubuntu

[Host]
ToolsTree=default

[Content]
Bootable=yes
"""
IMAGER = "[Output]\nOutput=imager\n"


def make_tree(root: Path, version: str | None = "25.3", fail: bool = False) -> Path:
    pxe = root / "pxe"
    for name, text in (("cpio-x86", CPIO), ("loader-x86", LOADER), ("imager", IMAGER)):
        (pxe / "mkosi.profiles" / name).mkdir(parents=True)
        (pxe / "mkosi.profiles" / name / "mkosi.conf").write_text(text)
    (pxe / "mkosi.conf").write_text(BASE)
    if version is not None:
        sub = pxe / "mkosi"
        (sub / "bin").mkdir(parents=True)
        launcher = sub / "bin" / "mkosi"
        body = "echo 'boom: cannot import mkosi' >&2; exit 3" if fail else f"echo 'mkosi {version}'"
        launcher.write_text(f"#!/bin/sh\n# runs python3 -m mkosi in the real one\n{body}\n")
        launcher.chmod(0o755)
        (sub / "pyproject.toml").write_text(
            f'[project]\nname = "mkosi"\nversion = "{version}"\nrequires-python = ">=3.9"\n')
    return root


def use(root: Path, profile: str, required: bool = True, condition: str = "") -> mt.MkosiUse:
    return mt.MkosiUse(str(root / "pxe/mkosi/bin/mkosi"), (profile,), (f"mkosi-build-{profile}",),
                       required, condition)


def rows_by_tool(rows):
    return {r.tool: r for r in rows}


# ---- parsing -----------------------------------------------------------------------------

def test_parse_ini_sections_comments_repeats_and_continuations():
    entries = mt.parse_ini(BASE)
    assert ("Output", "Format", "uki") in entries  # comment after the value is dropped
    assert ("Content", "Packages", "linux-image-amd64\nsystemd-boot") in entries
    assert ("Content", "Packages", "less") in entries  # a repeated key is kept, in order


def test_parse_ini_dedents_the_whole_file_first():
    text = "  [Output]\n  Format=cpio\n  Packages=\n     a\n     b\n"
    assert mt.parse_ini(text) == [("Output", "Format", "cpio"), ("Output", "Packages", "a\nb")]


def test_parse_ini_rejects_settings_outside_a_section():
    with pytest.raises(ValueError, match="outside of a section"):
        mt.parse_ini("Format=cpio\n")


def test_profile_overrides_base_and_collections_append(tmp_path):
    make_tree(tmp_path)
    cfg = mt.load_config(tmp_path / "pxe", ("cpio-x86",), HOST)
    assert cfg.get("Format") == "cpio" and cfg.get("Distribution") == "ubuntu"
    assert cfg.get("ToolsTree") == "default"
    assert cfg.lists["Packages"] == ["linux-image-amd64", "systemd-boot", "less"]
    assert cfg.origin["Format"] == "mkosi.profiles/cpio-x86/mkosi.conf"
    base = mt.load_config(tmp_path / "pxe", (), HOST)
    assert base.get("Format") == "uki" and base.get("ToolsTree") == ""


def test_setting_in_another_section_is_found_by_name(tmp_path):
    """mkosi 25 looks settings up by name (it only warns about the section): [Host] ToolsTree=."""
    make_tree(tmp_path)
    assert mt.load_config(tmp_path / "pxe", ("loader-x86",), HOST).get("ToolsTree") == "default"


def test_empty_assignment_resets(tmp_path):
    make_tree(tmp_path)
    d = tmp_path / "pxe" / "mkosi.conf.d"
    d.mkdir()
    (d / "10-reset.conf").write_text("[Content]\nPackages=\nBootable=\n")
    cfg = mt.load_config(tmp_path / "pxe", (), HOST)
    assert cfg.lists["Packages"] == [] and cfg.get("Bootable") == ""


def test_match_sections_on_profiles_and_triggers(tmp_path):
    make_tree(tmp_path)
    d = tmp_path / "pxe" / "mkosi.conf.d"
    d.mkdir()
    (d / "20-only-cpio.conf").write_text("[Match]\nProfiles=cpio-x86\n\n[Output]\nCompressOutput=xz\n")
    (d / "30-not-imager.conf").write_text("[Match]\nProfiles=!imager\n\n[Content]\nBootable=auto\n")
    (d / "40-either.conf").write_text(
        "[Match]\nDistribution=|fedora\nDistribution=|debian\n\n[Match]\nArchitecture=x86-64\n\n"
        "[Output]\nOutputMode=0644\n")
    (d / "50-both.conf").write_text("[Match]\nDistribution=|fedora\n\n[Match]\nArchitecture=x86-64\n\n"
                                    "[Output]\nImageId=never\n")
    cfg = mt.load_config(tmp_path / "pxe", ("cpio-x86",), HOST)
    # 20 applied, then the profile (parsed after the drop-ins) set zstd again
    assert cfg.get("CompressOutput") == "zstd" and "mkosi.conf.d/20-only-cpio.conf" in cfg.files
    imager = mt.load_config(tmp_path / "pxe", ("imager",), HOST)
    assert "mkosi.conf.d/20-only-cpio.conf" not in imager.files
    assert imager.get("Bootable") == "true"  # 30 skipped for imager
    assert imager.get("OutputMode") == "0644"  # |debian triggered, x86-64 holds
    assert imager.get("ImageId") == ""  # the first [Match] (only fedora) fails


def test_directory_match_skips_the_whole_directory(tmp_path):
    make_tree(tmp_path)
    sub = tmp_path / "pxe" / "mkosi.conf.d" / "arm"
    (sub / "mkosi.conf.d").mkdir(parents=True)
    (sub / "mkosi.conf").write_text("[Match]\nArchitecture=arm64\n")
    (sub / "mkosi.conf.d" / "x.conf").write_text("[Output]\nFormat=tar\n")
    assert mt.load_config(tmp_path / "pxe", (), HOST).get("Format") == "uki"


def test_missing_profile_is_a_note(tmp_path):
    make_tree(tmp_path)
    cfg = mt.load_config(tmp_path / "pxe", ("nope",), HOST)
    assert any("profile nope" in n for n in cfg.notes)


# ---- rules per version -------------------------------------------------------------------

def tools(needs):
    return {n.tool for n in needs}


def test_v25_default_tools_tree_needs_only_the_tree_builders_tools(tmp_path):
    make_tree(tmp_path)
    cfg = mt.load_config(tmp_path / "pxe", ("cpio-x86",), HOST)
    needs = mt.host_needs(cfg, (25, 3), "profile cpio-x86", HOST)
    assert tools(needs) == {"apt-get", "dpkg", "ubuntu archive keyring", "Linux kernel with mount_setattr()"}
    ring = next(n for n in needs if n.tool == "ubuntu archive keyring")
    assert ring.target == "/usr/share/keyrings/ubuntu-archive-keyring.gpg" and ring.package == "ubuntu-keyring"
    assert ring.cause == "profile cpio-x86: ToolsTree=default, ubuntu"


def test_v25_tools_tree_distribution_defaults_to_the_host(tmp_path):
    make_tree(tmp_path)
    cfg = mt.load_config(tmp_path / "pxe", ("loader-x86",), HOST)
    needs = mt.host_needs(cfg, (25,), "profile loader-x86", HOST)
    assert "debian archive keyring" in tools(needs) and "ubuntu archive keyring" not in tools(needs)
    ubuntu_host = mt.HostInfo("ubuntu", "noble", "x86-64", "6.8")
    assert mt.default_tools_tree_distribution((25,), cfg, ubuntu_host) == "debian"
    # before v24 the tools tree followed the image's distribution
    assert mt.default_tools_tree_distribution((20,), cfg, HOST) == "ubuntu"


def test_v25_uki_without_tools_tree_needs_ukify_cpio_zstd_and_the_image_stub(tmp_path):
    make_tree(tmp_path)
    cfg = mt.load_config(tmp_path / "pxe", ("imager",), HOST)
    needs = {n.tool: n for n in mt.host_needs(cfg, (25,), "profile imager", HOST)}
    assert {"apt-get", "dpkg", "debian archive keyring", "ukify", "cpio", "zstd",
            "systemd-boot EFI stub (in the image)"} <= set(needs)
    assert "debootstrap" not in needs
    assert needs["ukify"].min_version == (254,) and needs["ukify"].package == "systemd-ukify"
    assert needs["systemd-boot EFI stub (in the image)"].target == "systemd-boot"
    assert needs["zstd"].cause == "profile imager: CompressOutput=zstd (implied for Format=uki)"


def test_v14_debian_uses_debootstrap_and_has_no_uki(tmp_path):
    make_tree(tmp_path)
    cfg = mt.load_config(tmp_path / "pxe", (), HOST)
    needs = {n.tool: n for n in mt.host_needs(cfg, (14,), "mkosi.conf", HOST)}
    assert {"debootstrap", "apt-get", "dpkg"} <= set(needs)
    assert needs["Format=uki"].kind == "incompatible"
    assert "ukify" not in needs and "Linux kernel with mount_setattr()" not in needs


def test_v14_cpio_compresses_with_xz_by_default(tmp_path):
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\n[Output]\nFormat=cpio\n")
    needs = {n.tool: n for n in mt.host_needs(mt.load_config(tmp_path, (), HOST), (14,), "x", HOST)}
    assert needs["xz"].package == "xz-utils" and "cpio" in needs and "zstd" not in needs
    needs25 = {n.tool for n in mt.host_needs(mt.load_config(tmp_path, (), HOST), (25,), "x", HOST)}
    assert "zstd" in needs25 and "xz" not in needs25


def test_v14_ubuntu_needs_the_ubuntu_keyring_for_debootstrap(tmp_path):
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=ubuntu\n[Output]\nFormat=directory\n")
    assert "ubuntu archive keyring" in tools(mt.host_needs(mt.load_config(tmp_path, (), HOST), (14,), "x", HOST))


def test_v25_bootable_cpio_ukify_is_optional_unless_ukis_are_forced(tmp_path):
    (tmp_path / "mkosi.conf").write_text("[Output]\nFormat=cpio\n[Content]\nBootable=yes\n")
    needs = {n.tool: n for n in mt.host_needs(mt.load_config(tmp_path, (), HOST), (25,), "x", HOST)}
    assert needs["ukify"].required is False
    (tmp_path / "mkosi.conf").write_text("[Output]\nFormat=cpio\n[Content]\nBootable=yes\nUnifiedKernelImages=yes\n")
    needs = {n.tool: n for n in mt.host_needs(mt.load_config(tmp_path, (), HOST), (25,), "x", HOST)}
    assert needs["ukify"].required is True


# ---- rows --------------------------------------------------------------------------------

def test_pinned_mkosi_row_shows_its_version_and_that_the_distributions_is_not_used(tmp_path):
    root = make_tree(tmp_path)
    rows = mt.mkosi_checks(root, [use(root, "cpio-x86")], host=HOST, apt_candidates=False)
    first = rows[0]
    assert first.tool == "mkosi (pinned: pxe/mkosi/bin/mkosi)" and first.status == "ok"
    assert first.version == "25.3"
    assert "is not used by this tree" in first.found
    py = rows_by_tool(rows)["python3 (runs the pinned mkosi)"]
    assert ">=3.9" in py.needed_for and py.status == "ok"


def test_pinned_mkosi_missing_names_the_submodule(tmp_path):
    root = make_tree(tmp_path, version=None)
    rows = mt.mkosi_checks(root, [use(root, "cpio-x86")], lambda p: "pxe/mkosi", host=HOST,
                           apt_candidates=False)
    assert rows[0].status == "missing"
    assert rows[0].fix == f"git -C {root} submodule update --init pxe/mkosi"
    # the rules still come from the configuration (mkosi 25 assumed, and said so)
    ring = rows_by_tool(rows)["ubuntu archive keyring"]
    assert "rules of mkosi 25 assumed" in ring.needed_for
    generic = mt.mkosi_checks(root, [use(root, "cpio-x86")], host=HOST, apt_candidates=False)
    assert "submodule update --init --recursive" in generic[0].fix


def test_pinned_mkosi_that_fails_to_run_is_unusable_with_the_first_error(tmp_path):
    root = make_tree(tmp_path, fail=True)
    row = mt.mkosi_checks(root, [use(root, "cpio-x86")], host=HOST, apt_candidates=False)[0]
    assert row.status == "unusable" and "boom: cannot import mkosi" in row.found
    assert row.version == "25.3"  # from its pyproject.toml


def test_rows_are_required_only_for_required_uses(tmp_path):
    root = make_tree(tmp_path)
    rows = mt.mkosi_checks(root, [use(root, "cpio-x86"),
                                  use(root, "imager", required=False, condition="env_not_set SA_ENABLEMENT")],
                           host=HOST, apt_candidates=False)
    by = rows_by_tool(rows)
    assert by["ubuntu archive keyring"].required is True
    assert by["ukify"].required is False
    assert by["ukify"].needed_for.endswith("only when env_not_set SA_ENABLEMENT")
    assert "profile imager: Format=uki" in by["ukify"].needed_for
    assert by["apt-get"].required is True  # needed by both: the required use wins
    assert "profile cpio-x86" in by["apt-get"].needed_for and "profile imager" in by["apt-get"].needed_for


def test_distribution_mkosi_missing_from_path(tmp_path, monkeypatch):
    make_tree(tmp_path, version=None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    rows = mt.mkosi_checks(tmp_path, [mt.MkosiUse("mkosi", (), ("t",), True)], host=HOST, apt_candidates=False)
    assert rows[0].tool == "mkosi" and rows[0].status == "missing" and "apt-get install -y mkosi" in rows[0].fix


def test_python_too_old_for_the_pinned_mkosi(tmp_path, monkeypatch):
    root = make_tree(tmp_path)
    (root / "pxe/mkosi/pyproject.toml").write_text('[project]\nversion = "25.3"\nrequires-python = ">=99.0"\n')
    rows = rows_by_tool(mt.mkosi_checks(root, [use(root, "cpio-x86")], host=HOST, apt_candidates=False))
    py = rows["python3 (runs the pinned mkosi)"]
    assert py.status == "too old" and "MKOSI_INTERPRETER" in py.fix


def test_requires_python_from_setup_cfg_and_setup_py(tmp_path):
    (tmp_path / "setup.cfg").write_text("[options]\npython_requires = >=3.7\n")
    assert mt.requires_python(tmp_path) == (">=3.7", "setup.cfg")
    (tmp_path / "setup.cfg").unlink()
    (tmp_path / "setup.py").write_text("setup(name='mkosi', python_requires='>=3.6')\n")
    assert mt.requires_python(tmp_path) == (">=3.6", "setup.py")


def test_satisfies():
    assert mt.satisfies("3.11.2", ">=3.9") and not mt.satisfies("3.8.10", ">=3.9")
    assert mt.satisfies("3.11.2", ">=3.9, <4") and not mt.satisfies("3.11.2", "<3.10")


def test_launcher_interpreter(tmp_path, monkeypatch):
    launcher = tmp_path / "mkosi"
    launcher.write_text('#!/usr/bin/env bash\nif [ -z "$MKOSI_INTERPRETER" ]; then MKOSI_INTERPRETER=python3; fi\n'
                        'exec "$MKOSI_INTERPRETER" -B -m mkosi "$@"\n')
    monkeypatch.delenv("MKOSI_INTERPRETER", raising=False)
    assert mt.launcher_interpreter(launcher) == "python3"
    monkeypatch.setenv("MKOSI_INTERPRETER", sys.executable)
    assert mt.launcher_interpreter(launcher) == sys.executable
    launcher.write_text("#!/usr/bin/python3.11\nimport mkosi\n")
    assert mt.launcher_interpreter(launcher) == "/usr/bin/python3.11"
    assert os.path.basename(mt.launcher_interpreter(tmp_path / "absent")) == "python3"
