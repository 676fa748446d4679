"""Every host path and program name the steps rely on, defined once.

Debian's packages put these where they are listed; each constant names the package that
provides it (step 1's registry, :mod:`runbook_lib.requirements`, turns them into checks).
"""

from __future__ import annotations

from pathlib import Path

QEMU = "qemu-system-x86_64"                                      # qemu-system-x86
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")              # ovmf
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")              # ovmf
SEABIOS = Path("/usr/share/seabios/bios-256k.bin")               # seabios
NIC_ROM = Path("/usr/lib/ipxe/qemu/efi-virtio.rom")              # ipxe-qemu
EFI_STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")   # systemd-boot-efi
BRIDGE_HELPER = Path("/usr/lib/qemu/qemu-bridge-helper")         # qemu-system-common
BRIDGE_CONF = Path("/etc/qemu/bridge.conf")                      # written by the user
OS_RELEASE = Path("/etc/os-release")


def bridge_allowed(bridge: str, conf: Path = BRIDGE_CONF) -> tuple[bool, str]:
    """Does qemu-bridge-helper's ACL allow `bridge`? (`allow NAME` or `allow all`; # comments)

    The one parser of bridge.conf: step 1's check and step 3's pre-flight both use it.
    """
    if not conf.exists():
        return False, f"{conf} does not exist"
    try:
        lines = conf.read_text().splitlines()
    except OSError as exc:
        return False, f"{conf} is not readable: {exc.strerror or exc}"
    allowed = []
    for ln in lines:
        words = ln.split("#", 1)[0].split()
        if len(words) == 2 and words[0] == "allow":
            allowed.append(words[1])
            if words[1] in (bridge, "all"):
                return True, f"{conf}: {ln.strip()}"
    return False, f"{conf} has no 'allow {bridge}' line (allows: {', '.join(allowed) or 'nothing'})"
