"""iPXE for the sandbox: built from source like carbide's, or Debian's prebuilt.

Source path (carbide's way, when :mod:`.ipxe_source` finds a source): one
``make bin-x86_64-efi/snponly.efi bin/undionly.kpxe EMBED=<script> VERSION=<version>`` in a
build tree kept in the cache (one per source: a later build with a changed script, header
or VERSION recompiles only what changed; unchanged inputs compile nothing). The
config headers are the sandbox's own (``tree/pxe/ipxe/local/*.h``, copied to
``src/config/local/``); the embedded script is ``tree/pxe/ipxe/embed.ipxe.in`` (it chains
only with DHCP option 43.70, like carbide's). No ``autoexec.ipxe`` is written.

Prebuilt path (this machine without a source: the mirror answers 404 for the source
tarballs): Debian trixie's ``ipxe`` package, fetched with ``apt-get download`` through a
private apt configuration in the cache (the system's sources are never touched) and
unpacked with ``dpkg-deb -x``; the user-mode chain script (``autoexec.ipxe.in``) goes
beside it as ``autoexec.ipxe``, which trixie's snponly.efi fetches over TFTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import __version__
from ..shell import quote
from . import progress, scripts
from .ipxe_source import Resolution, copy_ignore, short_label
from .runner import BuildFailure, EnvironmentProblem, Runner

DEFAULT_MIRROR = "http://deb.debian.org/debian"
PREBUILT_SUITE = "trixie"
SOURCE_SUITE = "bookworm"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# File names inside the ipxe .deb (Debian ships them under /usr/lib/ipxe).
PREBUILT_EFI = "snponly.efi"
PREBUILT_KPXE = "undionly.kpxe"

# What carbide builds, and the names it installs them under.
TARGETS = {"ipxe.efi": "bin-x86_64-efi/snponly.efi", "ipxe.kpxe": "bin/undionly.kpxe"}
MAKE_TIMEOUT_S = 2400
# A feature define of config/local/general.h -> the object it links in (checked in the link maps).
FEATURE_OBJECTS = {
    "DOWNLOAD_PROTO_HTTPS": "https", "NET_PROTO_IPV6": "ipv6", "CONSOLE_CMD": "console_cmd",
    "TIME_CMD": "time_cmd", "PARAM_CMD": "param_cmd", "PING_CMD": "ping_cmd",
    "NSLOOKUP_CMD": "nslookup_cmd", "REBOOT_CMD": "reboot_cmd", "POWEROFF_CMD": "poweroff_cmd",
    "IMAGE_TRUST_CMD": "image_trust_cmd", "DIGEST_CMD": "digest_cmd", "VLAN_CMD": "vlan_cmd",
    "NTP_CMD": "ntp_cmd", "CONSOLE_SERIAL": "serial",
}
_MAKE_STEP = re.compile(r"^\s+\[([A-Z0-9]+)\]\s")
_DEFINE = re.compile(r"^\s*#define\s+([A-Z][A-Z0-9_]*)", re.M)


@dataclass
class Provenance:
    path: str  # "source" or "prebuilt"
    version: str
    origin: str  # source dir, or the .deb and its suite
    files: dict[str, str]  # artifact -> file it was made from
    note: str = ""
    details: dict[str, object] = field(default_factory=dict)  # path-specific facts, flattened in JSON

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        extra = d.pop("details")
        return {**d, **extra}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


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
        return None, apt_source_failure(rr.tail, rr.returncode)
    dirs = [d for d in work.iterdir() if d.is_dir() and (d / "src" / "Makefile").exists()]
    if not dirs:
        return None, "apt-get source ipxe produced no tree with src/Makefile"
    return dirs[0], ""


def apt_source_failure(tail: list[str], returncode: int | None) -> str:
    """Why `apt-get source` failed, in one line: the first file it could not fetch, and the answer."""
    fetch = next((ln for ln in tail if ln.startswith("E: Failed to fetch ")), "")
    if fetch:
        m = re.match(r"E: Failed to fetch (\S+)\s+(.*?)(?:\s+\[IP:.*)?$", fetch)
        if m:
            answer = re.sub(r"\s+", " ", m.group(2)).strip()
            return f"{answer} for {m.group(1).rsplit('/', 1)[-1]} (the mirror has no source tarball)"
    line = next((ln for ln in tail if "404" in ln), "") or next(
        (ln for ln in reversed(tail) if ln.startswith("E:")), "")
    return f"failed: {line.strip()[:200] or f'exit {returncode}'}"


def local_config() -> dict[str, str]:
    """The sandbox's iPXE config headers (``tree/pxe/ipxe/local/*.h``): name -> text."""
    d = scripts.tree_root() / "ipxe" / "local"
    return {p.name: p.read_text() for p in sorted(d.glob("*.h"))}


def enabled_features(headers: dict[str, str]) -> list[str]:
    """The feature defines the headers switch on (``#define NAME``; comments ignored)."""
    names: list[str] = []
    for text in headers.values():
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        names += [n for n in _DEFINE.findall(code) if n in FEATURE_OBJECTS]
    return names


def make_version(source_version: str) -> str:
    """VERSION= for make: the sandbox's version and the source's (no spaces or commas: SBAT is CSV)."""
    return f"{__version__}+ipxe-{short_label(source_version)}"


