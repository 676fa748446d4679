"""What an iPXE binary runs first: its embedded script (``make ... EMBED=``), if any.

Where ``EMBED=`` puts the script (found by building the iPXE commit carbide pins, d7e58c5a,
and reading the binaries; Debian's 2025 build and QEMU's ROMs store the rest the same way):

* EFI binaries (``bin-x86_64-efi/snponly.efi``, ``ipxe.efi``): ``image/embedded.c`` pulls the
  file in with ``.incbin`` into ``.rodata``, so the script sits in the PE file as plain
  bytes, starting with its ``#!ipxe`` line and followed by NUL padding. Version and build
  name are in the ``.sbat`` section (``ipxe,1,iPXE,<build>,<VERSION>,...``).
* BIOS binaries (``bin/undionly.kpxe``, ``.pxe``, ``.lkrn``) and the legacy image of a PCI
  option ROM: ``util/zbin`` compresses the payload into blocks ``[u32 length][raw LZMA1,
  lc=2 lp=0 pb=0][u32 CRC32]`` after a plain real-mode prefix; the x86 call/jump targets
  are rewritten by a small BCJ filter first (undone here; it never touches text). The
  script is then plain bytes inside the decompressed block.
* The EFI image inside a QEMU ``efi-*.rom`` is EFI-compressed (not read here); its legacy
  image comes from the same build and answers for it.

A binary without a script (Debian's ``snponly.efi``, QEMU's ROMs) still holds iPXE's script
magic as a C string (``#!ipxe\\0``): that tells "no script" (``none``) from "cannot read"
(``unknown``). The stock EFI build then looks for ``autoexec.ipxe`` next to itself.
"""

from __future__ import annotations

import lzma
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

State = Literal["embedded", "none", "unknown"]

# A script image starts with "#!ipxe" (or the older "#!gpxe") and whitespace (image/script.c).
_SCRIPT_START = re.compile(rb"#!(?:ipxe|gpxe)[ \t\r\n]")
# The magic as a C string: every iPXE that can run scripts has it (script.c's probe).
_IPXE_MARKER = b"#!ipxe\x00"
# The banner's format string (usr/autoboot.c): NORMAL "\n\n" NAME "\n" BOLD SHORT " %s" NORMAL
# " -- " TAG_LINE " -- " ...
_BANNER = re.compile(rb"\x1b\[0m\n\n(?P<name>[^\x00\n]{0,80})\n\x1b\[1m(?P<short>[^\x00%\n]{1,40}) %s"
                     rb"\x1b\[0m -- (?P<tag>[^\x00\n]{0,120}?) -- ")
_SBAT = re.compile(rb"\nipxe,\d+,[^,\n]*,(?P<build>[^,\n]*),(?P<version>[^,\n]*),")
_BUILD_NAME = rb"[\w.+-]{1,40}\.(?:kpxe|kkpxe|kkkpxe|pxe|lkrn|efi|efirom|rom|mrom|usb|iso|dsk|hd|raw|exe)"
# zbin's LZMA options (util/zbin.c, arch/x86/prefix/unlzma.S)
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA1, "lc": 2, "lp": 0, "pb": 0, "dict_size": 1 << 23}]
_MIN_PACKED = 64
_MAX_PACKED = 4 * 1024 * 1024  # iPXE payloads are far smaller (a full ipxe.efi is ~1 MB unpacked)
_SCAN_START = 64 * 1024  # where the first zbin block may start (after the real-mode prefix)
_SCAN_GAP = 4096  # and the next one after the end of the previous
_MAX_SCRIPT = 256 * 1024
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_43_70 = re.compile(r"\$\{43\.70(?::[a-z0-9]+)?\}")


@dataclass
class Embedded:
    """The script an iPXE binary runs first, as far as the file tells."""

    state: State
    script: str | None = None
    needs_43_70: bool | None = None  # the script reads ${43.70} (carbide's machine uuid option)
    chain_urls: list[str] = field(default_factory=list)
    banner: str | None = None  # "<short name> %s -- <tag line>" with the version filled in
    version: str | None = None  # VERSION= of the build
    build_name: str | None = None  # e.g. snponly.efi, undionly.kpxe
    container: str = "unknown"  # efi / zbin / pci-rom / unknown
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state, "needs_43_70": self.needs_43_70, "chain_urls": list(self.chain_urls),
                "banner": self.banner, "version": self.version, "build_name": self.build_name,
                "container": self.container, "note": self.note,
                "script_lines": len(self.script.splitlines()) if self.script else 0}


