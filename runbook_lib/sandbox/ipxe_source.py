"""Where the sandbox's iPXE source comes from, tried in carbide's order of preference.

1. ``ipxe_source``: a directory holding ``src/Makefile``, or a ``.tar.gz``/``.tgz``/``.tar.xz``
   whose single top folder holds ``src/`` (extracted once into the cache, keyed by its sha256,
   through tarfile's ``data`` filter; members that leave the folder are refused).
2. A carbide checkout's ``pxe/ipxe/upstream`` (the submodule carbide builds), when step 2
   builds a carbide tree. The sandbox has no checkout, so this is only the hook ``carbide_root``.
3. ``apt-get source ipxe`` through a private apt configuration.
4. A download of the commit carbide pins, checked against its sha256.
5. None of them: the caller packages Debian's prebuilt iPXE instead.

Every step is recorded with why it was or was not used, so a report can say, e.g.
"ipxe_source not given; apt-get source ipxe: 404 ...; download of d7e58c5a: network unreachable".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from .inputs import file_digest, tree_digest
from .runner import EnvironmentProblem

PINNED_COMMIT = "d7e58c5a812988c341ec4ad19f79faf067388d58"
PINNED_URL = f"https://github.com/ipxe/ipxe/archive/{PINNED_COMMIT}.tar.gz"
# sha256 of the pinned source as kept in the project's shared test data (../shared/data/);
# GitHub regenerates its archives, so a download may differ byte-wise: then it is refused.
PINNED_SHA256 = "8d4993ad886b22c18aa87ea78c5ac5ee72f88bd1850789df2e353e3fd3850b5c"
CONNECT_TIMEOUT_S = 20.0
DOWNLOAD_DEADLINE_S = 300.0
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".txz")
CARBIDE_UPSTREAM = Path("pxe/ipxe/upstream")

# Source kinds, in the order they are tried.
GIVEN = "ipxe_source"
CARBIDE = "carbide checkout"
APT = "apt-get source ipxe"
DOWNLOAD = f"download of {PINNED_COMMIT[:8]}"
PREBUILT = "Debian prebuilt"
ORDER = (GIVEN, CARBIDE, APT, DOWNLOAD, PREBUILT)


@dataclass
class Attempt:
    source: str  # one of ORDER
    used: bool
    why: str


@dataclass
class Resolution:
    """The outcome: a source tree (``top`` holds ``src/``) or None (use the prebuilt path)."""

    top: Path | None = None
    kind: str = PREBUILT
    origin: str = ""  # the directory, tarball or URL it came from
    version: str = "unknown"  # the source's own version (commit, Debian version)
    key: str = ""  # stable digest of the source: names its build tree in the cache
    sha256: str | None = None  # of the tarball, when it came from one
    attempts: list[Attempt] = field(default_factory=list)

    def summary(self) -> str:
        return "; ".join(f"{a.source}: {a.why}" for a in self.attempts)

    def to_rows(self) -> list[dict[str, object]]:
        return [asdict(a) for a in self.attempts]


AptProbe = Callable[[], "tuple[Path | None, str]"]
Downloader = Callable[[], "tuple[Path | None, str]"]


def resolve(ipxe_source: Path | None, carbide_root: Path | None, cache: Path, *,
            apt_probe: AptProbe, download: Downloader | None = None) -> Resolution:
    """Try the sources in order; a given `ipxe_source` that is unusable raises (ERROR)."""
    res = Resolution()
    attempts = res.attempts

    def skipped_rest(after: str, reason: str) -> None:
        for name in ORDER[ORDER.index(after) + 1:]:
            attempts.append(Attempt(name, False, reason))

    # 1. the parameter
    if ipxe_source is None:
        attempts.append(Attempt(GIVEN, False, "not given"))
    else:
        top, how = given_source(ipxe_source, cache)
        if how.startswith("tarball"):
            res.sha256 = file_digest(ipxe_source)
            res.key = "tarball-" + res.sha256
        _fill(res, top, GIVEN, ipxe_source)
        attempts.append(Attempt(GIVEN, True, f"used: {how}"))
        skipped_rest(GIVEN, f"not tried: {GIVEN} was used")
        return res

    # 2. a carbide checkout's submodule
    if carbide_root is None:
        attempts.append(Attempt(CARBIDE, False, "no carbide checkout (the sandbox builds its own tree)"))
    else:
        up = carbide_root / CARBIDE_UPSTREAM
        if (up / "src" / "Makefile").is_file():
            _fill(res, up, CARBIDE, up)
            attempts.append(Attempt(CARBIDE, True, f"used: {up}"))
            skipped_rest(CARBIDE, f"not tried: the {CARBIDE} was used")
            return res
        attempts.append(Attempt(CARBIDE, False, f"{up} has no src/Makefile (initialise the submodule: "
                                                f"git submodule update --init {CARBIDE_UPSTREAM})"))

    # 3. apt-get source
    src, why = apt_probe()
    if src is not None:
        _fill(res, src, APT, src)
        attempts.append(Attempt(APT, True, f"used: {src}"))
        skipped_rest(APT, f"not tried: {APT} was used")
        return res
    attempts.append(Attempt(APT, False, why))

    # 4. the pinned commit's download
    if download is None:
        attempts.append(Attempt(DOWNLOAD, False, "not tried (disabled)"))
    else:
        tarball, why = download()
        if tarball is not None:
            top = extract_tarball(tarball, cache)
            res.sha256 = PINNED_SHA256
            res.key = "tarball-" + PINNED_SHA256
            _fill(res, top, DOWNLOAD, tarball)
            res.origin = f"{PINNED_URL} (saved as {tarball})"
            attempts.append(Attempt(DOWNLOAD, True, f"used: {why}"))
            skipped_rest(DOWNLOAD, f"not tried: the {DOWNLOAD} was used")
            return res
        attempts.append(Attempt(DOWNLOAD, False, why))

    attempts.append(Attempt(PREBUILT, True, "used: no iPXE source was available"))
    return res


def _fill(res: Resolution, top: Path, kind: str, origin: Path) -> None:
    res.top, res.kind, res.origin = top, kind, str(origin)
    res.version = source_version(top)
    if not res.key:
        res.key = "tree-" + source_digest(top)


# ---- the parameter ---------------------------------------------------------------------------
def is_tarball(path: Path) -> bool:
    return path.name.endswith(TARBALL_SUFFIXES)


def given_source(path: Path, cache: Path) -> tuple[Path, str]:
    """(top of the source tree, how it was found) for `ipxe_source`; raises EnvironmentProblem."""
    fix = ("set ipxe_source to an iPXE checkout (the directory holding src/) or to a .tar.gz/.tar.xz "
           "of one (e.g. ../shared/data/ipxe-<commit>.tar.gz), or leave it empty")
    if not path.exists():
        raise EnvironmentProblem(f"ipxe_source {str(path)!r} does not exist (relative to {os.getcwd()})", fix)
    if path.is_dir():
        if not (path / "src" / "Makefile").is_file():
            hint = " (it looks like src/ itself: give its parent)" if (path / "Makefile").is_file() and \
                (path / "config").is_dir() else ""
            raise EnvironmentProblem(f"ipxe_source {str(path)!r} is not an iPXE source tree: no src/Makefile{hint}",
                                     fix)
        return path, f"directory {path}"
    if is_tarball(path):
        top = extract_tarball(path, cache)
        return top, f"tarball {path} (sha256 {file_digest(path)[:12]}, extracted to {top})"
    raise EnvironmentProblem(f"ipxe_source {str(path)!r} is neither a directory nor a tarball "
                             f"({', '.join(TARBALL_SUFFIXES)})", fix)


# ---- tarballs --------------------------------------------------------------------------------
def _check_members(tf: tarfile.TarFile, name: str) -> str:
    """The single top folder of the archive; raises on anything that would leave it."""
    tops: set[str] = set()
    for m in tf.getmembers():
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts:
            raise EnvironmentProblem(f"{name}: refused, member {m.name!r} would be written outside the "
                                     "extraction directory (path traversal)",
                                     "use an unmodified iPXE source archive")
        if p.parts and p.parts[0] not in (".",):
            tops.add(p.parts[0])
    if len(tops) != 1:
        raise EnvironmentProblem(f"{name}: expected one top folder holding src/, found {len(tops)}"
                                 + (f" ({', '.join(sorted(tops)[:5])})" if tops else ""),
                                 "pack the source as <folder>/src/..., like GitHub's archives")
    return tops.pop()


def extract_tarball(tarball: Path, cache: Path) -> Path:
    """Extract `tarball` once into ``<cache>/ipxe-src-tar/<sha256[:16]>``; the top folder holding src/."""
    sha = file_digest(tarball)
    dest = cache / "ipxe-src-tar" / sha[:16]
    done = dest / ".complete.json"
    if done.is_file():
        try:
            top = dest / json.loads(done.read_text())["top"]
            if (top / "src" / "Makefile").is_file():
                return top
        except (ValueError, KeyError, TypeError):
            pass
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            with tarfile.open(tarball, "r:*") as tf:
                top_name = _check_members(tf, tarball.name)
                tf.extractall(tmp, filter="data")
        except tarfile.FilterError as exc:
            raise EnvironmentProblem(f"{tarball.name}: refused by tarfile's data filter: {exc}",
                                     "use an unmodified iPXE source archive") from exc
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise EnvironmentProblem(f"{tarball}: cannot be read as a tar archive: {exc}",
                                     "check the file (a complete .tar.gz/.tar.xz of the iPXE source)") from exc
        if not (tmp / top_name / "src" / "Makefile").is_file():
            raise EnvironmentProblem(f"{tarball.name}: its top folder {top_name!r} holds no src/Makefile",
                                     "give an archive of the iPXE repository (top folder with src/ inside)")
        (tmp / ".complete.json").write_text(json.dumps({"top": top_name, "sha256": sha,
                                                        "tarball": str(tarball)}) + "\n")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / top_name


# ---- identity of a source tree ---------------------------------------------------------------
def _skip(rel: tuple[str, ...]) -> bool:
    """Build outputs and local config are not part of the source (src/bin*, src/config/local)."""
    return (len(rel) >= 1 and rel[0] == ".git") or (len(rel) == 1 and rel[0].startswith("bin")) or \
        rel[:2] == ("config", "local")


def source_digest(top: Path) -> str:
    """sha256 over ``src/`` (paths, modes, contents), without build outputs and config/local."""
    return tree_digest(top / "src", _skip)


def copy_ignore(src_root: Path) -> Callable[[str, list[str]], set[str]]:
    """shutil.copytree's ignore: the same exclusions as :func:`source_digest` (below src/)."""
    src = src_root / "src"

    def ignore(directory: str, names: list[str]) -> set[str]:
        d = Path(directory)
        if d == src_root:
            return {n for n in names if n == ".git"}
        try:
            rel = d.relative_to(src).parts
        except ValueError:
            return {n for n in names if n == ".git"}
        if rel[:2] == ("config", "local"):
            return set(names)
        return {n for n in names if _skip(rel + (n,))}
    return ignore


