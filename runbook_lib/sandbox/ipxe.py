"""iPXE for the sandbox: from source with the chain script embedded, or Debian's prebuilt.

Source path (carbide's way): ``make bin-x86_64-efi/snponly.efi bin/undionly.kpxe EMBED=chain.ipxe``
with the serial console enabled, in a build tree kept in the cache. Used when
``--ipxe-source DIR`` is given or ``apt-get source ipxe`` works.

Prebuilt path (this machine: the mirror answers 404 for the source tarballs):
Debian trixie's ``ipxe`` package, fetched with ``apt-get download`` through a
private apt configuration in the cache (the system's sources are never touched)
and unpacked with ``dpkg-deb -x``; the chain script goes beside it as
``autoexec.ipxe``, which trixie's snponly.efi fetches over TFTP.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from .runner import BuildFailure, EnvironmentProblem, Runner

DEFAULT_MIRROR = "http://deb.debian.org/debian"
PREBUILT_SUITE = "trixie"
SOURCE_SUITE = "bookworm"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# File names inside the ipxe .deb (Debian ships them under /usr/lib/ipxe).
PREBUILT_EFI = "snponly.efi"
PREBUILT_KPXE = "undionly.kpxe"

SERIAL_CONSOLE_H = """/* carbide sandbox: send iPXE's console to the first serial port too */
#define CONSOLE_SERIAL
"""


@dataclass
class Provenance:
    path: str  # "source" or "prebuilt"
    version: str
    origin: str  # source dir, or the .deb and its suite
    files: dict[str, str]  # artifact -> file it was made from
    note: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def system_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the system already uses (so the private config needs nothing new)."""
    candidates: list[str] = []
    files = [etc_apt / "sources.list"] + sorted((etc_apt / "sources.list.d").glob("*"))
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        if f.suffix == ".sources":
            candidates += _deb822_uris(text)
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    candidates.append(m.group(1))
    for uri in candidates:
        if re.search(r"/debian/?$", uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _deb822_uris(text: str) -> list[str]:
    out: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
            if m:
                fields[m.group(1).lower()] = m.group(2)
        if "deb" in fields.get("types", "").split():
            out += fields.get("uris", "").split()
    return out


class PrivateApt:
    """An apt configuration of our own under the cache; the system's stays untouched."""

    def __init__(self, root: Path, mirror: str, suite: str, kind: str = "deb") -> None:
        self.root = root
        self.mirror = mirror
        self.suite = suite
        self.kind = kind
        self.sources = root / "sources.list"
        self.parts = root / "sources.list.d"
        self.lists = root / "lists"
        self.cache = root / "cache"

    def prepare(self) -> None:
        for d in (self.parts, self.lists / "partial", self.cache / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        signed = f"[signed-by={KEYRING}] " if KEYRING.exists() else ""
        self.sources.write_text(f"{self.kind} {signed}{self.mirror} {self.suite} main\n")

    def options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::SourceList={self.sources}",
            "-o", f"Dir::Etc::SourceParts={self.parts}",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.cache}",
            "-o", "APT::Sandbox::User=root",
        ]

    def argv(self, *args: str) -> list[str]:
        return ["apt-get", "-q", *self.options(), *args]


def probe_source(runner: Runner, cache: Path, mirror: str) -> tuple[Path | None, str]:
    """Try `apt-get source ipxe`; returns (source dir, "") or (None, why not)."""
    apt = PrivateApt(cache / "apt-src", mirror, SOURCE_SUITE, kind="deb-src")
    apt.prepare()
    rr = runner.run(apt.argv("update"), timeout=300, check=False)
    if not rr.ok:
        return None, f"apt-get update for deb-src failed (exit {rr.returncode})"
    work = cache / "ipxe-src"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rr = runner.run(apt.argv("source", "ipxe"), timeout=900, cwd=work, check=False)
    if not rr.ok:
        reason = next((ln for ln in rr.tail if "404" in ln), "") or next(
            (ln for ln in reversed(rr.tail) if ln.startswith("E:")), "")
        return None, f"apt-get source ipxe failed: {reason.strip()[:200] or f'exit {rr.returncode}'}"
    dirs = [d for d in work.iterdir() if d.is_dir() and (d / "src" / "Makefile").exists()]
    if not dirs:
        return None, "apt-get source ipxe produced no tree with src/Makefile"
    return dirs[0], ""


def source_version(src: Path) -> str:
    changelog = src / "debian" / "changelog"
    if changelog.exists():
        m = re.match(r"\S+ \(([^)]+)\)", changelog.read_text(errors="replace"))
        if m:
            return m.group(1)
    git_head = src / ".git" / "HEAD"
    if git_head.exists():
        return "git " + git_head.read_text().strip()[:60]
    return "unknown (no debian/changelog)"


