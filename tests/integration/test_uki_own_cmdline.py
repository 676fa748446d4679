"""A UKI that keeps its own command line gets it passed explicitly (step 3's boot path).

iPXE hands every EFI image a command line (at least the image name) and systemd-stub prefers any
non-empty one to its `.cmdline` outside Secure Boot: seen on a real boot, where `chain carbide.efi`
without arguments left the kernel with the command line "carbide.efi" (no console on ttyS0). So
"keep the UKI's own" means: read `.cmdline` from the UKI and pass exactly that.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runbook_lib.boot import artifact_set as aset
from runbook_lib.sandbox.image import uki_argv
from runbook_lib.system_paths import EFI_STUB

pytestmark = [pytest.mark.integration,
              pytest.mark.needs_tool("objcopy", "assembles a real UKI from systemd's EFI stub")]

OWN = "console=ttyS0,115200 quiet carbide.own=1"


def real_uki(tmp_path: Path) -> Path:
    if not EFI_STUB.exists():
        pytest.fail(f"{EFI_STUB} missing: scripts/setup.sh installs systemd-boot-efi")
    parts = {}
    for name, data in (("osrel", b'PRETTY_NAME="test"\n'), ("cmdline", OWN.encode() + b"\n"),
                       ("linux", b"\0" * 4096), ("initrd", b"\0" * 512)):
        parts[name] = tmp_path / name
        parts[name].write_bytes(data)
    art = tmp_path / "art"
    art.mkdir()
    out = art / "carbide.efi"
    argv = uki_argv(EFI_STUB, parts["osrel"], parts["cmdline"], parts["linux"], parts["initrd"], out)
    subprocess.run(argv, check=True, timeout=60, capture_output=True)
    (art / "ipxe.efi").write_bytes(b"MZ" + b"\0" * 1000)
    return art


@pytest.mark.parametrize("param", ["none", "auto"])
def test_the_ukis_own_cmdline_is_passed_explicitly(tmp_path: Path, param: str) -> None:
    art = real_uki(tmp_path)
    assert aset.embedded_cmdline(art / "carbide.efi") == OWN
    arts = aset.detect(art)
    assert not arts.sandbox
    assert aset.uki_cmdline(param, arts) == OWN
    path, checks = aset.plan_path(arts, "uefi", "testnet", param)
    assert path.cmdline == OWN
    detail = next(c.detail for c in checks if c.check == "boot path")
    assert "its own .cmdline, passed explicitly" in detail and OWN in detail


def test_an_explicit_cmdline_still_wins(tmp_path: Path) -> None:
    arts = aset.detect(real_uki(tmp_path))
    assert aset.uki_cmdline("console=ttyS1", arts) == "console=ttyS1"
