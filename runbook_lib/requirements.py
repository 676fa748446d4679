"""The one registry of what the steps require: tools, files, privileges, ports.

Step 1 renders every entry (a table with the exact fix per row); each step's pre-flight
selects its own entries with :func:`for_step` and checks them with :func:`check`, so a
missing tool is reported the same way, with the same fix, wherever it is found.

An entry says which steps need it (``steps``) and under which condition it is required
(``when``: always, sandbox, carbide, bridge, user, testnet, tpm, uefi, bios, info). The condition
is evaluated against a :class:`Needs` built from a step's parameters.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from . import shell
from .system_paths import (BRIDGE_CONF, BRIDGE_HELPER, EFI_STUB, NIC_ROM, OVMF_CODE, OVMF_VARS,
                           QEMU, SEABIOS, bridge_allowed)

MKOSI_MIN = (14,)
TOOLS, BUILD, BOOT = "tools", "build", "boot"


@dataclass(frozen=True)
class Requirement:
    """A thing to check. `kind`: command, file, cargo-subcommand, bridge-conf, deb-src, kvm,
    privilege, port. `target`: command name, path(s), or port number."""

    name: str
    needed_for: str
    package: str | None
    kind: str = "command"
    target: str = ""
    version_argv: tuple[str, ...] = ()
    requires: str = "always"  # always | sandbox | carbide | bridge | user | testnet | tpm | uefi | bios | info
    fix: str = ""
    min_version: tuple[int, ...] | None = None
    steps: frozenset[str] = frozenset({TOOLS})


# Kept for callers that knew the registry's rows as tool specs.
ToolSpec = Requirement


@dataclass(frozen=True)
class Needs:
    """What a run needs, from its parameters: which conditional requirements apply.

    `firmware` and `network` are sets because step 1 checks for every way step 3 can run.
    """

    mode: str = "sandbox"
    bridge: bool = False
    tpm: bool = True
    firmware: frozenset[str] = frozenset({"uefi", "bios"})
    network: frozenset[str] = frozenset({"user"})

    def applies(self, condition: str) -> bool:
        return {
            "always": True,
            "sandbox": self.mode == "sandbox",
            "carbide": self.mode == "carbide",
            "bridge": self.bridge or "bridge" in self.network,
            "user": "user" in self.network,
            "testnet": "testnet" in self.network or self.bridge,
            "tpm": self.tpm,
            "uefi": "uefi" in self.firmware,
            "bios": "bios" in self.firmware,
            "info": False,
        }[condition]


@dataclass
class Check:
    tool: str
    needed_for: str
    required: bool
    status: str  # ok | missing | too old | unusable | info
    found: str = ""
    version: str = ""
    package: str | None = None
    fix: str = ""

    @property
    def installable(self) -> bool:
        return self.status in ("missing", "too old") and bool(self.package)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "info")

    def to_row(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "needed for": self.needed_for,
            "found": self.found,
            "version": self.version,
            "required": "yes" if self.required else "no",
            "status": self.status,
            "fix": self.fix if self.status not in ("ok", "info") else "",
        }


_S1, _S2, _S3 = "step 1: build tools", "step 2: build", "step 3: boot"
_ALL = frozenset({TOOLS, BUILD, BOOT})


def _r(name: str, needed_for: str, package: str | None, steps: Iterable[str], **kw: Any) -> Requirement:
    return Requirement(name, needed_for, package, steps=frozenset({TOOLS, *steps}), **kw)


REGISTRY: tuple[Requirement, ...] = (
    _r("mkosi", _S1, "mkosi", [BUILD], target="mkosi", version_argv=("mkosi", "--version"),
       min_version=MKOSI_MIN),
    _r("debootstrap", _S1, "debootstrap", [BUILD], target="debootstrap",
       version_argv=("debootstrap", "--version")),
    _r("root or passwordless sudo", _S2 + " (mkosi, chown)", None, [BUILD], kind="privilege",
       requires="sandbox"),
    _r("systemd-boot EFI stub", _S2 + " (UKI)", "systemd-boot-efi", [BUILD], kind="file",
       target=str(EFI_STUB), requires="sandbox"),
    _r("objcopy", _S2 + " (UKI)", "binutils", [BUILD], target="objcopy",
       version_argv=("objcopy", "--version"), requires="sandbox"),
    _r("zstd", _S2 + " (carbide.root)", "zstd", [BUILD], target="zstd",
       version_argv=("zstd", "--version"), requires="sandbox"),
    _r("cpio", _S2 + " (carbide.root)", "cpio", [BUILD], target="cpio",
       version_argv=("cpio", "--version"), requires="sandbox"),
    _r("openssl", _S2 + " (root password hash)", "openssl", [BUILD], target="openssl",
       version_argv=("openssl", "version"), requires="sandbox"),
    _r("dpkg-deb", _S2 + " (prebuilt iPXE)", "dpkg", [BUILD], target="dpkg-deb",
       version_argv=("dpkg-deb", "--version"), requires="sandbox"),
    _r("gcc", _S2 + " (iPXE from source)", "gcc", [BUILD], target="gcc",
       version_argv=("gcc", "--version"), requires="sandbox"),
    _r("make", _S2 + " (iPXE from source)", "make", [BUILD], target="make",
       version_argv=("make", "--version"), requires="sandbox"),
    _r("perl", _S2 + " (iPXE from source)", "perl", [BUILD], target="perl",
       version_argv=("perl", "-e", "print $^V"), requires="sandbox"),
    _r("liblzma-dev", _S2 + " (iPXE from source)", "liblzma-dev", [BUILD], kind="file",
       target="/usr/include/lzma.h", requires="sandbox"),
    _r("mtools", _S2 + " (iPXE from source)", "mtools", [BUILD], target="mformat",
       version_argv=("mformat", "--version"), requires="sandbox"),
    _r("iPXE source (deb-src)", _S2 + " (iPXE from source)", None, [], kind="deb-src",
       target="ipxe", requires="info"),
    _r("git", _S2 + " (carbide)", "git", [BUILD], target="git", version_argv=("git", "--version"),
       requires="carbide"),
    _r("cargo", _S2 + " (carbide)", "cargo", [BUILD], target="cargo",
       version_argv=("cargo", "--version"), requires="carbide",
       fix="install Rust with rustup (https://rustup.rs), then: cargo install --force cargo-make"),
    _r("cargo-make", _S2 + " (carbide)", None, [BUILD], kind="cargo-subcommand", target="make",
       requires="carbide", fix="cargo install --force cargo-make"),
    _r("qemu-system-x86_64", _S3, "qemu-system-x86", [BOOT], target=QEMU,
       version_argv=(QEMU, "--version")),
    _r("OVMF (UEFI firmware)", _S3, "ovmf", [BOOT], kind="file",
       target=f"{OVMF_CODE} {OVMF_VARS}", requires="uefi"),
    _r("SeaBIOS (BIOS firmware)", _S3, "seabios", [BOOT], kind="file", target=str(SEABIOS),
       requires="bios"),
    _r("QEMU NIC ROM (iPXE)", _S3 + " (BIOS)", "ipxe-qemu", [BOOT], kind="file", target=str(NIC_ROM),
       requires="bios"),
    _r("stand-in port", _S3 + " (user networking)", None, [BOOT], kind="port", target="8080",
       requires="user"),
    _r("swtpm", _S3 + " (TPM)", "swtpm", [BOOT], target="swtpm",
       version_argv=("swtpm", "--version"), requires="tpm"),
    _r("swtpm_setup", _S3 + " (TPM)", "swtpm-tools", [BOOT], target="swtpm_setup",
       version_argv=("swtpm_setup", "--version"), requires="tpm"),
    _r("qemu-bridge-helper", _S3 + " (bridge)", "qemu-system-common", [BOOT], kind="file",
       target=str(BRIDGE_HELPER), requires="bridge"),
    _r("bridge.conf allows carbide0", _S3 + " (bridge)", None, [BOOT], kind="bridge-conf",
       target=str(BRIDGE_CONF), requires="bridge",
       fix="sudo mkdir -p /etc/qemu && echo 'allow carbide0' | sudo tee -a /etc/qemu/bridge.conf"),
    _r("dnsmasq", _S3 + " (testnet: carbide-dhcp's stand-in)", "dnsmasq-base", [BOOT], target="dnsmasq",
       version_argv=("dnsmasq", "--version"), requires="testnet"),
    _r("ip (iproute2)", _S3 + " (testnet: namespace, bridge, tap)", "iproute2", [BOOT], target="ip",
       version_argv=("ip", "-V"), requires="testnet"),
    _r("KVM", _S3 + " (speed)", None, [], kind="kvm", requires="info"),
)


def get(name: str) -> Requirement:
    for req in REGISTRY:
        if req.name == name:
            return req
    raise KeyError(f"no requirement named {name!r}")


def for_step(step: str, needs: Needs, **targets: str) -> list[tuple[Requirement, bool]]:
    """The registry's entries for `step` that apply under `needs`, each with `required`.

    `targets` overrides an entry's target by name, e.g. ``{"stand-in port": "8081"}`` is passed
    as ``**{"stand-in port": "8081"}``. For step 1 (`tools`) every entry is listed; the ones
    whose condition does not apply are shown as not required.
    """
    out = []
    for req in REGISTRY:
        if step not in req.steps:
            continue
        applies = needs.applies(req.requires)
        if step != TOOLS and not applies:
            continue
        if req.name in targets:
            req = replace(req, target=targets[req.name])
        if step == TOOLS and req.kind == "port":
            applies = False  # shown by step 1, required only when step 3 starts its stand-in
        out.append((req, applies))
    return out


def is_required(req: Requirement, mode: str, want_bridge: bool, want_tpm: bool) -> bool:
    return Needs(mode=mode, bridge=want_bridge, tpm=want_tpm).applies(req.requires)


_DOTTED = re.compile(r"\d+(?:\.\d+)+(?:[-+~][\w.+~-]*)?")
_BARE = re.compile(r"\b\d+\b")


def parse_version(text: str) -> str:
    """The version in a tool's first output line: dotted versions win over bare numbers."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    m = _DOTTED.search(first) or _BARE.search(first)
    return m.group(0) if m else first.strip()[:40]


