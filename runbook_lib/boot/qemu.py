"""The QEMU command line for a PXE-booting VM, and its software TPM.

:func:`build_argv` is pure (unit-tested); :func:`start_swtpm` runs swtpm the way
carbide's docs/development/vm_pxe_client.md does (``swtpm socket --tpm2`` with a
state dir and a unix control socket), through :mod:`runbook_lib.shell`.

Networking:
- ``user``: QEMU's own DHCP + TFTP. UEFI: ``romfile=`` empties the NIC's option ROM
  so OVMF's native PXE runs and TFTP-loads ``ipxe.efi`` from the artifacts dir;
  its ``autoexec.ipxe`` chains the stand-in at 10.0.2.2. BIOS: the NIC's option ROM
  (QEMU's bundled iPXE) gets the boot-script URL itself as the DHCP bootfile, so
  ``ipxe.kpxe`` is not exercised.
  When ``ipxe.efi`` carries an embedded script (carbide's contract: it chains only with DHCP
  option 43.70, which user networking cannot send), UEFI does the same (``nic_rom``).
- ``testnet``: a tap (``tap0``) on the run's own bridge ``carbide0`` inside its network
  namespace (:mod:`runbook_lib.boot.testnet`; the caller wraps the argv in ``ip netns exec``).
  The run's dnsmasq hands out the first stage the way carbide-dhcp does.
- ``bridge``: ``-netdev bridge,br=carbide0`` through qemu-bridge-helper, for a real
  carbide install (its DHCP hands out the bootfile).

SMBIOS type 1 (manufacturer, product, version, serial) is set like carbide's
``dev/libvirt_host.xml`` does, so iPXE's ``${manufacturer}``/``${product}``/``${serial}``
(which carbide's embedded script sends to carbide-pxe) are not empty.
"""

from __future__ import annotations

import shlex
import shutil
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from .. import shell

from ..system_paths import BRIDGE_CONF, OVMF_CODE, OVMF_VARS, QEMU, SEABIOS, bridge_allowed

__all__ = ["BRIDGE_CONF", "OVMF_CODE", "OVMF_VARS", "QEMU", "SEABIOS", "bridge_allowed", "VmConfig",
           "build_argv", "boot_url", "default_uuid", "copy_vars", "start_swtpm", "swtpm_argv"]
GUEST_HOST_IP = "10.0.2.2"  # the host as seen from QEMU user networking
NETWORKS = ("user", "testnet", "bridge")
# What carbide's dev VM (dev/libvirt_host.xml) reports as SMBIOS type 1.
SMBIOS_MANUFACTURER = "Fedora"
SMBIOS_PRODUCT = "Virt-Manager"
SMBIOS_VERSION = "0.9.4"


def default_serial(mac: str) -> str:
    """A stable SMBIOS serial number per MAC."""
    return "CRB" + mac.replace(":", "").upper()