def embedded_script(path: Path) -> Embedded:
    """Find the script compiled into the iPXE binary at `path` (never raises for a bad file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return Embedded("unknown", note=f"cannot read {path}: {exc.strerror or exc}")
    return inspect_bytes(data)


def inspect_bytes(data: bytes) -> Embedded:
    """:func:`embedded_script` on the bytes of a binary."""
    if data[:2] == b"MZ":
        container = "efi"
    elif data[:2] == b"\x55\xaa":
        container = "pci-rom"
    else:
        container = "zbin"
    meta = _metadata(data)
    rom_note = ("; a PCI option ROM (QEMU's NIC ROMs are iPXE): it holds a legacy BIOS image and "
                "possibly an EFI image of the same build" if container == "pci-rom" else "")
    # Plain bytes first (EFI); then every zbin block (BIOS images, legacy part of a ROM).
    if _IPXE_MARKER in data or _SCRIPT_START.search(data):
        found = _from_plain(data, container, meta, "as plain bytes in the file")
        if found.state != "unknown":
            found.note += rom_note
            return found
    blocks = [] if container == "efi" else unpack_zbin(data)
    for offset, payload in blocks:
        if _IPXE_MARKER in payload or _SCRIPT_START.search(payload):
            meta2 = {**_metadata(payload), **{k: v for k, v in meta.items() if v}}
            where = f"in the LZMA block at offset {offset} (zbin; {len(payload)} bytes unpacked)"
            found = _from_plain(payload, "zbin" if container == "zbin" else container, meta2, where)
            found.note += rom_note
            return found
    if container == "zbin" and not blocks:
        return Embedded("unknown", container="unknown", note="not an iPXE binary that can be read "
                        "here: not an EFI image, no script magic and no zbin LZMA block")
    if container == "efi":
        why = "an EFI binary without iPXE's script magic: not iPXE, or built without script support"
    else:
        why = ("no iPXE script magic found" + (f" (in {len(blocks)} LZMA blocks either)" if blocks else "")
               + ": compressed in a way not read here, or not iPXE")
    return Embedded("unknown", container=container, **meta, note=why)  # type: ignore[arg-type]


def _from_plain(data: bytes, container: str, meta: dict[str, str | None], where: str) -> Embedded:
    m = _SCRIPT_START.search(data)
    if m is None:
        if _IPXE_MARKER not in data:
            return Embedded("unknown", container=container, **meta)  # type: ignore[arg-type]
        return Embedded("none", container=container, **meta,  # type: ignore[arg-type]
                        note="no embedded script (iPXE's script magic is there, no script follows it)"
                        + (": this EFI build looks for autoexec.ipxe beside itself, then boots what "
                           "DHCP names" if container == "efi" else ": it boots what DHCP names"))
    end = data.find(b"\x00", m.start(), m.start() + _MAX_SCRIPT)
    raw = _text_prefix(data[m.start(): end if end >= 0 else m.start() + _MAX_SCRIPT])
    # EMBED=a,b concatenates the files: keep the first script.
    nxt = re.search(rb"\n#!(?:ipxe|gpxe)[ \t\r\n]", raw)
    more = ""
    if nxt:
        raw = raw[: nxt.start() + 1]
        more = "; more than one embedded image, the first is shown"
    text = raw.decode("utf-8", errors="replace")
    commands = script_commands(text)
    return Embedded("embedded", script=text, needs_43_70=any(_43_70.search(c) for c in commands),
                    chain_urls=chain_urls(text), container=container, **meta,  # type: ignore[arg-type]
                    note=f"embedded script found {where} ({len(raw)} bytes){more}")


def _text_prefix(raw: bytes) -> bytes:
    """The script's bytes: up to the first control or non-UTF-8 byte (NUL, or the BIOS build's
    ``66 90`` NOP padding, whose 0x66 is an ASCII "f")."""
    ctl = _CONTROL.search(raw)
    if ctl:
        raw = raw[: ctl.start()]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = exc.start
        if raw[cut - 1: cut + 1] == b"\x66\x90":
            cut -= 1
        raw = raw[:cut]
    return raw


def _metadata(data: bytes) -> dict[str, str | None]:
    out: dict[str, str | None] = {"banner": None, "version": None, "build_name": None}
    s = _SBAT.search(data)
    if s:
        out["version"] = s.group("version").decode(errors="replace") or None
        out["build_name"] = s.group("build").decode(errors="replace") or None
    b = _BANNER.search(data)
    if b is None:
        return out
    short, name = b.group("short"), b.group("name")
    if out["version"] is None:
        # version.c's strings, as the linker lays them out: build name, short name, name, version
        v = re.search(rb"\x00(?P<build>" + _BUILD_NAME + rb")\x00+" + re.escape(short) + rb"\x00+"
                      + (re.escape(name) + rb"\x00+" if name else b"")
                      + rb"(?P<version>[\x20-\x7e]{1,80})\x00", data)
        if v:
            out["version"] = v.group("version").decode(errors="replace")
            out["build_name"] = out["build_name"] or v.group("build").decode(errors="replace")
    version = out["version"] or "?"
    out["banner"] = (f"{short.decode(errors='replace')} {version} -- {b.group('tag').decode(errors='replace')}")
    return out


def script_commands(text: str) -> list[str]:
    """The script's command lines: no comments, no labels, no blank lines."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s and not s.startswith("#") and not s.startswith(":"):
            out.append(s)
    return out