def version_tuple(version: str) -> tuple[int, ...]:
    nums = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(x) for x in nums.group(0).split(".")) if nums else ()


def dpkg_version(package: str) -> str:
    if not shutil.which("dpkg-query"):
        return ""
    res = shell.capture(["dpkg-query", "-W", "-f=${Version}", package], timeout=15)
    return res.tail[0].strip() if res.ok and res.tail else ""


def apt_fix(package: str | None) -> str:
    if not package:
        return ""
    prefix = "" if os.geteuid() == 0 else "sudo "
    return f"{prefix}apt-get install -y {package}"


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def present(spec: Requirement) -> bool:
    """Cheap presence test of a command or file entry (no version probe); other kinds: True."""
    if spec.kind == "command":
        return shutil.which(spec.target) is not None
    if spec.kind == "file":
        return all(os.path.exists(p) for p in spec.target.split())
    return True


def check_one(spec: Requirement, required: bool) -> Check:
    base = Check(spec.name, spec.needed_for, required, "missing", package=spec.package,
                 fix=spec.fix or apt_fix(spec.package))
    if spec.kind == "command":
        path = shutil.which(spec.target)
        if not path:
            return base
        version = ""
        if spec.version_argv:
            res = shell.capture(list(spec.version_argv), timeout=20)
            version = parse_version("\n".join(res.tail))
        if spec.min_version and version_tuple(version) < spec.min_version:
            want = ".".join(map(str, spec.min_version))
            return replace(base, status="too old", found=path, version=version,
                           fix=f"{apt_fix(spec.package)}  (needs >= {want})")
        return replace(base, status="ok", found=path, version=version)
    if spec.kind == "file":
        paths = spec.target.split()
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            return replace(base, found="missing: " + ", ".join(missing))
        return replace(base, status="ok", found=", ".join(paths),
                       version=dpkg_version(spec.package) if spec.package else "")
    if spec.kind == "cargo-subcommand":
        if not shutil.which("cargo"):
            return replace(base, fix="install Rust (rustup), then: cargo install --force cargo-make")
        res = shell.capture(["cargo", spec.target, "--version"], timeout=60)
        if not res.ok:
            why = res.tail[0] if res.tail else f"exit {res.returncode}"
            return replace(base, found=f"{spec.name} is not installed: `cargo {spec.target} --version` "
                                       f"failed: {why}")
        last = next((ln.strip() for ln in reversed(res.tail) if ln.strip()), "")
        return replace(base, status="ok", found=last or "cargo " + spec.target,
                       version=parse_version("\n".join(res.tail)))
    if spec.kind == "bridge-conf":
        return check_bridge_conf(base, Path(spec.target))
    if spec.kind == "deb-src":
        return check_deb_src(base, spec.target)
    if spec.kind == "kvm":
        from .accel import probe_kvm

        probe = probe_kvm()
        return replace(base, status="ok" if probe.usable else "unusable",
                       found=probe.reason, version="",
                       fix="" if probe.usable else "none needed: boots fall back to TCG (slower, ~40 s to login)")
    if spec.kind == "privilege":
        return check_privilege(base)
    if spec.kind == "port":
        port = int(spec.target)
        if port_free("127.0.0.1", port):
            return replace(base, status="ok", found=f"127.0.0.1:{port} is free")
        return replace(base, status="unusable", found=f"127.0.0.1:{port} is already in use",
                       fix=f"stop whatever listens on port {port} (ss -ltnp 'sport = :{port}') "
                           "or set the parameter port to a free one")
    raise ValueError(f"unknown requirement kind {spec.kind}")