def default_uuid(mac: str) -> str:
    """A stable SMBIOS uuid per MAC (QEMU's default would be all zeros)."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"carbide-runbook-vm/{mac.lower()}"))


def boot_url(port: int, uuid: str, arch: str = "x86_64", host: str = GUEST_HOST_IP) -> str:
    buildarch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(arch, arch)
    return f"http://{host}:{port}/api/v0/pxe/boot?uuid={uuid}&buildarch={buildarch}"


@dataclass
class VmConfig:
    serial_path: Path
    firmware: str = "uefi"  # uefi | bios
    network: str = "user"  # user | testnet | bridge
    accel: str = "tcg"  # kvm | tcg (already resolved; "auto" is decided by the caller)
    tcg_thread: str = "multi"  # multi | single (TCG only)
    memory_mb: int = 4096
    cpus: int = 2
    mac: str = "52:54:00:12:34:56"
    uuid: str = ""
    tftp_dir: Path | None = None
    bootfile: str = "ipxe.efi"  # user+uefi: TFTP file; user+bios: the boot-script URL
    bridge: str = "carbide0"
    tap: str = "tap0"  # testnet: the tap inside the run's namespace
    nic_rom: bool | None = None  # None: the ROM only for BIOS; True: QEMU's iPXE ROM under UEFI too
    smbios_manufacturer: str = SMBIOS_MANUFACTURER
    smbios_product: str = SMBIOS_PRODUCT
    smbios_version: str = SMBIOS_VERSION
    smbios_serial: str = ""  # empty: default_serial(mac)
    ovmf_code: Path = OVMF_CODE
    ovmf_vars: Path | None = None  # the per-run copy
    tpm_socket: Path | None = None
    extra_args: str = ""
    qemu: str = QEMU
    notes: list[str] = field(default_factory=list)


def build_argv(cfg: VmConfig) -> list[str]:
    if cfg.firmware not in ("uefi", "bios"):
        raise ValueError(f"firmware must be uefi or bios, not {cfg.firmware!r}")
    if cfg.network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {cfg.network!r}")
    if cfg.accel not in ("kvm", "tcg"):
        raise ValueError(f"accel must be kvm or tcg here, not {cfg.accel!r}")
    # Multi-threaded TCG (one host thread per vCPU) boots ~16% faster here than one thread for
    # all vCPUs. It once hung a boot in ~40 (an RCU stall in the guest kernel's cross-CPU code
    # patching); the console watch names such a stall and step 3 boots once more (an
    # infrastructure event, not a FAIL). `tcg_thread="single"` is the slower, steadier choice.
    accel = f"tcg,thread={cfg.tcg_thread}" if cfg.accel == "tcg" else cfg.accel
    argv = [cfg.qemu, "-name", "carbide-pxe-client", "-nodefaults", "-machine", "q35", "-accel", accel,
            "-m", str(cfg.memory_mb), "-smp", str(cfg.cpus),
            "-uuid", cfg.uuid or default_uuid(cfg.mac),
            "-smbios", "type=1," + ",".join(
                f"{k}={_qemu_opt(v)}" for k, v in (
                    ("manufacturer", cfg.smbios_manufacturer), ("product", cfg.smbios_product),
                    ("version", cfg.smbios_version),
                    ("serial", cfg.smbios_serial or default_serial(cfg.mac))) if v)]
    if cfg.accel == "kvm":
        argv += ["-cpu", "host"]
    if cfg.firmware == "uefi":
        if cfg.ovmf_vars is None:
            raise ValueError("UEFI needs a per-run copy of the OVMF vars (ovmf_vars)")
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={cfg.ovmf_code}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={cfg.ovmf_vars}"]
    else:
        # SeaBIOS and the NIC's iPXE ROM print to the serial port only without graphics.
        argv[argv.index("q35")] = "q35,graphics=off"
    if cfg.network == "user":
        netdev = "user,id=n0"
        if cfg.tftp_dir is not None:
            netdev += f",tftp={_qemu_opt(str(cfg.tftp_dir))}"
        if cfg.bootfile:
            netdev += f",bootfile={_qemu_opt(cfg.bootfile)}"
    elif cfg.network == "testnet":
        netdev = f"tap,id=n0,ifname={_qemu_opt(cfg.tap)},script=no,downscript=no"
    else:
        netdev = f"bridge,id=n0,br={_qemu_opt(cfg.bridge)}"
    nic = f"virtio-net-pci,netdev=n0,mac={cfg.mac}"
    rom = cfg.firmware == "bios" if cfg.nic_rom is None else cfg.nic_rom
    if not rom:
        nic += ",romfile="  # no iPXE option ROM: OVMF's native PXE (or HTTP boot) loads ipxe.efi
    argv += ["-netdev", netdev, "-device", nic, "-boot", "order=n"]
    if cfg.tpm_socket is not None:
        argv += ["-chardev", f"socket,id=chrtpm,path={_qemu_opt(str(cfg.tpm_socket))}",
                 "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
                 "-device", "tpm-tis,tpmdev=tpm0"]
    argv += ["-display", "none", "-vga", "none", "-monitor", "none",
             "-serial", f"file:{cfg.serial_path}", "-no-reboot"]
    argv += shlex.split(cfg.extra_args) if cfg.extra_args else []
    return argv


def _qemu_opt(value: str) -> str:
    """QEMU option values escape a comma by doubling it."""
    return value.replace(",", ",,")


def swtpm_argv(state_dir: Path) -> list[str]:
    sock = state_dir / "swtpm-sock"
    return ["swtpm", "socket", "--tpmstate", f"dir={state_dir}",
            "--ctrl", f"type=unixio,path={sock}", "--tpm2", "--log", "level=1"]


def start_swtpm(state_dir: Path, log_path: Path, wait_s: float = 10.0) -> tuple[shell.Proc, Path]:
    """Start swtpm and wait until its control socket exists."""
    state_dir.mkdir(parents=True, exist_ok=True)
    sock = state_dir / "swtpm-sock"
    proc = shell.spawn(swtpm_argv(state_dir), log_path=log_path)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.running() and not sock.exists():
        time.sleep(0.05)
    if not sock.exists():
        proc.stop()
        raise RuntimeError(f"swtpm did not create {sock} (see {log_path})")
    return proc, sock


def copy_vars(dest: Path, source: Path = OVMF_VARS) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest
