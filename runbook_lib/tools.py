"""Step 1: detect (and optionally install) the toolchain of the iPXE image workflow.

The documented step is `sudo apt install mkosi debootstrap`; steps 2 and 3 need
more (systemd-boot's EFI stub, objcopy, QEMU, OVMF, swtpm, ...). Each check is a
:class:`Check` row: what it is, which step needs it, whether it is required for
the chosen mode, what was found (path, version) and the exact fix. Missing
Debian packages are installed in one apt transaction, elevated only when not root.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from . import shell
from .accel import probe_kvm
from .result import Status, StepResult

MKOSI_MIN = (14,)
QEMU = "qemu-system-x86_64"
OVMF_FILES = ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd")
EFI_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
BRIDGE_HELPER = "/usr/lib/qemu/qemu-bridge-helper"
BRIDGE_CONF = Path("/etc/qemu/bridge.conf")
APT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class ToolSpec:
    """A thing to check. `kind`: command, file, cargo-subcommand, bridge-conf, deb-src, kvm, disk."""

    name: str
    needed_for: str
    package: str | None
    kind: str = "command"
    target: str = ""  # command name or file path
    version_argv: tuple[str, ...] = ()
    requires: str = "always"  # always | sandbox | carbide | bridge | tpm | info
    fix: str = ""
    min_version: tuple[int, ...] | None = None


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


def _spec_list() -> list[ToolSpec]:
    s1, s2, s3 = "step 1: build tools", "step 2: build", "step 3: boot"
    return [
        ToolSpec("mkosi", s1, "mkosi", target="mkosi", version_argv=("mkosi", "--version"),
                 min_version=MKOSI_MIN),
        ToolSpec("debootstrap", s1, "debootstrap", target="debootstrap",
                 version_argv=("debootstrap", "--version")),
        ToolSpec("systemd-boot EFI stub", s2 + " (UKI)", "systemd-boot-efi", kind="file",
                 target=EFI_STUB, requires="sandbox"),
        ToolSpec("objcopy", s2 + " (UKI)", "binutils", target="objcopy",
                 version_argv=("objcopy", "--version"), requires="sandbox"),
        ToolSpec("zstd", s2 + " (carbide.root)", "zstd", target="zstd",
                 version_argv=("zstd", "--version"), requires="sandbox"),
        ToolSpec("cpio", s2 + " (carbide.root)", "cpio", target="cpio",
                 version_argv=("cpio", "--version"), requires="sandbox"),
        ToolSpec("dpkg-deb", s2 + " (prebuilt iPXE)", "dpkg", target="dpkg-deb",
                 version_argv=("dpkg-deb", "--version"), requires="sandbox"),
        ToolSpec("gcc", s2 + " (iPXE from source)", "gcc", target="gcc",
                 version_argv=("gcc", "--version"), requires="sandbox"),
        ToolSpec("make", s2 + " (iPXE from source)", "make", target="make",
                 version_argv=("make", "--version"), requires="sandbox"),
        ToolSpec("perl", s2 + " (iPXE from source)", "perl", target="perl",
                 version_argv=("perl", "-e", "print $^V"), requires="sandbox"),
        ToolSpec("liblzma-dev", s2 + " (iPXE from source)", "liblzma-dev", kind="file",
                 target="/usr/include/lzma.h", requires="sandbox"),
        ToolSpec("mtools", s2 + " (iPXE from source)", "mtools", target="mformat",
                 version_argv=("mformat", "--version"), requires="sandbox"),
        ToolSpec("iPXE source (deb-src)", s2 + " (iPXE from source)", None, kind="deb-src",
                 target="ipxe", requires="info"),
        ToolSpec("git", s2 + " (carbide)", "git", target="git", version_argv=("git", "--version"),
                 requires="carbide"),
        ToolSpec("cargo", s2 + " (carbide)", "cargo", target="cargo",
                 version_argv=("cargo", "--version"), requires="carbide"),
        ToolSpec("cargo-make", s2 + " (carbide)", None, kind="cargo-subcommand", target="make",
                 requires="carbide", fix="cargo install cargo-make"),
        ToolSpec("qemu-system-x86_64", s3, "qemu-system-x86", target=QEMU,
                 version_argv=(QEMU, "--version")),
        ToolSpec("OVMF (UEFI firmware)", s3, "ovmf", kind="file", target=" ".join(OVMF_FILES)),
        ToolSpec("SeaBIOS (BIOS firmware)", s3, "seabios", kind="file",
                 target="/usr/share/seabios/bios-256k.bin"),
        ToolSpec("QEMU NIC ROM (iPXE)", s3 + " (BIOS)", "ipxe-qemu", kind="file",
                 target="/usr/lib/ipxe/qemu/efi-virtio.rom"),
        ToolSpec("swtpm", s3 + " (TPM)", "swtpm", target="swtpm",
                 version_argv=("swtpm", "--version"), requires="tpm"),
        ToolSpec("swtpm_setup", s3 + " (TPM)", "swtpm-tools", target="swtpm_setup",
                 version_argv=("swtpm_setup", "--version"), requires="tpm"),
        ToolSpec("qemu-bridge-helper", s3 + " (bridge)", "qemu-system-common", kind="file",
                 target=BRIDGE_HELPER, requires="bridge"),
        ToolSpec("bridge.conf allows carbide0", s3 + " (bridge)", None, kind="bridge-conf",
                 target=str(BRIDGE_CONF), requires="bridge",
                 fix=("sudo mkdir -p /etc/qemu && echo 'allow carbide0' | "
                      "sudo tee -a /etc/qemu/bridge.conf")),
        ToolSpec("dnsmasq", s3 + " (bridge tests)", "dnsmasq-base", target="dnsmasq",
                 version_argv=("dnsmasq", "--version"), requires="bridge"),
        ToolSpec("ip (iproute2)", s3 + " (bridge)", "iproute2", target="ip",
                 version_argv=("ip", "-V"), requires="bridge"),
        ToolSpec("KVM", s3 + " (speed)", None, kind="kvm", requires="info"),
    ]


def is_required(spec: ToolSpec, mode: str, want_bridge: bool, want_tpm: bool) -> bool:
    return {
        "always": True,
        "sandbox": mode == "sandbox",
        "carbide": mode == "carbide",
        "bridge": want_bridge,
        "tpm": want_tpm,
        "info": False,
    }[spec.requires]


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


def check_one(spec: ToolSpec, required: bool) -> Check:
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
            return replace(base, fix="install Rust (rustup), then: cargo install cargo-make")
        res = shell.capture(["cargo", spec.target, "--version"], timeout=30)
        if not res.ok:
            return base
        return replace(base, status="ok", found="cargo " + spec.target,
                       version=parse_version("\n".join(res.tail)))
    if spec.kind == "bridge-conf":
        return check_bridge_conf(base)
    if spec.kind == "deb-src":
        return check_deb_src(base, spec.target)
    if spec.kind == "kvm":
        probe = probe_kvm()
        return replace(base, status="ok" if probe.usable else "unusable",
                       found=probe.reason, version="",
                       fix="" if probe.usable else "none needed: boots fall back to TCG (slower, ~40 s to login)")
    raise ValueError(f"unknown check kind {spec.kind}")


def check_bridge_conf(base: Check) -> Check:
    if not BRIDGE_CONF.exists():
        return replace(base, found=f"{BRIDGE_CONF} does not exist")
    try:
        text = BRIDGE_CONF.read_text()
    except OSError as exc:
        return replace(base, status="unusable", found=f"{BRIDGE_CONF}: {exc.strerror}")
    allowed = [ln.split()[1] for ln in text.splitlines()
               if ln.strip().startswith("allow") and len(ln.split()) > 1]
    if "carbide0" in allowed or "all" in allowed:
        return replace(base, status="ok", found=str(BRIDGE_CONF))
    return replace(base, found=f"{BRIDGE_CONF} allows: {', '.join(allowed) or 'nothing'}")


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


def check_disk(workdir: Path, min_free_gb: float) -> Check:
    probe = workdir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    status = "ok" if free_gb >= min_free_gb else "unusable"
    return Check("free disk", "step 2: build", True, status, found=str(workdir),
                 version=f"{free_gb:.1f} GB free (need {min_free_gb:g})",
                 fix="" if status == "ok" else f"free space under {probe} or set workdir elsewhere")


@dataclass
class Platform:
    distro: str
    version: str
    apt: bool

    @staticmethod
    def detect(os_release: Path = Path("/etc/os-release")) -> "Platform":
        info: dict[str, str] = {}
        if os_release.exists():
            for ln in os_release.read_text().splitlines():
                if "=" in ln:
                    k, v = ln.split("=", 1)
                    info[k] = v.strip().strip('"')
        return Platform(info.get("ID", "unknown"), info.get("VERSION_ID", ""),
                        shutil.which("apt-get") is not None)

    def check(self) -> Check:
        name = f"{self.distro} {self.version}".strip()
        if self.apt:
            return Check("distro / package manager", "all steps", True, "ok",
                         found=f"{name}, apt-get", version="")
        return Check("distro / package manager", "all steps", True, "unusable",
                     found=f"{name}, no apt-get",
                     fix=MANUAL_INSTALL)


MANUAL_INSTALL = ("not a Debian/Ubuntu host: install by hand with your package manager: mkosi (>= 14), "
                  "debootstrap, systemd-boot EFI stub, binutils, zstd, cpio, qemu-system-x86_64, "
                  "OVMF, swtpm; then re-run this step")


@dataclass
class ToolReport:
    checks: list[Check]
    mode: str
    platform: Platform

    def frame(self) -> Any:
        import pandas as pd
        return pd.DataFrame([c.to_row() for c in self.checks])

    @property
    def missing_required(self) -> list[Check]:
        return [c for c in self.checks if c.required and c.status != "ok"]

    def installable_packages(self, selected: Iterable[str] | None = None) -> list[str]:
        pkgs = [c.package for c in self.checks if c.installable and c.package]
        chosen = set(selected) if selected is not None else None
        out: list[str] = []
        for p in pkgs:
            if p not in out and (chosen is None or p in chosen):
                out.append(p)
        return out


def check_tools(mode: str = "sandbox", want_bridge: bool = False, want_tpm: bool = True,
                workdir: Path | None = None, min_free_gb: float = 5.0,
                platform: Platform | None = None) -> ToolReport:
    plat = platform or Platform.detect()
    checks = [plat.check()]
    for spec in _spec_list():
        checks.append(check_one(spec, is_required(spec, mode, want_bridge, want_tpm)))
    from .paths import sandbox_workdir
    checks.append(check_disk(workdir or sandbox_workdir(), min_free_gb))
    return ToolReport(checks, mode, plat)


@dataclass
class InstallOutcome:
    packages: list[str]
    status: Status
    command: str
    message: str
    failed_package: str | None = None
    apt_message: str = ""
    log_path: str | None = None
    ran: bool = False


_APT_ERR = re.compile(r"^E:\s*(.*)$")
_APT_PKG = re.compile(r"(?:Unable to locate package|Package '?|package '?)([a-z0-9][a-z0-9+.-]+)")


def parse_apt_error(lines: Iterable[str]) -> tuple[str, str | None]:
    """apt's own first error message and the package it names, if any."""
    first = ""
    for ln in lines:
        m = _APT_ERR.match(ln.strip())
        if m:
            first = m.group(1)
            break
    pkg = None
    if first:
        m = _APT_PKG.search(first)
        pkg = m.group(1) if m else None
    return first, pkg