def source_version(top: Path) -> str:
    """The commit (archive folder name, git HEAD) or the Debian version of a source tree."""
    m = re.fullmatch(r"ipxe-([0-9a-f]{40})", top.name)
    if m:
        return f"commit {m.group(1)}"
    changelog = top / "debian" / "changelog"
    if changelog.is_file():
        v = re.match(r"\S+ \(([^)]+)\)", changelog.read_text(errors="replace"))
        if v:
            return f"Debian {v.group(1)}"
    head = _git_head(top)
    if head:
        return f"commit {head}"
    return "unknown (no commit or changelog)"


def _git_head(top: Path) -> str | None:
    git = top / ".git"
    if git.is_file():  # a submodule: "gitdir: ../../.git/modules/..."
        m = re.match(r"gitdir:\s*(.+)", git.read_text(errors="replace").strip())
        if not m:
            return None
        git = (top / m.group(1)).resolve()
    head = git / "HEAD"
    if not head.is_file():
        return None
    text = head.read_text(errors="replace").strip()
    if re.fullmatch(r"[0-9a-f]{40}", text):
        return text
    ref = re.match(r"ref:\s*(\S+)", text)
    if ref and (git / ref.group(1)).is_file():
        value = (git / ref.group(1)).read_text().strip()
        return value if re.fullmatch(r"[0-9a-f]{40}", value) else None
    return None


