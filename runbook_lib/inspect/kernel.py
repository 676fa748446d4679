"""The Linux x86 boot protocol header of a bzImage (``.linux`` of a UKI, or a vmlinuz file).

The setup header starts at 0x1f1; ``HdrS`` at 0x202 marks protocol 2.00 and later. Its
``kernel_version`` field (u16 at 0x20e, protocol >= 2.00) points, minus 0x200, at a NUL-ended
string such as ``6.1.0-28-amd64 (debian-kernel@lists.debian.org) #1 SMP ...``: what ``uname -r``
reports is its first word.
"""

from __future__ import annotations

import struct

SETUP_READ = 0x10000  # the string sits in the setup code (0x44c0 in a Debian 6.1 kernel)


def header_facts(head: bytes) -> dict[str, object] | None:
    """Facts from the first bytes of a bzImage; None when it has no Linux boot header."""
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    (protocol,) = struct.unpack_from("<H", head, 0x206)
    (ver_ptr,) = struct.unpack_from("<H", head, 0x20E)
    out: dict[str, object] = {"boot_protocol": f"{protocol >> 8}.{protocol & 0xff:02d}"}
    if ver_ptr:
        start = ver_ptr + 0x200
        end = head.find(b"\0", start, start + 256)
        if start < len(head) and end > start:
            text = head[start:end].decode("ascii", errors="replace").strip()
            out["kernel_version_string"] = text
            out["kernel_release"] = text.split()[0] if text else None
    return out