def install_packages(packages: list[str], *, log_path: Path | None = None, dry_run: bool = False,
                     on_line: Callable[[str], None] | None = None,
                     platform: Platform | None = None) -> InstallOutcome:
    """One apt transaction for all `packages`; refreshes the lists once if a package is unknown."""
    plat = platform or Platform.detect()
    if not packages:
        return InstallOutcome([], Status.PASS, "", "nothing to install")
    if not plat.apt:
        return InstallOutcome(packages, Status.ERROR, "", MANUAL_INSTALL)
    argv = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
            "--no-install-recommends", *packages]
    try:
        full = shell.build_argv(argv, elevate=True)
    except shell.ElevationUnavailable as exc:
        return InstallOutcome(packages, Status.ERROR, shell.quote(argv), str(exc))
    cmd = shell.quote(full)
    if dry_run:
        if on_line:
            on_line(f"[dry-run] would run: {cmd}")
        return InstallOutcome(packages, Status.PASS, cmd, "dry run: nothing installed")
    res = shell.run(argv, elevate=True, timeout=APT_TIMEOUT_S, log_path=log_path, on_line=on_line)
    msg, pkg = parse_apt_error(res.tail)
    if not res.ok and "Unable to locate package" in msg:
        upd = shell.run(["apt-get", "update", "-q"], elevate=True, timeout=600, log_path=log_path,
                        on_line=on_line)
        if upd.ok:
            res = shell.run(argv, elevate=True, timeout=APT_TIMEOUT_S, log_path=log_path,
                            on_line=on_line)
            msg, pkg = parse_apt_error(res.tail)
    lp = str(log_path) if log_path else None
    if res.ok:
        return InstallOutcome(packages, Status.PASS, cmd, f"installed {', '.join(packages)}",
                              log_path=lp, ran=True)
    if res.timed_out:
        return InstallOutcome(packages, Status.ERROR, cmd, f"apt-get timed out after {APT_TIMEOUT_S:.0f}s",
                              log_path=lp, ran=True)
    if "Could not get lock" in msg or "is another process using it" in msg:
        return InstallOutcome(packages, Status.ERROR, cmd, f"apt is busy: {msg}", apt_message=msg,
                              log_path=lp, ran=True)
    return InstallOutcome(packages, Status.FAIL, cmd,
                          f"apt-get failed{' on package ' + pkg if pkg else ''}: {msg or 'exit code ' + str(res.returncode)}",
                          failed_package=pkg, apt_message=msg, log_path=lp, ran=True)


