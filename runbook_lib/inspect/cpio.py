"""cpio roots (``carbide.root``, ``scout.cpio.zst``, a UKI's ``.initrd``) read as a stream.

Compression is told by its magic bytes; zstd is decompressed by the ``zstd`` program (run
through :mod:`runbook_lib.shell`, writing into a pipe this process reads), gzip / xz / lzma /
bzip2 by Python's own modules. The decompressed stream is parsed as ``newc`` cpio
(``070701``/``070702``: 110-byte ASCII-hex headers, name and data padded to 4 bytes), headers
only: file data is skipped, nothing is written to disk. Several archives in a row (as the
kernel accepts) are all read.
"""

from __future__ import annotations

import bz2
import lzma
import os
import posixpath
import stat
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .. import shell

CHUNK = 1 << 20
ZSTD_TIMEOUT_S = 300.0
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x1f\x8b", "gzip"), (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"), (b"\x02\x21\x4c\x18", "lz4-legacy"), (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x89LZO", "lzo"), (b"070701", "none"), (b"070702", "none"), (b"070707", "none"),
    (b"\x5d\x00\x00", "lzma"),
)
_HEADER = 110


class CpioError(ValueError):
    pass


def compression(head: bytes) -> str | None:
    """The compression named by the first bytes ("none" for a plain newc archive), or None."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return None


@dataclass
class CpioFacts:
    compression: str
    packed_size: int
    unpacked_size: int = 0
    files: int = 0  # entries other than the TRAILER!!! markers (directories count)
    regular_files: int = 0
    archives: int = 0
    init: dict[str, object] = field(default_factory=lambda: {"exists": False})
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"compression": self.compression, "packed_size": self.packed_size,
                "unpacked_size": self.unpacked_size, "files": self.files,
                "regular_files": self.regular_files, "archives": self.archives,
                "init": dict(self.init), "note": self.note}


def _norm(name: str) -> str:
    name = name.lstrip(".")
    return "/" + name.lstrip("/") if name else "/"


class _Reader:
    """Buffered reads with skipping over a chunk iterator."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self.consumed = 0

    def _fill(self, n: int) -> bool:
        while len(self._buf) < n:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                return False
        return True

    def read(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.consumed += len(out)
        return out

    def skip(self, n: int) -> int:
        done = 0
        while done < n:
            if not self._buf and not self._fill(1):
                break
            take = min(n - done, len(self._buf))
            del self._buf[:take]
            done += take
        self.consumed += done
        return done

    def drain(self) -> None:
        self.consumed += len(self._buf)
        self._buf.clear()
        for chunk in self._chunks:
            self.consumed += len(chunk)


def parse_newc(chunks: Iterator[bytes], facts: CpioFacts) -> None:
    """Fill `facts` from a decompressed newc stream."""
    r = _Reader(chunks)
    names: set[str] = set()
    init: tuple[int, bytes | None] | None = None
    while True:
        # between archives: NUL padding
        head = r.read(_HEADER)
        while head and head.startswith(b"\0"):
            stripped = head.lstrip(b"\0")
            head = stripped + r.read(_HEADER - len(stripped)) if stripped else r.read(_HEADER)
        if not head:
            break
        if len(head) < _HEADER or head[:6] not in (b"070701", b"070702"):
            if facts.archives == 0:
                raise CpioError(f"not a newc cpio archive (starts with {head[:6]!r})")
            facts.note = "data after the last archive is not cpio (left unread)"
            r.drain()
            break
        try:
            mode = int(head[14:22], 16)
            filesize = int(head[54:62], 16)
            namesize = int(head[94:102], 16)
        except ValueError:
            raise CpioError("a cpio header with non-hex fields: corrupt archive") from None
        name_raw = r.read(namesize)
        r.skip((-(_HEADER + namesize)) % 4)
        name = name_raw.rstrip(b"\0").decode("utf-8", errors="replace")
        if name == "TRAILER!!!":
            facts.archives += 1
            r.skip(filesize + (-filesize) % 4)
            continue
        facts.files += 1
        path = _norm(name)
        link: bytes | None = None
        if stat.S_ISLNK(mode) and filesize <= 4096:
            link = r.read(filesize)
            r.skip((-filesize) % 4)
        else:
            r.skip(filesize + (-filesize) % 4)
        if stat.S_ISREG(mode):
            facts.regular_files += 1
        names.add(path)
        if path == "/init":
            init = (mode, link)
    if facts.archives == 0 and facts.files:
        facts.note = (facts.note + "; " if facts.note else "") + "no TRAILER!!!: the archive is cut short"
    facts.unpacked_size = r.consumed
    facts.init = _init_facts(init, names)


def _init_facts(init: tuple[int, bytes | None] | None, names: set[str]) -> dict[str, object]:
    if init is None:
        return {"exists": False}
    mode, link = init
    if stat.S_ISLNK(mode):
        target = (link or b"").decode("utf-8", errors="replace")
        resolved = posixpath.normpath(posixpath.join("/", target))
        # a /usr-merged root has /lib -> usr/lib: a target under /lib may live under /usr/lib
        merged = "/usr" + resolved if resolved.startswith(("/lib/", "/bin/", "/sbin/")) else resolved
        return {"exists": True, "type": "symlink", "target": target,
                "target_in_archive": resolved in names or merged in names}
    kind = "file" if stat.S_ISREG(mode) else "directory" if stat.S_ISDIR(mode) else f"mode 0{mode:o}"
    return {"exists": True, "type": kind}


# -- decompression -------------------------------------------------------------------------------

Source = Callable[[], BinaryIO]


def _python_chunks(raw: Iterator[bytes], kind: str) -> Iterator[bytes]:
    if kind == "none":
        yield from raw
        return
    if kind == "gzip":
        # several gzip members in a row are one stream for gzip's reader
        yield from _stream_decompress(raw, lambda: zlib.decompressobj(16 + 15))
        return
    if kind in ("xz", "lzma"):
        yield from _stream_decompress(raw, lambda: lzma.LZMADecompressor(
            lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE))
        return
    if kind == "bzip2":
        yield from _stream_decompress(raw, bz2.BZ2Decompressor)
        return
    raise CpioError(f"{kind} compression is not read here")


def _stream_decompress(raw: Iterator[bytes], make: Callable[[], object]) -> Iterator[bytes]:
    dec = make()
    for chunk in raw:
        while chunk:
            out = dec.decompress(chunk)  # type: ignore[attr-defined]
            if out:
                yield out
            if getattr(dec, "eof", False):
                rest = getattr(dec, "unused_data", b"")
                if rest.strip(b"\0") and compression(rest) not in (None, "none"):
                    dec = make()  # a further compressed member
                    chunk = rest
                    continue
                return
            chunk = b""


def _file_chunks(path: Path, offset: int, length: int | None) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = length
        while left is None or left > 0:
            chunk = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def _zstd_chunks(path: Path, offset: int, length: int | None) -> Iterator[bytes]:
    """Run ``zstd -d`` through shell.spawn; its output goes to a pipe this process reads."""
    r, w = os.pipe()
    whole = offset == 0 and length is None
    argv = ["zstd", "-d", "-f", "-q", "--no-sparse", "-o", f"/dev/fd/{w}", str(path) if whole else "-"]
    try:
        proc = shell.spawn(argv, pass_fds=(w,), stdin=None if whole else subprocess.PIPE,
                           tail_lines=20)
    except BaseException:
        os.close(r)
        os.close(w)
        raise
    os.close(w)
    feeder: threading.Thread | None = None
    if not whole:
        pipe = proc.popen.stdin
        assert pipe is not None

        def feed() -> None:
            try:
                for chunk in _file_chunks(path, offset, length):
                    pipe.write(chunk)
                pipe.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        feeder = threading.Thread(target=feed, name=f"zstd-feed-{proc.pid}", daemon=True)
        feeder.start()
    deadline = time.monotonic() + ZSTD_TIMEOUT_S
    try:
        with os.fdopen(r, "rb", buffering=0) as out:
            while True:
                if time.monotonic() > deadline:
                    raise CpioError(f"zstd took longer than {ZSTD_TIMEOUT_S:.0f} s")
                chunk = out.read(CHUNK)
                if not chunk:
                    break
                yield chunk
        rc = proc.wait(timeout=30)
        if rc != 0:
            raise CpioError(f"zstd -d failed (exit {rc}): {' '.join(proc.tail)[-300:]}")
    finally:
        proc.stop(grace=1.0)
        if feeder is not None:
            feeder.join(timeout=5)


def facts_of(path: Path, offset: int = 0, length: int | None = None) -> CpioFacts:
    """Read the cpio archive in `path` (or in its byte range ``offset``..``offset+length``)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        head = fh.read(8)
        if length is None:
            fh.seek(0, os.SEEK_END)
            packed = fh.tell() - offset
        else:
            packed = length
    kind = compression(head)
    if kind is None:
        raise CpioError(f"unknown compression (first bytes {head[:6].hex()})")
    facts = CpioFacts(compression=kind, packed_size=packed)
    if kind == "zstd":
        chunks = _zstd_chunks(path, offset, length)
    else:
        chunks = _python_chunks(_file_chunks(path, offset, length), kind)
    try:
        parse_newc(chunks, facts)
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
    return facts