def make_steps(lines: list[str]) -> dict[str, int]:
    """Count iPXE's make progress lines by kind (``  [BUILD] bin/foo.o`` -> BUILD)."""
    counts: dict[str, int] = {}
    for line in lines:
        m = _MAKE_STEP.match(line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return dict(sorted(counts.items()))


def missing_features(src: Path, features: list[str]) -> dict[str, list[str]]:
    """Per target, the enabled features whose object is not in the link map (empty: all linked)."""
    out: dict[str, list[str]] = {}
    for name, target in TARGETS.items():
        link_map = src / f"{target}.tmp.map"
        try:
            text = link_map.read_text(errors="replace")
        except OSError:
            out[name] = [f"(no link map {link_map.name})"]
            continue
        gone = [f for f in features if f"({FEATURE_OBJECTS[f]}.o)" not in text]
        if gone:
            out[name] = gone
    return out


def _write_if_changed(path: Path, text: str) -> bool:
    """Write only on change: an untouched mtime keeps make from rebuilding what depends on it."""
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_tree(runner: Runner, res: Resolution, build_root: Path) -> tuple[Path, str]:
    """The cached build tree of this source: (its src/, "cold" when just copied or "warm")."""
    assert res.top is not None
    tree = build_root / "tree"
    state = _read_state(build_root)
    if state.get("copied") and (tree / "src" / "Makefile").is_file():
        return tree / "src", "warm"
    runner.say(progress.info(f"Copying the iPXE source ({res.version}) into the build tree {tree} "
                             "(first build of this source: everything compiles)"))
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(res.top, tree, symlinks=True, ignore=copy_ignore(res.top))
    _write_state(build_root, {"copied": True, "source": res.origin, "key": res.key})
    return tree / "src", "cold"


def _read_state(build_root: Path) -> dict[str, object]:
    try:
        data = json.loads((build_root / "state.json").read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_state(build_root: Path, state: dict[str, object]) -> None:
    build_root.mkdir(parents=True, exist_ok=True)
    tmp = build_root / f".state.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, build_root / "state.json")


def build_from_source(runner: Runner, res: Resolution, build_root: Path, script_text: str,
                      out: Path, jobs: int | None = None) -> Provenance:
    """Carbide's path: snponly.efi and undionly.kpxe with `script_text` embedded, in a cached tree."""
    src, tree_state = prepare_tree(runner, res, build_root)
    local = src / "config" / "local"
    local.mkdir(parents=True, exist_ok=True)
    headers = local_config()
    state = _read_state(build_root)
    # iPXE's make creates every missing config/local/*.h empty (and rebuilds what includes it), so a
    # header is never deleted here: one the sandbox wrote before and no longer ships is emptied.
    earlier = state.get("headers")
    written: list[object] = earlier if isinstance(earlier, list) else []
    for name in written:
        if name not in headers:
            _write_if_changed(local / str(name), "")
    changed = [name for name, text in headers.items() if _write_if_changed(local / name, text)]
    script = build_root / "embed" / "chain.ipxe"  # a stable path: make tracks EMBED= by its file list
    script_changed = _write_if_changed(script, script_text)
    version = make_version(res.version)
    if state.get("version") != version:
        for target in TARGETS.values():  # make does not track VERSION=: relink with the new one
            (src / target).unlink(missing_ok=True)
    why = [f"{tree_state} tree"] + ([f"changed headers: {', '.join(changed)}"] if changed and
                                      tree_state == "warm" else []) \
        + (["changed script"] if script_changed and tree_state == "warm" else [])
    runner.say(progress.info(f"Building iPXE {res.version} ({'; '.join(why)}), VERSION={version}"))
    argv = ["make", "-C", str(src), f"-j{jobs or os.cpu_count() or 2}", *TARGETS.values(),
            f"EMBED={script}", f"VERSION={version}"]
    log_start = runner.log_path.stat().st_size if runner.log_path.exists() else 0
    t0 = time.monotonic()
    runner.run(argv, timeout=MAKE_TIMEOUT_S, what="make (iPXE)",
               fix="install the iPXE build dependencies (build-essential perl liblzma-dev) and read the "
                   "first error in the full log")
    seconds = time.monotonic() - t0
    with open(runner.log_path, encoding="utf-8", errors="replace") as fh:
        fh.seek(log_start)
        steps = make_steps(fh.read().splitlines())
    _write_state(build_root, {**state, "copied": True, "version": version, "headers": sorted(headers)})
    features = enabled_features(headers)
    missing = missing_features(src, features)
    for target, names in missing.items():
        runner.say(progress.warn(f"{target}: enabled but not linked: {', '.join(names)}"))
    out.mkdir(parents=True, exist_ok=True)
    for name, target in TARGETS.items():
        shutil.copyfile(src / target, out / name)
    compiled = steps.get("BUILD", 0)
    runner.say(progress.info(f"iPXE make: {compiled} objects compiled, {seconds:.1f} s ({tree_state} tree)"))
    return Provenance(
        path="source", version=res.version, origin=res.origin, files=dict(TARGETS),
        note=("chain script embedded with EMBED= (it chains only with DHCP option 43.70, like "
              "carbide's); no autoexec.ipxe; config from the sandbox's tree/pxe/ipxe/local/*.h"),
        details={
            "source_kind": res.kind, "source_sha256": res.sha256, "source_key": res.key,
            "make_version": version, "make_command": quote(argv),
            "embedded_script": True, "embedded_script_sha256": _sha(script_text),
            "config_headers": {n: _sha(t)[:16] for n, t in headers.items()},
            "features_enabled": features, "features_not_linked": missing,
            "compiled_objects": compiled, "make_steps": steps, "make_seconds": round(seconds, 1),
            "build_tree": str(src.parent), "build_tree_state": tree_state,
        })


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


LZMA_HEADER = Path("/usr/include/lzma.h")


def env_ok_for_source() -> list[str]:
    """Missing tools for the source path (zbin, which packs undionly.kpxe, needs lzma.h)."""
    missing = [t for t in ("make", "gcc", "perl") if shutil.which(t) is None]
    if not LZMA_HEADER.exists():
        missing.append(f"liblzma-dev ({LZMA_HEADER})")
    return missing