@dataclass
class Step1Result(StepResult):
    """Tables: `tools` (the latest check) and, after an install, `tools before install`."""

    report: "ToolReport | None" = None  # the latest check, for the install panel


def summarize(report: ToolReport, install: InstallOutcome | None = None,
              before: ToolReport | None = None) -> Step1Result:
    result = _summarize(report, install, before)
    result.report = report
    return result


def _summarize(report: ToolReport, install: InstallOutcome | None = None,
               before: ToolReport | None = None) -> Step1Result:
    df = report.frame()
    missing = report.missing_required
    total_req = sum(1 for c in report.checks if c.required)
    kvm = next((c for c in report.checks if c.tool == "KVM"), None)
    accel_note = ""
    if kvm is not None:
        accel_note = "; KVM usable" if kvm.status == "ok" else "; KVM unusable, boots will use TCG"
    tables = {"tools before install": before.frame()} if before is not None else {}
    tables["tools"] = df
    common: dict[str, Any] = dict(tables=tables)
    if install and install.log_path:
        common["logs"] = {"apt": install.log_path}
    if install and install.status != Status.PASS:
        return Step1Result("install build tools", install.status, install.message,
                           cause=install.apt_message or install.message,
                           fix=(f"check the package name and the apt sources, then run: {install.command}"
                                if install.status == Status.FAIL else
                                "fix the environment as stated, then re-run this step"),
                           details={"install_command": install.command}, **common)
    if not report.platform.apt and missing:
        return Step1Result("install build tools", Status.ERROR, "no apt-get on this host",
                           cause=f"{report.platform.distro}: not a Debian/Ubuntu host",
                           fix=MANUAL_INSTALL, **common)
    if missing:
        first = missing[0]
        pkgs = report.installable_packages()
        fix = first.fix
        if len(missing) > 1 and pkgs:
            fix = (f"{apt_fix(' '.join(pkgs))}   "
                   f"(or: runbook run 01_install_build_tools -p install_missing true)")
        return Step1Result("install build tools", Status.ERROR,
                           f"{len(missing)} of {total_req} required tools not usable: "
                           + ", ".join(c.tool for c in missing),
                           cause=f"{first.tool}: {first.status} ({first.found or 'not found'})",
                           fix=fix,
                           **common)
    installed = f"; installed {', '.join(install.packages)}" if install and install.ran else ""
    if install and not install.ran and install.command:
        installed = f"; dry run, would run: {install.command}"
    return Step1Result("install build tools", Status.PASS,
                       f"all {total_req} required tools ok for mode {report.mode}{installed}{accel_note}",
                       details={"install_command": install.command if install else ""}, **common)