def build_from_source(runner: Runner, src: Path, build_root: Path, script: Path,
                      out: Path, jobs: int = 2) -> Provenance:
    """Carbide's path: build snponly.efi and undionly.kpxe with the script embedded."""
    if not (src / "src" / "Makefile").exists():
        raise EnvironmentProblem(f"{src} is not an iPXE source tree (no src/Makefile)",
                                 "point --ipxe-source at the top of an iPXE checkout (it holds src/)")
    tree = build_root / "tree"
    tree.mkdir(parents=True, exist_ok=True)
    # Copy over the cached build tree: cp -a keeps mtimes, so make rebuilds only what changed.
    runner.run(["cp", "-a", "--", f"{src}/.", str(tree)], timeout=600, what="copying the iPXE source")
    local = tree / "src" / "config" / "local"
    local.mkdir(parents=True, exist_ok=True)
    (local / "console.h").write_text(SERIAL_CONSOLE_H)
    targets = {"ipxe.efi": "bin-x86_64-efi/snponly.efi", "ipxe.kpxe": "bin/undionly.kpxe"}
    for target in targets.values():
        runner.run(["make", "-C", str(tree / "src"), f"-j{jobs}", target, f"EMBED={script}"],
                   timeout=1800, what=f"make {target}",
                   fix="install the iPXE build dependencies (gcc, make, perl, liblzma-dev, mtools) "
                       "and check the full log")
    out.mkdir(parents=True, exist_ok=True)
    for name, target in targets.items():
        shutil.copyfile(tree / "src" / target, out / name)
    return Provenance(path="source", version=source_version(src), origin=str(src),
                      files={n: t for n, t in targets.items()},
                      note="chain script embedded with EMBED=; serial console enabled")


def fetch_prebuilt(runner: Runner, cache: Path, mirror: str, refresh: bool) -> Path:
    """The trixie ipxe .deb in the cache (downloaded when missing or `refresh`)."""
    debs = cache / "ipxe-deb"
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob("ipxe_*_all.deb"))
    if have and not refresh:
        runner.say(f"[sandbox] INFO - Using the cached {have[-1].name}")
        return have[-1]
    apt = PrivateApt(cache / "apt-trixie", mirror, PREBUILT_SUITE)
    apt.prepare()
    runner.run(apt.argv("update"), timeout=600, what=f"apt-get update ({mirror} {PREBUILT_SUITE})",
               fix=f"check that the mirror {mirror} is reachable (proxy, DNS) and retry")
    for old in have:
        old.unlink()
    runner.run(apt.argv("download", f"ipxe/{PREBUILT_SUITE}"), timeout=600, cwd=debs,
               what="apt-get download ipxe", fix=f"check that {mirror} serves {PREBUILT_SUITE}/main")
    got = sorted(debs.glob("ipxe_*_all.deb"))
    if not got:
        raise BuildFailure("apt-get download ipxe left no ipxe_*_all.deb", "see the full log")
    return got[-1]


def deb_version(runner: Runner, deb: Path) -> str:
    rr = runner.run(["dpkg-deb", "-f", str(deb), "Version"], timeout=60, what="dpkg-deb -f")
    return rr.tail[-1].strip() if rr.tail else "unknown"


def unpack_prebuilt(runner: Runner, deb: Path, work: Path, script_text: str, out: Path,
                    version: str, note: str) -> Provenance:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runner.run(["dpkg-deb", "-x", str(deb), str(work)], timeout=300, what="dpkg-deb -x")
    found: dict[str, Path] = {}
    for wanted in (PREBUILT_EFI, PREBUILT_KPXE):
        hits = sorted(work.rglob(wanted))
        if not hits:
            raise BuildFailure(f"{deb.name} has no {wanted}",
                               "the ipxe package layout changed; use --ipxe-source DIR")
        found[wanted] = hits[0]
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found[PREBUILT_EFI], out / "ipxe.efi")
    shutil.copyfile(found[PREBUILT_KPXE], out / "ipxe.kpxe")
    (out / "autoexec.ipxe").write_text(script_text)
    rel = {k: "/" + v.relative_to(work).as_posix() for k, v in found.items()}
    return Provenance(
        path="prebuilt", version=version, origin=f"{deb.name} (Debian {PREBUILT_SUITE})",
        files={"ipxe.efi": rel[PREBUILT_EFI], "ipxe.kpxe": rel[PREBUILT_KPXE],
               "autoexec.ipxe": "chain script (rendered)"},
        note=note or "chain script beside the binaries as autoexec.ipxe (snponly.efi fetches it "
                     "over TFTP); undionly.kpxe has no autoexec support",
    )


def env_ok_for_source() -> list[str]:
    """Missing tools for the source path."""
    return [t for t in ("make", "gcc", "perl") if shutil.which(t) is None]