def script_needs_43_70(text: str) -> bool:
    """Whether a script reads ``${43.70}`` (carbide's machine uuid, DHCP option 43 sub-option 70)."""
    return any(_43_70.search(c) for c in script_commands(text))


def chain_urls(text: str) -> list[str]:
    """URLs the script hands to ``chain`` (with iPXE's variables unexpanded), in order, once each.

    A URL given as a variable the script itself set (``set chain_url http://...`` then
    ``chain ${chain_url}``) is shown as the value it was last set to above the chain line.
    """
    urls: list[str] = []
    assigned: dict[str, str] = {}
    for line in script_commands(text):
        for cmd in re.split(r"\s*(?:&&|\|\|)\s*", line):
            tokens = cmd.split()
            while tokens and tokens[0] == "time":
                tokens = tokens[1:]
            if len(tokens) >= 3 and tokens[0] == "set":
                assigned[tokens[1].split(":")[0]] = " ".join(tokens[2:])
                continue
            if not tokens or tokens[0] not in ("chain", "imgexec"):
                continue
            for tok in tokens[1:]:
                if tok.startswith("-"):
                    continue
                var = re.fullmatch(r"\$\{([A-Za-z0-9_.-]+)\}", tok)
                if var and var.group(1) in assigned:
                    tok = assigned[var.group(1)]
                if tok not in urls:
                    urls.append(tok)
                break
    return urls


def unpack_zbin(data: bytes) -> list[tuple[int, bytes]]:
    """Every zbin-packed block of `data` as (offset, decompressed and un-BCJ'd payload).

    A block is ``[u32 n][n-4 bytes of raw LZMA1][u32 CRC32 of those bytes]``; the CRC
    (zbin's: seed 0xffffffff, no final inversion) picks the real blocks out of the file.
    """
    out: list[tuple[int, bytes]] = []
    n = len(data)
    i = 0
    horizon = min(n, _SCAN_START)  # blocks start in the prefix, or right after the previous block
    while i + 8 <= n and i < horizon:
        (length,) = struct.unpack_from("<I", data, i)
        end = i + 4 + length
        if _MIN_PACKED <= length <= _MAX_PACKED and end <= n:
            packed = data[i + 4: end - 4]
            (crc,) = struct.unpack_from("<I", data, end - 4)
            if (zlib.crc32(packed) ^ 0xFFFFFFFF) == crc:
                try:
                    payload = lzma.LZMADecompressor(format=lzma.FORMAT_RAW,
                                                    filters=_LZMA_FILTERS).decompress(packed)
                except lzma.LZMAError:
                    payload = b""
                if payload:
                    out.append((i, unbcj(payload)))
                    i = end
                    horizon = min(n, end + _SCAN_GAP)
                    continue
        i += 1
    return out


def unbcj(data: bytes) -> bytes:
    """Undo zbin's x86 BCJ filter (util/zbin.c ``bcj_filter``): absolute targets back to rel32."""
    buf = bytearray(data)
    limit = len(buf) - 5
    offset = 0
    while offset <= limit:
        if buf[offset] not in (0xE8, 0xE9):
            offset += 1
            continue
        (target,) = struct.unpack_from("<i", buf, offset + 1)
        if 0 <= target < limit:
            target -= offset
        elif -offset <= target < 0:
            target += limit
        struct.pack_into("<i", buf, offset + 1, target)
        offset += 5
    return bytes(buf)