def run_step1(mode: str = "sandbox", install_missing: bool = False, dry_run: bool = False,
              want_bridge: bool = False, want_tpm: bool = True, workdir: str = "",
              min_free_gb: float = 5.0, log_dir: Path | None = None,
              on_line: Callable[[str], None] | None = None,
              platform: Platform | None = None) -> Step1Result:
    """Check, optionally install what is missing in one apt transaction, re-check."""
    from .paths import sandbox_workdir
    wd = sandbox_workdir(workdir or None)
    report = check_tools(mode, want_bridge, want_tpm, wd, min_free_gb, platform)
    if not (install_missing or dry_run):
        return summarize(report)
    pkgs = report.installable_packages()
    if not pkgs:
        return summarize(report, InstallOutcome([], Status.PASS, "", "nothing to install"))
    log = (log_dir / "apt-install.log") if log_dir else None
    outcome = install_packages(pkgs, log_path=log, dry_run=dry_run, on_line=on_line,
                               platform=report.platform)
    if outcome.status != Status.PASS or dry_run:
        return summarize(report, outcome)
    after = check_tools(mode, want_bridge, want_tpm, wd, min_free_gb, platform)
    return summarize(after, outcome, before=report)


def all_packages() -> list[str]:
    """Every Debian package the embedded default can use (what scripts/setup.sh installs).

    Carbide-mode tools (git, cargo) are left out: developers bring their own Rust toolchain
    (rustup), and Debian's older cargo would shadow nothing but cost 300 MB.
    """
    out: list[str] = []
    for spec in _spec_list():
        if spec.requires == "carbide":
            continue
        if spec.package and spec.package not in out:
            out.append(spec.package)
    return out


def missing_packages(packages: Iterable[str]) -> list[str]:
    """Those of `packages` that dpkg does not report as installed."""
    out = []
    for pkg in packages:
        res = shell.capture(["dpkg-query", "-W", "-f=${Status}", pkg], timeout=15)
        if not (res.ok and res.tail and res.tail[0].endswith("install ok installed")):
            out.append(pkg)
    return out


def step1(ctx: Any, on_line: Callable[[str], None] | None = None) -> Step1Result:
    """The notebook's one call: parameters from the run context, apt output to `on_line`."""
    p = ctx.params
    return run_step1(mode=p["mode"], install_missing=p["install_missing"], dry_run=p["dry_run"],
                     want_bridge=p["want_bridge"], want_tpm=p["want_tpm"], workdir=p["workdir"],
                     min_free_gb=p["min_free_gb"], log_dir=ctx.log_dir, on_line=on_line)