def check_privilege(base: Check) -> Check:
    """Root, or a sudo/doas that really works without a password (probed, not assumed)."""
    if os.geteuid() == 0:
        return replace(base, status="ok", found="running as root")
    try:
        prefix = shell.elevation_prefix()
    except shell.ElevationUnavailable as exc:
        return replace(base, status="unusable", found=exc.cause,
                       fix=exc.fix or "run as root, or allow passwordless sudo for this user")
    return replace(base, status="ok", found=" ".join(prefix).strip() or "root")


def check_bridge_conf(base: Check, conf: Path | None = None) -> Check:
    conf = conf or BRIDGE_CONF
    allowed, why = bridge_allowed("carbide0", conf)
    if allowed:
        return replace(base, status="ok", found=why)
    return replace(base, status="unusable" if "not readable" in why else "missing", found=why)


def check_deb_src(base: Check, package: str, timeout: float = 8.0) -> Check:
    """Informational: can `apt-get source ipxe` work? (Otherwise the prebuilt iPXE is packaged.)"""
    fallback = "none needed: the sandbox packages Debian's prebuilt iPXE instead"
    if not shutil.which("apt-get"):
        return replace(base, status="info", found="no apt-get", fix=fallback)
    res = shell.capture(["apt-get", "source", "--print-uris", "-qq", package], timeout=30)
    uris = [m.group(1) for ln in res.tail for m in [re.match(r"'([^']+\.(?:tar\.\w+|dsc))'", ln)] if m]
    if not res.ok or not uris:
        return replace(base, status="info", found="no deb-src entries for ipxe", fix=fallback)
    tarball = next((u for u in uris if ".orig.tar" in u or ".tar." in u), uris[0])
    try:
        req = urllib.request.Request(tarball, method="HEAD")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            code = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return replace(base, status="info", found=f"deb-src listed, mirror unreachable: {exc}",
                       fix=fallback)
    if code == 200:
        return replace(base, status="ok", found=tarball.rsplit("/", 1)[-1], fix="")
    return replace(base, status="info", found=f"deb-src listed, tarball answers HTTP {code}",
                   fix=fallback)


def check(step: str, needs: Needs, **targets: str) -> list[Check]:
    """Check every requirement of `step` under `needs` (see :func:`for_step`)."""
    return [check_one(req, required) for req, required in for_step(step, needs, **targets)]


def first_unmet(checks: Iterable[Check]) -> Check | None:
    return next((c for c in checks if c.required and not c.ok), None)


def frame(checks: Iterable[Check]) -> Any:
    import pandas as pd

    return pd.DataFrame([c.to_row() for c in checks],
                        columns=["tool", "needed for", "found", "version", "required", "status", "fix"])


def unmet(check: Check) -> tuple[str, str]:
    """A pre-flight ERROR's first cause and fix for an unmet requirement."""
    cause = f"{check.tool}: {check.status} ({check.found or 'not found'}) — needed for {check.needed_for}"
    return cause, check.fix or "see step 1 (01_install_build_tools)"
