"""The ephemeral image: mkosi 14 builds the root as a zstd cpio, objcopy makes the UKI.

mkosi 14 has no UKI output and does not export the kernel of a cpio build; the
tree's ``mkosi.finalize`` copies the kernel and os-release out, and
:func:`assemble_uki` adds them with the root and the command line to systemd's
EFI stub, at the section addresses mkosi itself uses.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .. import shell
from ..system_paths import EFI_STUB
from .runner import BuildFailure, EnvironmentProblem, Runner

RELEASE = "bookworm"
MKOSI_OUTPUT = "image.cpio.zst"
# Section -> VMA, as mkosi uses for its own UKIs.
UKI_SECTIONS = ((".osrel", 0x20000), (".cmdline", 0x30000), (".linux", 0x2000000), (".initrd", 0x3000000))
# The registry entries (runbook_lib/requirements.py) the image task needs.
TOOLS = ("mkosi", "debootstrap", "objcopy", "zstd", "cpio", "openssl", "systemd-boot EFI stub")
# crypt(3) SHA-512: $6$, optional rounds=N$, a salt of up to 16 characters, then 86 characters.
SHA512_CRYPT = re.compile(r"^\$6\$(?:rounds=\d+\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$")


def missing_tools() -> list[str]:
    """The image task's requirements that are absent (presence only: no version probes)."""
    from .. import requirements as reqs

    out = []
    for name in TOOLS:
        req = reqs.get(name)
        if not reqs.present(req):
            out.append(f"{req.target} (package {req.package})" if req.kind == "file" else name)
    return out


def hash_password(password: str, salt: str | None = None) -> str:
    """SHA-512 crypt hash for /etc/shadow (mkosi's PasswordIsHashed=yes).

    ``openssl passwd -6`` computes it (Python's ``crypt`` module is gone in 3.13); the
    password goes to openssl on stdin, never on its command line. ``salt`` is for tests:
    by default openssl picks a random one.
    """
    if "\n" in password or "\r" in password:
        raise EnvironmentProblem("the root password contains a line break",
                                 "choose a root password without line breaks")
    argv = ["openssl", "passwd", "-6"] + (["-salt", salt] if salt is not None else []) + ["-stdin"]
    try:
        rr = shell.run(argv, timeout=60, input=password + "\n", tail_lines=20)
    except shell.CommandNotFound as exc:
        raise EnvironmentProblem("openssl is not installed (it hashes the image's root password)",
                                 "apt-get install openssl") from exc
    hashed = rr.tail[-1].strip() if rr.tail else ""
    if not rr.ok or not SHA512_CRYPT.match(hashed):
        raise EnvironmentProblem(
            f"openssl passwd -6 did not produce a SHA-512 crypt hash (exit {rr.returncode})",
            "check that `openssl passwd -6 -stdin` works here (OpenSSL 1.1.1 or later)")
    return hashed


def dropin_text(password_hash: str, mirror: str | None) -> str:
    """The private mkosi drop-in: root password (hashed) and the mirror."""
    lines = []
    if mirror:
        lines += ["[Distribution]", f"Mirror={mirror}", ""]
    lines += ["[Content]", f"Password={password_hash}", "PasswordIsHashed=yes", ""]
    return "\n".join(lines)


def prepare_config(tree: Path, staging: Path, password: str, mirror: str | None) -> Path:
    """Copy the mkosi config into `staging/src` and add the private drop-in (mode 0600)."""
    src = staging / "src"
    shutil.copytree(tree, src)
    (src / "mkosi.finalize").chmod(0o755)
    dropins = src / "mkosi.default.d"
    dropins.mkdir(exist_ok=True)
    secret = dropins / "50-runbook.conf"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(dropin_text(hash_password(password), mirror))
    return src


def mkosi_argv(staging: Path, package_cache: Path) -> list[str]:
    return ["mkosi", "--force",
            "--output-dir", str(staging / "out"),
            "--workspace-dir", str(staging / "ws"),
            "--cache", str(package_cache),
            "--output", MKOSI_OUTPUT,
            "build"]