def short_label(version: str) -> str:
    """A VERSION-safe label of the source: ``d7e58c5a`` or ``1.21.1-1`` (no spaces or commas)."""
    m = re.search(r"\b([0-9a-f]{40})\b", version)
    if m:
        return m.group(1)[:8]
    cleaned = re.sub(r"^(Debian|commit)\s+", "", version)
    cleaned = re.sub(r"[^A-Za-z0-9.+~-]+", "-", cleaned).strip("-")
    return cleaned[:40] or "unknown"


# ---- the pinned download ---------------------------------------------------------------------
def download_pinned(cache: Path, url: str = PINNED_URL, sha256: str = PINNED_SHA256,
                    timeout: float = CONNECT_TIMEOUT_S, deadline_s: float = DOWNLOAD_DEADLINE_S,
                    opener: Callable[..., object] = urllib.request.urlopen) -> tuple[Path | None, str]:
    """(the verified tarball, how) or (None, why not); a verified earlier download is reused."""
    name = url.rsplit("/", 1)[-1]
    dest = cache / "ipxe-download" / f"ipxe-{name}"
    label = f"{url}"
    if dest.is_file() and file_digest(dest) == sha256:
        return dest, f"{dest} (downloaded earlier, sha256 verified)"
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + f".part-{os.getpid()}")
    h = hashlib.sha256()
    t0 = time.monotonic()
    total = 0
    try:
        with opener(url, timeout=timeout) as resp, open(part, "wb") as out:  # type: ignore[attr-defined]
            while True:
                if time.monotonic() - t0 > deadline_s:
                    return None, f"{label}: not finished after {deadline_s:.0f} s (slow network)"
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    return None, f"{label}: larger than {MAX_DOWNLOAD_BYTES >> 20} MB, refused"
                h.update(chunk)
                out.write(chunk)
        got = h.hexdigest()
        if got != sha256:
            return None, (f"{label}: sha256 {got[:16]}... is not the pinned {sha256[:16]}... (GitHub's "
                          "archives are not always byte-identical); download it yourself and pass it "
                          "as ipxe_source")
        os.replace(part, dest)
        return dest, f"{url} ({total} bytes, sha256 verified)"
    except urllib.error.HTTPError as exc:
        return None, f"{label}: HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kind = "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) \
            else "network unreachable"
        return None, f"{label}: {kind} ({reason})"
    finally:
        part.unlink(missing_ok=True)
