"""PE/COFF headers read with :mod:`struct`: the section table of an EFI binary or a UKI.

Only what inspection needs: each section's name, virtual address and size, and where its
bytes are in the file (``PointerToRawData``; the real length is ``VirtualSize``, the raw size
is padded to the file alignment). Long names (``/123``) are looked up in the COFF string
table, where objcopy puts names longer than 8 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO


class PeError(ValueError):
    """Not a PE image, or a truncated one."""


@dataclass(frozen=True)
class Section:
    name: str
    vma: int  # VirtualAddress (relative to the image base)
    size: int  # VirtualSize: the section's real length
    raw_offset: int  # PointerToRawData
    raw_size: int  # SizeOfRawData

    @property
    def file_size(self) -> int:
        """How many of its bytes are in the file (VirtualSize may exceed the raw data: .bss)."""
        return min(self.size, self.raw_size) if self.size else self.raw_size

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "vma": f"0x{self.vma:x}"}


@dataclass(frozen=True)
class PeImage:
    machine: int
    image_base: int
    sections: tuple[Section, ...]

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    @property
    def machine_name(self) -> str:
        return _MACHINES.get(self.machine, f"0x{self.machine:04x}")


_MACHINES = {0x8664: "x86_64", 0x14C: "i386", 0xAA64: "aarch64", 0x1C2: "arm", 0x5064: "riscv64"}
_SECTION = struct.Struct("<8sIIIIIIHHI")


def _read_at(fh: BinaryIO, offset: int, n: int) -> bytes:
    fh.seek(offset)
    data = fh.read(n)
    if len(data) != n:
        raise PeError(f"truncated: wanted {n} bytes at offset {offset}, got {len(data)}")
    return data


def read_headers(fh: BinaryIO) -> PeImage:
    """The headers and section table of the PE file open in `fh` (binary, seekable)."""
    dos = _read_at(fh, 0, 64)
    if dos[:2] != b"MZ":
        raise PeError("no MZ signature: not a PE/EFI image")
    (pe_off,) = struct.unpack_from("<I", dos, 0x3C)
    coff = _read_at(fh, pe_off, 24)
    if coff[:4] != b"PE\0\0":
        raise PeError(f"no PE signature at offset {pe_off}")
    machine, nsect, _ts, symtab, nsyms, opt_size, _chars = struct.unpack_from("<HHIIIHH", coff, 4)
    opt = _read_at(fh, pe_off + 24, opt_size) if opt_size else b""
    image_base = 0
    if len(opt) >= 32:
        magic = struct.unpack_from("<H", opt, 0)[0]
        if magic == 0x20B:  # PE32+
            image_base = struct.unpack_from("<Q", opt, 24)[0]
        elif magic == 0x10B and len(opt) >= 32:  # PE32
            image_base = struct.unpack_from("<I", opt, 28)[0]
    table = _read_at(fh, pe_off + 24 + opt_size, nsect * _SECTION.size)
    strtab_at = symtab + nsyms * 18 if symtab else 0
    sections = []
    for i in range(nsect):
        raw_name, vsize, vaddr, rsize, roff, *_ = _SECTION.unpack_from(table, i * _SECTION.size)
        name = raw_name.rstrip(b"\0").decode("ascii", errors="replace")
        if name.startswith("/") and name[1:].isdigit() and strtab_at:
            name = _long_name(fh, strtab_at + int(name[1:])) or name
        sections.append(Section(name, vaddr, vsize, roff, rsize))
    return PeImage(machine, image_base, tuple(sections))


def _long_name(fh: BinaryIO, offset: int) -> str | None:
    try:
        fh.seek(offset)
        raw = fh.read(256)
    except OSError:
        return None
    end = raw.find(b"\0")
    return raw[: end if end >= 0 else len(raw)].decode("ascii", errors="replace") or None


def section_bytes(fh: BinaryIO, section: Section, limit: int | None = None) -> bytes:
    """The section's content as stored in the file (at most `limit` bytes)."""
    n = section.file_size if limit is None else min(limit, section.file_size)
    return _read_at(fh, section.raw_offset, n)