def run_mkosi(runner: Runner, src: Path, staging: Path, package_cache: Path,
              timeout: float = 3600) -> Path:
    """Run mkosi (elevated when not root); return the directory holding its outputs."""
    for d in (staging / "out", staging / "ws", package_cache):
        d.mkdir(parents=True, exist_ok=True)
    runner.run(mkosi_argv(staging, package_cache), timeout=timeout, cwd=src, elevate=True,
               what="mkosi build",
               fix="read the mkosi output in the full log; a failing debootstrap usually "
                   "means the mirror or the package cache is broken (rebuild with --force)")
    outdir = staging / "out" / f"debian~{RELEASE}"
    for name in (MKOSI_OUTPUT, f"{MKOSI_OUTPUT}.manifest", "vmlinuz", "os-release"):
        if not (outdir / name).exists():
            raise BuildFailure(f"mkosi finished but {outdir / name} is missing",
                               "check mkosi.finalize in the full log")
    return outdir


def uki_argv(stub: Path, osrel: Path, cmdline: Path, kernel: Path, initrd: Path, out: Path) -> list[str]:
    files = {".osrel": osrel, ".cmdline": cmdline, ".linux": kernel, ".initrd": initrd}
    argv = ["objcopy"]
    for section, vma in UKI_SECTIONS:
        argv += ["--add-section", f"{section}={files[section]}",
                 "--change-section-vma", f"{section}={vma:#x}"]
    return argv + [str(stub), str(out)]


def assemble_uki(runner: Runner, mkosi_out: Path, cmdline: str, out: Path) -> None:
    if not EFI_STUB.exists():
        raise EnvironmentProblem(f"{EFI_STUB} is missing", "apt-get install systemd-boot-efi")
    cmdline_file = out.parent / ".cmdline.txt"  # ours, not mkosi's (root-owned when elevated)
    cmdline_file.write_text(cmdline + "\n")
    runner.run(uki_argv(EFI_STUB, mkosi_out / "os-release", cmdline_file, mkosi_out / "vmlinuz",
                        mkosi_out / MKOSI_OUTPUT, out), timeout=600, what="objcopy (UKI)")


def build_image(runner: Runner, tree: Path, staging: Path, package_cache: Path, out: Path,
                password: str, mirror: str | None, cmdline: str) -> dict[str, str]:
    """Build into `out`: carbide.root, carbide.manifest, carbide.efi, carbide.vmlinuz."""
    src = prepare_config(tree, staging, password, mirror)
    mk = run_mkosi(runner, src, staging, package_cache)
    out.mkdir(parents=True, exist_ok=True)
    assemble_uki(runner, mk, cmdline, out / "carbide.efi")
    (out / ".cmdline.txt").unlink()
    shutil.copyfile(mk / MKOSI_OUTPUT, out / "carbide.root")
    shutil.copyfile(mk / f"{MKOSI_OUTPUT}.manifest", out / "carbide.manifest")
    shutil.copyfile(mk / "vmlinuz", out / "carbide.vmlinuz")
    kver = (mk / "kernel-version").read_text().strip() if (mk / "kernel-version").exists() else ""
    return {"kernel": kver, "cmdline": cmdline}


_VERSION_ARGV = (("mkosi", ("mkosi", "--version")), ("objcopy", ("objcopy", "--version")),
                 ("debootstrap", ("dpkg-query", "-W", "-f", "${Version}", "debootstrap")))
_versions_cache: dict[tuple[tuple[str, float], ...], dict[str, str]] = {}


def _identity(program: str) -> tuple[str, float]:
    """Where a program is and when it last changed: an upgrade changes this, so the cache follows."""
    path = shutil.which(program)
    if path is None:
        return ("", 0.0)
    try:
        return (path, os.stat(path).st_mtime)
    except OSError:
        return (path, 0.0)


def tool_versions() -> dict[str, str]:
    """Versions that change what the image task produces (part of its input key).

    Asked once per process and tool installation (`mkosi --version` alone costs ~0.2 s and
    every input key needs it); a tool that is upgraded or moved is asked again.
    """
    key = tuple(_identity(argv[0]) for _, argv in _VERSION_ARGV) + (_identity("debootstrap"),)
    cached = _versions_cache.get(key)
    if cached is not None:
        return dict(cached)
    out: dict[str, str] = {}
    for tool, argv in _VERSION_ARGV:
        try:
            rr = shell.capture(list(argv), timeout=30)
            out[tool] = rr.tail[0].strip() if rr.ok and rr.tail else f"unknown (exit {rr.returncode})"
        except shell.CommandNotFound:
            out[tool] = "missing"
    _versions_cache[key] = dict(out)
    return out
