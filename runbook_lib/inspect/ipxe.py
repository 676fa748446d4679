"""iPXE binaries: version, embedded script (:mod:`runbook_lib.ipxe_inspect`) and visible features.

A feature is claimed only from evidence iPXE compiles in when it is enabled, checked on real
binaries: the iPXE commit carbide pins (d7e58c5a) built with its default config and with the
sandbox's ``config/local/general.h`` (snponly.efi and undionly.kpxe), carbide's own ``ipxe.efi``
(its config headers and its TPM patch), Debian trixie's 2025 build (1.21.1+git20250501) and
QEMU's 2019 NIC ROMs. The evidence is a NUL-terminated string (a URI scheme, a command
name, a protocol or feature name that iPXE keeps in ``.rodata``), or for carbide's TPM patch
(``efi_tpm.c``: TCG v1 and v2 measurement of the booted image) a second copy of both the
EFI_TCG_PROTOCOL and EFI_TCG2_PROTOCOL GUIDs: upstream iPXE keeps one copy of each (its GUID
table for debug names: 1 and 1 in the stock d7e58c5a build and in QEMU's 2019 ROM; 1 and 2 in
Debian's 2025 build, so one GUID alone would mislead), the patch adds its own copies of both (2
and 2 in carbide's build). Absence is not
proof (the linker merges a string into a longer one that ends with it): a feature not found is
reported as "not seen", never as "disabled". The embedded script's text is blanked before the
search, so a script that mentions ``https`` does not count. BIOS images are searched after
unpacking their LZMA blocks.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from .. import ipxe_inspect

IPXE_SUFFIXES = (".efi", ".kpxe", ".kkpxe", ".kkkpxe", ".pxe", ".lkrn", ".rom", ".efirom", ".usb", ".iso")
TCG2_GUID = uuid.UUID("607f766c-7455-42be-930b-e4d76db2720f").bytes_le
TCG1_GUID = uuid.UUID("f541796d-a62e-4954-a775-9584f61b9cdd").bytes_le


@dataclass(frozen=True)
class Feature:
    name: str
    what: str
    strings: tuple[str, ...] = ()  # any of these as a whole C string
    raw: tuple[bytes, ...] = ()  # or any of these bytes anywhere
    second_copies: tuple[bytes, ...] = ()  # or: each of these at least twice


FEATURES: tuple[Feature, ...] = (
    Feature("https", "HTTPS downloads (TLS; DOWNLOAD_PROTO_HTTPS)", strings=("https", "HTTPS")),
    Feature("ipv6", "IPv6 (NET_PROTO_IPV6; on by default in EFI builds)", strings=("IPv6", "ICMPv6")),
    Feature("tpm-measurement", "measures the image it boots into the TPM (carbide's TCG2 patch)",
            second_copies=(TCG1_GUID, TCG2_GUID)),
    Feature("autoexec", "looks for autoexec.ipxe beside itself (EFI builds)", raw=(b"\0file:autoexec.ipxe\0",)),
    Feature("ping", "ping command (PING_CMD)", strings=("ping",)),
    Feature("nslookup", "nslookup command (NSLOOKUP_CMD)", strings=("nslookup",)),
    Feature("ntp", "ntp command (NTP_CMD)", strings=("ntp",)),
    Feature("imgtrust", "imgtrust/imgverify: signed images (IMAGE_TRUST_CMD)", strings=("imgtrust", "imgverify")),
    Feature("digest", "md5sum/sha1sum commands (DIGEST_CMD)", strings=("md5sum", "sha1sum")),
    Feature("vlan", "vcreate/vdestroy: VLANs (VLAN_CMD)", strings=("vcreate", "vdestroy")),
    Feature("param", "params/param: HTTP POST forms (PARAM_CMD)", strings=("param",)),
    Feature("console", "console command (CONSOLE_CMD)", strings=("console",)),
    Feature("poweroff", "poweroff command (POWEROFF_CMD)", strings=("poweroff",)),
    Feature("pciscan", "pciscan command (PCI_CMD)", strings=("pciscan",)),
    Feature("ipstat", "ipstat command (IPSTAT_CMD)", strings=("ipstat",)),
    Feature("syslog", "syslog console (CONSOLE_SYSLOG)", strings=("syslog",)),
    Feature("png", "PNG images (IMAGE_PNG; linked in with the console command's --picture)", strings=("PNG",)),
    Feature("gzip", "gzip images (IMAGE_GZIP)", strings=("gzip",)),
    Feature("zlib", "zlib images (IMAGE_ZLIB)", strings=("zlib",)),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
_CSTRING = re.compile(rb"(?<=\x00)([\x20-\x7e]{2,64})(?=\x00)")


def payloads(data: bytes) -> list[bytes]:
    """The bytes to search: the file, plus every zbin LZMA block unpacked (BIOS images, ROMs)."""
    if data[:2] == b"MZ":
        return [data]
    return [data] + [block for _, block in ipxe_inspect.unpack_zbin(data)]


def features(data: bytes, script: str | None = None) -> dict[str, list[str]]:
    """feature name -> the evidence found (only features seen are listed)."""
    blobs = payloads(data)
    if script:
        raw = script.encode("utf-8", errors="replace")
        blobs = [b.replace(raw, b"\0" * len(raw)) for b in blobs]
    found_strings: set[bytes] = set()
    for b in blobs:
        found_strings.update(_CSTRING.findall(b))
    out: dict[str, list[str]] = {}
    for f in FEATURES:
        ev = [f"string {s!r}" for s in f.strings if s.encode() in found_strings]
        for r in f.raw:
            if any(r in b for b in blobs):
                ev.append(f"bytes {r.strip(bytes(1))!r}")
        if f.second_copies and all(max(b.count(g) for b in blobs) >= 2 for g in f.second_copies):
            ev.append("two copies each of the EFI_TCG_PROTOCOL and EFI_TCG2_PROTOCOL GUIDs")
        if ev:
            out[f.name] = ev
    return out


def looks_like_ipxe(data: bytes) -> bool:
    e = ipxe_inspect.inspect_bytes(data)
    return e.state != "unknown" or bool(e.version or e.banner)


def ipxe_facts(data: bytes) -> dict[str, Any]:
    """Version, embedded script (text, 43.70, chained URLs) and features of an iPXE binary."""
    e = ipxe_inspect.inspect_bytes(data)
    feats = features(data, e.script)
    return {
        "banner": e.banner, "version": e.version, "build_name": e.build_name, "container": e.container,
        "script_state": e.state, "script": e.script,
        "script_sha256": hashlib.sha256(e.script.encode()).hexdigest() if e.script else None,
        "needs_43_70": e.needs_43_70, "chain_urls": list(e.chain_urls),
        "features": sorted(feats, key=FEATURE_NAMES.index), "feature_evidence": feats,
        "note": e.note,
    }
