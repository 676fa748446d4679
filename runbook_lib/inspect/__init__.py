"""What one artifact is, read from its bytes: iPXE binaries, UKIs, cpio roots, manifests.

:func:`artifact_facts` returns a JSON-able dict for one file::

    {"name", "size", "sha256", "kind", "facts_version", <kind>: {...the kind's facts...}}

with ``kind`` one of ``ipxe`` (an iPXE binary: version, embedded script, 43.70 dependency,
chained URLs, features), ``uki`` (sections, cmdline, os-release, kernel release, initrd),
``kernel`` (a bare bzImage), ``ipxe-script`` (a script file such as ``autoexec.ipxe``: text, 43.70,
chained URLs), ``pe`` (another EFI binary: sections), ``cpio`` (compression,
unpacked size, file count, /init), ``manifest`` (mkosi's JSON manifest: packages) or ``file``
(anything else: size and hash only). A file that cannot be read has ``kind`` ``error`` and an
``error`` sentence. A part that cannot be parsed keeps its kind and says ``problem``.

:func:`set_facts` does that for every artifact of a directory (regular files, hidden ones
skipped), cached under the XDG cache directory by path, size, mtime and :data:`FACTS_VERSION`,
so a second call on an unchanged ~150 MB set costs a few stat() calls.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..paths import cache_dir
from . import cpio, kernel, pe, uki
from .ipxe import IPXE_SUFFIXES, ipxe_facts, looks_like_ipxe

FACTS_VERSION = 2
HASH_CHUNK = 1 << 20
MAX_SCRIPT = 256 * 1024
SMALL_FILE = 8 * 1024 * 1024  # read whole (iPXE binaries are ~0.3-1.2 MB)
CPIO_NAMES = (".root", ".cpio", ".cpio.zst", ".cpio.gz", ".cpio.xz", ".cpio.lzma", ".cpio.bz2", ".initrd",
              ".img")


def facts_cache_dir() -> Path:
    return cache_dir() / "facts"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cache_key(path: Path, st: os.stat_result) -> str:
    raw = f"{FACTS_VERSION}\0{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_dev}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _cache_path(key: str) -> Path:
    return facts_cache_dir() / key[:2] / f"{key}.json"


def _load_cached(key: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_cache_path(key).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("facts_version") == FACTS_VERSION else None


def _store(key: str, facts: dict[str, Any]) -> None:
    dest = _cache_path(key)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
        tmp.write_text(json.dumps(facts, sort_keys=True))
        os.replace(tmp, dest)
    except OSError:
        pass  # a read-only cache only costs speed


def artifact_facts(path: str | os.PathLike[str], use_cache: bool = True) -> dict[str, Any]:
    """The facts of one file (never raises for a bad or unreadable file: kind ``error``)."""
    p = Path(path).absolute()
    base: dict[str, Any] = {"name": p.name, "facts_version": FACTS_VERSION}
    try:
        st = p.stat()
    except OSError as exc:
        return {**base, "kind": "error", "size": None, "sha256": None,
                "error": f"cannot read {p}: {exc.strerror or exc}"}
    key = _cache_key(p, st)
    if use_cache:
        cached = _load_cached(key)
        if cached is not None:
            return cached
    try:
        facts = {**base, "size": st.st_size, **_read(p, st.st_size)}
    except OSError as exc:
        return {**base, "kind": "error", "size": st.st_size, "sha256": None,
                "error": f"cannot read {p}: {exc.strerror or exc}"}
    _store(key, facts)
    return facts


def _read(p: Path, size: int) -> dict[str, Any]:
    with open(p, "rb") as fh:
        head = fh.read(kernel.SETUP_READ)
    name = p.name.lower()
    if size <= SMALL_FILE and (head[:2] in (b"MZ", b"\x55\xaa") or name.endswith(IPXE_SUFFIXES)):
        data = p.read_bytes()
        out: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest()}
        if looks_like_ipxe(data):
            return {**out, "kind": "ipxe", "ipxe": ipxe_facts(data)}
    else:
        out = {"sha256": _sha256(p)}
    if head[:2] == b"MZ":
        try:
            with open(p, "rb") as fh:
                image = pe.read_headers(fh)
        except pe.PeError as exc:
            return {**out, "kind": "file", "file": {"problem": str(exc)}}
        if uki.is_uki(image):
            try:
                return {**out, "kind": "uki", "uki": uki.facts(p, image)}
            except (pe.PeError, ValueError) as exc:
                return {**out, "kind": "uki", "uki": {"problem": str(exc)}}
        hdr = kernel.header_facts(head)
        if hdr is not None:
            return {**out, "kind": "kernel", "kernel": hdr}
        return {**out, "kind": "pe", "pe": {"machine": image.machine_name,
                                            "sections": [s.to_dict() for s in image.sections]}}
    hdr = kernel.header_facts(head)
    if hdr is not None:
        return {**out, "kind": "kernel", "kernel": hdr}
    comp = cpio.compression(head)
    if comp is not None and (comp == "none" or name.endswith(CPIO_NAMES) or comp in ("zstd", "gzip", "xz")):
        try:
            return {**out, "kind": "cpio", "cpio": cpio.facts_of(p).to_dict()}
        except cpio.CpioError as exc:
            if name.endswith(CPIO_NAMES):
                return {**out, "kind": "cpio", "cpio": {"compression": comp, "packed_size": size,
                                                        "problem": str(exc)}}
            return {**out, "kind": "file", "file": {"compression": comp}}
    if head.startswith((b"#!ipxe", b"#!gpxe")) and size <= MAX_SCRIPT:
        text = p.read_text(encoding="utf-8", errors="replace")
        return {**out, "kind": "ipxe-script", "ipxe-script": script_facts(text)}
    if name.endswith((".manifest", ".json")) and head.lstrip()[:1] == b"{":
        got = _manifest(p)
        if got is not None:
            return {**out, "kind": "manifest", "manifest": got}
    return {**out, "kind": "file"}


def script_facts(text: str) -> dict[str, Any]:
    from ..ipxe_inspect import chain_urls, script_needs_43_70

    return {"script_state": "embedded", "script": text, "script_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "needs_43_70": script_needs_43_70(text), "chain_urls": chain_urls(text)}


def _manifest(p: Path) -> dict[str, Any] | None:
    from ..build import manifest

    try:
        pkgs = manifest.load(p)
    except (manifest.ManifestError, OSError):
        return None
    return {"package_count": len(pkgs),
            "packages": {k: pkg.version for k, pkg in sorted(pkgs.items())}}


def artifact_names(directory: str | os.PathLike[str]) -> list[str]:
    """The artifacts of a directory: regular files (symlinks followed; a dangling symlink counts,
    it reads as an error), hidden ones (``.gitignore``, mkosi's ``.mkosi-*``) skipped."""
    d = Path(directory)
    with os.scandir(d) as it:
        return sorted(e.name for e in it if not e.name.startswith(".")
                      and (e.is_file() or (e.is_symlink() and not os.path.exists(e.path))))


def set_facts(directory: str | os.PathLike[str], use_cache: bool = True) -> dict[str, dict[str, Any]]:
    """name -> :func:`artifact_facts` for every artifact of `directory` (raises OSError when the
    directory itself cannot be listed)."""
    d = Path(directory)
    names = artifact_names(d)
    # hashing and zstd run outside the GIL: two workers halve a cold read on 2 cores
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
        got = list(pool.map(lambda n: artifact_facts(d / n, use_cache=use_cache), names))
    return dict(zip(names, got))


__all__ = ["FACTS_VERSION", "artifact_facts", "artifact_names", "facts_cache_dir", "set_facts"]
