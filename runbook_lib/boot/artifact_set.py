"""Which boot path a directory of artifacts allows, decided before QEMU starts.

Carbide's trees and the sandbox produce different sets: carbide embeds its chain script in
``ipxe.efi`` and never writes ``autoexec.ipxe``; older trees make ``carbide.efi`` (a UKI),
newer ones ``scout.efi`` (a loader that fetches ``scout.cpio.zst`` itself); only the sandbox
makes a separate kernel + initrd (``carbide.vmlinuz`` + ``carbide.root``) for BIOS.
:func:`detect` reads what is there (and whether each iPXE binary carries a script, with
:func:`runbook_lib.ipxe_inspect.embedded_script`); :func:`plan_path` turns it into the
pre-flight rows and the path step 3 takes for a firmware + network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifact_model import inventory
from ..build.artifacts import spec_for
from ..ipxe_inspect import Embedded, embedded_script
from ..sandbox.scripts import KERNEL_CMDLINE
from .run import Check

UKIS = ("carbide.efi", "scout.efi")
KERNEL, INITRD = "carbide.vmlinuz", "carbide.root"
PROVENANCE = "ipxe.provenance.json"


@dataclass
class ArtifactSet:
    root: Path
    uki: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    autoexec: bool = False
    sandbox: bool = False  # built by this project's sandbox (ipxe.provenance.json)
    ipxe: dict[str, Embedded] = field(default_factory=dict)  # ipxe.efi / ipxe.kpxe -> what it embeds

    def embeds(self, name: str) -> str:
        e = self.ipxe.get(name)
        return e.state if e is not None else "missing"


def detect(root: Path) -> ArtifactSet:
    s = ArtifactSet(root)
    s.uki = next((u for u in UKIS if (root / u).is_file()), None)
    s.kernel = KERNEL if (root / KERNEL).is_file() else None
    s.initrd = INITRD if (root / INITRD).is_file() else None
    s.autoexec = (root / "autoexec.ipxe").is_file()
    prov = root / PROVENANCE
    if prov.is_file():
        try:
            s.sandbox = "path" in json.loads(prov.read_text())
        except ValueError:
            s.sandbox = False
    for name in ("ipxe.efi", "ipxe.kpxe"):
        if (root / name).is_file():
            s.ipxe[name] = embedded_script(root / name)
    return s


@dataclass
class BootPath:
    """How step 3 boots these artifacts: the first stage, the script, what the stand-in chains."""

    description: str
    nic_rom: bool  # QEMU's own iPXE ROM is the PXE stage (it fetches the boot script itself)
    uki: str | None
    kernel: str | None
    initrd: str | None
    cmdline: str  # passed to the UKI (empty: the UKI keeps its embedded command line)
    exercised: list[str]  # artifacts the boot really runs
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def embedded_cmdline(path: Path) -> str:
    """A UKI's own `.cmdline` ("" when it has none or the file cannot be read)."""
    from ..inspect import pe

    try:
        with open(path, "rb") as fh:
            sec = pe.read_headers(fh).section(".cmdline")
            raw = pe.section_bytes(fh, sec, limit=8192) if sec is not None else b""
    except (OSError, pe.PeError):
        return ""
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()


def uki_cmdline(param: str, arts: ArtifactSet) -> str:
    """The `uki_cmdline` parameter resolved: auto = the sandbox's own for sandbox artifacts.

    "Keep the UKI's own" (none, or auto for other artifacts) passes the UKI's embedded `.cmdline`
    explicitly: iPXE always hands an EFI image a command line (at least the image's name), and
    systemd-stub uses any non-empty one instead of `.cmdline` (outside Secure Boot), so a chain
    without arguments would boot the kernel with the command line "carbide.efi" (seen here: no
    kernel console on the serial port)."""
    value = (param or "auto").strip()
    if value == "auto" and arts.sandbox:
        return KERNEL_CMDLINE
    if value in ("auto", "none"):
        return embedded_cmdline(arts.root / arts.uki) if arts.uki else ""
    return value


