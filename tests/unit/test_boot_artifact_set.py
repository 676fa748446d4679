"""Which boot path an artifacts directory allows (step 3's pre-flight, issue 9 item 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.boot import artifact_set as aset
from runbook_lib.ipxe_inspect import Embedded
from runbook_lib.sandbox.scripts import KERNEL_CMDLINE

MB = 1024 * 1024


def make(root: Path, names: dict[str, int], embeds: dict[str, str], monkeypatch: pytest.MonkeyPatch,
         sandbox: bool = False) -> aset.ArtifactSet:
    root.mkdir(parents=True, exist_ok=True)
    for name, size in names.items():
        with open(root / name, "wb") as fh:
            fh.truncate(size)
    if sandbox:
        (root / "ipxe.provenance.json").write_text(json.dumps({"path": "source"}))

    def fake(path: Path) -> Embedded:
        state = embeds.get(path.name, "none")
        return Embedded(state, "#!ipxe\nisset ${43.70}\n" if state == "embedded" else None,
                        needs_43_70=True if state == "embedded" else None, note="synthetic")

    monkeypatch.setattr(aset, "embedded_script", fake)
    return aset.detect(root)


CARBIDE_DOCS = {"ipxe.efi": 317952, "ipxe.kpxe": 402000, "carbide.efi": 80 * MB, "carbide.root": 70 * MB}


def rows(checks: list) -> dict[str, tuple[str, str]]:
    return {c.check: (c.status, c.detail) for c in checks}


def test_carbide_tree_uefi_testnet_needs_no_autoexec_and_keeps_the_uki_cmdline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arts = make(tmp_path, CARBIDE_DOCS, {"ipxe.efi": "embedded", "ipxe.kpxe": "embedded"}, monkeypatch)
    assert arts.uki == "carbide.efi" and not arts.sandbox and not arts.autoexec
    path, checks = aset.plan_path(arts, "uefi", "testnet")
    r = rows(checks)
    assert r["artifacts"][0] == "ok", r["artifacts"]
    assert "43.70" in r["ipxe.efi script"][1]
    assert path.cmdline == "" and not path.nic_rom and path.exercised == ["ipxe.efi", "carbide.efi"]
    # these files are not PE images: no .cmdline to pass (tests/integration/test_uki_own_cmdline.py
    # checks a real UKI's being passed explicitly)
    assert "embedded script" in r["boot path"][1] and "no .cmdline of its own" in r["boot path"][1]


def test_embedded_ipxe_under_user_networking_uses_the_nic_rom_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arts = make(tmp_path, CARBIDE_DOCS, {"ipxe.efi": "embedded"}, monkeypatch)
    path, _ = aset.plan_path(arts, "uefi", "user")
    assert path.nic_rom and "ipxe.efi" not in path.exercised
    assert any("not exercised" in n and "testnet" in n for n in path.notes)


def test_newer_trees_boot_scout_efi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arts = make(tmp_path, {"ipxe.efi": 317952, "scout.efi": 40 * MB, "scout.cpio.zst": 900 * MB},
                {"ipxe.efi": "embedded"}, monkeypatch)
    path, checks = aset.plan_path(arts, "uefi", "testnet")
    assert path.uki == "scout.efi" and any("scout.cpio.zst" in n for n in path.notes)
    assert rows(checks)["artifacts"][0] == "ok"


def test_bios_without_a_separate_kernel_fails_naming_what_the_artifacts_allow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arts = make(tmp_path, CARBIDE_DOCS, {"ipxe.efi": "embedded", "ipxe.kpxe": "embedded"}, monkeypatch)
    _, checks = aset.plan_path(arts, "bios", "testnet")
    status, detail = rows(checks)["BIOS kernel"]
    assert status == "FAIL" and "allow UEFI: carbide.efi" in detail


def test_prebuilt_ipxe_needs_autoexec_and_a_stock_kpxe_would_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"ipxe.efi": 284672, "ipxe.kpxe": 108847, "carbide.efi": 80 * MB,
             "carbide.vmlinuz": 8 * MB, "carbide.root": 70 * MB}
    arts = make(tmp_path, sizes, {}, monkeypatch, sandbox=True)
    _, checks = aset.plan_path(arts, "uefi", "user")
    assert rows(checks)["ipxe.efi script"][0] == "FAIL"  # no embedded script and no autoexec.ipxe
    (tmp_path / "autoexec.ipxe").write_text("#!ipxe\n")
    arts = aset.detect(tmp_path)
    path, checks = aset.plan_path(arts, "uefi", "user")
    assert rows(checks)["artifacts"][0] == "ok" and path.cmdline == KERNEL_CMDLINE  # sandbox: auto
    _, checks = aset.plan_path(arts, "bios", "testnet")
    assert rows(checks)["ipxe.kpxe script"][0] == "FAIL"


@pytest.mark.parametrize("param,sandbox,want", [("auto", True, KERNEL_CMDLINE), ("auto", False, ""),
                                                ("none", True, ""), ("quiet console=ttyS0", False,
                                                                     "quiet console=ttyS0")])
def test_uki_cmdline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, param: str, sandbox: bool,
                     want: str) -> None:
    arts = make(tmp_path, CARBIDE_DOCS, {}, monkeypatch, sandbox=sandbox)
    assert aset.uki_cmdline(param, arts) == want


def test_bios_kernel_always_gets_a_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"carbide.vmlinuz": 8 * MB, "carbide.root": 70 * MB, "ipxe.kpxe": 402000}
    arts = make(tmp_path, sizes, {"ipxe.kpxe": "embedded"}, monkeypatch)
    path, _ = aset.plan_path(arts, "bios", "testnet", "none")
    assert path.cmdline == KERNEL_CMDLINE and path.exercised[0] == "ipxe.kpxe"