def plan_path(arts: ArtifactSet, firmware: str, network: str, cmdline_param: str = "auto",
              dhcp_machine_uuid: bool = True) -> tuple[BootPath, list[Check]]:
    checks: list[Check] = []
    notes: list[str] = []
    cmdline = uki_cmdline(cmdline_param, arts)
    need: list[str] = []
    efi = arts.ipxe.get("ipxe.efi")
    kpxe = arts.ipxe.get("ipxe.kpxe")
    nic_rom = firmware == "bios" and network == "user"
    if firmware == "uefi":
        if arts.uki is None:
            checks.append(Check("UKI", "FAIL", f"neither {' nor '.join(UKIS)} in {arts.root}",
                                "build the boot artifacts (step 2)"))
        if network in ("user", "testnet"):
            need.append("ipxe.efi")
        embedded = efi is not None and efi.state == "embedded"
        if network == "user" and embedded:
            nic_rom = True
            notes.append("ipxe.efi embeds a chain script that needs DHCP option 43.70, which QEMU "
                         "user networking cannot send: QEMU's NIC ROM (iPXE) fetched the boot script, "
                         "so ipxe.efi was not exercised (network = testnet exercises it)")
        elif network in ("user", "testnet") and efi is not None and efi.state == "none":
            if arts.autoexec:
                need.append("autoexec.ipxe")
                if network == "testnet" and dhcp_machine_uuid:
                    notes.append("ipxe.efi has no embedded script and runs autoexec.ipxe, which chains "
                                 "without option 43.70: the testnet's 43.70 is not what makes it chain")
            else:
                checks.append(Check("ipxe.efi script", "FAIL",
                                    "ipxe.efi embeds no script and there is no autoexec.ipxe beside it: "
                                    "iPXE would DHCP and load ipxe.efi again (a chain loop)",
                                    "rebuild iPXE with an embedded chain script (step 2, ipxe_source) or "
                                    "put an autoexec.ipxe beside it"))
        first = {"user": "OVMF PXEv4 -> TFTP ipxe.efi (QEMU user networking)",
                 "testnet": "OVMF PXEv4 -> TFTP ipxe.efi (the testnet's dnsmasq)",
                 "bridge": "OVMF -> carbide-dhcp's boot file"}[network]
        if nic_rom:
            first = "OVMF -> QEMU's NIC ROM (iPXE) -> the boot-script URL from QEMU's DHCP"
        script = ("" if nic_rom or network == "bridge" else
                  " (embedded script)" if embedded else " (autoexec.ipxe)")
        desc = f"{first}{script} -> /api/v0/pxe/boot -> {arts.uki or '?'}"
        exercised = ([] if nic_rom else ["ipxe.efi"]) + ([arts.uki] if arts.uki else [])
        kernel = initrd = None
    else:
        if arts.kernel is None or arts.initrd is None:
            checks.append(Check("BIOS kernel", "FAIL",
                                f"BIOS boots {KERNEL} + {INITRD}; {arts.root} has "
                                f"{', '.join(n for n in (arts.kernel, arts.initrd) if n) or 'neither'}"
                                + (f" (these artifacts allow UEFI: {arts.uki})" if arts.uki else ""),
                                "boot with firmware = uefi, or build the sandbox image (step 2)"))
        need += [n for n in (KERNEL, INITRD)]
        if network == "testnet":
            need.append("ipxe.kpxe")
            if kpxe is not None and kpxe.state == "none":
                checks.append(Check("ipxe.kpxe script", "FAIL",
                                    "ipxe.kpxe embeds no script (undionly.kpxe has no autoexec): it "
                                    "would DHCP and load ipxe.kpxe again (a chain loop)",
                                    "build iPXE from source (step 2 with ipxe_source) so the chain "
                                    "script is embedded"))
            elif kpxe is not None and kpxe.state == "unknown":
                checks.append(Check("ipxe.kpxe script", "warn", f"could not tell: {kpxe.note}"))
            desc = ("SeaBIOS -> NIC ROM (iPXE, PXE stage only) -> TFTP ipxe.kpxe (embedded script) -> "
                    "/api/v0/pxe/boot -> kernel + initrd")
            exercised = ["ipxe.kpxe", KERNEL, INITRD]
        elif network == "user":
            desc = "SeaBIOS -> NIC ROM (iPXE) -> the boot-script URL from QEMU's DHCP -> kernel + initrd"
            notes.append("BIOS: QEMU's NIC option ROM (iPXE) fetched the boot script itself; ipxe.kpxe "
                         "was not exercised (network = testnet exercises it)")
            exercised = [KERNEL, INITRD]
        else:
            desc = "SeaBIOS -> carbide-dhcp's boot file"
            exercised = []
        kernel, initrd = arts.kernel or KERNEL, arts.initrd or INITRD
        # A kernel has no embedded command line: without one the serial console stays silent.
        cmdline = KERNEL_CMDLINE if cmdline_param.strip() in ("auto", "", "none") else cmdline
    if firmware == "uefi" and arts.uki:
        need.append(arts.uki)
    if arts.root.is_dir() and need:
        inv = inventory(arts.root, [spec_for(n) for n in dict.fromkeys(need)])
        bad = [r for r in inv.rows if r.expected and r.problem()]
        sizes = ", ".join(f"{r.name} {r.to_row()['size']}" for r in inv.rows if r.expected)
        checks.append(Check("artifacts", "FAIL" if bad else "ok",
                            f"{arts.root}: " + ("; ".join(f"{r.name} {r.status} ({r.note})" for r in bad)
                                                if bad else sizes),
                            "rebuild the boot artifacts (step 2)" if bad else ""))
    named = {c.check for c in checks}
    for name, e in arts.ipxe.items():
        if f"{name} script" in named:
            continue
        if name in need or (name == "ipxe.efi" and firmware == "uefi"):
            detail = {"embedded": "embeds a chain script" + (
                " that needs option 43.70" if e.needs_43_70 else ""),
                      "none": "no embedded script", "unknown": f"unknown ({e.note})"}[e.state]
            if e.version:
                detail += f"; {e.version}"
            checks.append(Check(f"{name} script", "ok", detail))
    if arts.uki == "scout.efi":
        notes.append("scout.efi (newer carbide trees) is a loader: it fetches scout.cpio.zst from the "
                     "same server itself")
    path = BootPath(desc, nic_rom, arts.uki if firmware == "uefi" else None, kernel, initrd,
                    cmdline, exercised, notes)
    kept = cmdline_param.strip() in ("none",) or (cmdline_param.strip() in ("auto", "") and not arts.sandbox)
    checks.append(Check("boot path", "ok", desc + (
        (f"; UKI command line: its own .cmdline, passed explicitly: {cmdline!r}" if kept and cmdline else
         "; the UKI has no .cmdline of its own: iPXE passes only the image name" if kept else
         f"; UKI command line: {cmdline!r}") if firmware == "uefi" else "")))
    return path, checks
