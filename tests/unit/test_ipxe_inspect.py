"""ipxe_inspect on synthetic binaries laid out like iPXE's (real ones: tests/integration)."""

from __future__ import annotations

import lzma
import struct
import zlib
from pathlib import Path

import pytest

from runbook_lib import ipxe_inspect as ii

SCRIPT = (b"#!ipxe\n# says ${43.70} in a comment only\necho hello ${version}\nifconf -c dhcp\n"
          b"isset ${43.70} || goto none\n"
          b"time chain --autofree http://${next-server}:8080/api/v0/pxe/boot?uuid=${43.70}&b=${buildarch}"
          b" && exit 1 || goto none\n:none\nexit 1\n")
MARKER = b"#!gpxe\x00#!ipxe\x00efi\x00"
BANNER = b"\x1b[0m\n\nDemo\n\x1b[1mdemo %s\x1b[0m -- a tag line -- \x1b[36mhttps://x\x00"
SBAT = b"sbat,1,SBAT Version,sbat,1,https://x\nipxe,1,iPXE,snponly.efi,demo-1.2 abc,https://ipxe.org\n\x00"


def efi(script: bytes | None) -> bytes:
    body = b"MZ" + b"\x90" * 200 + (script + b"\x00" * 7 if script else b"") + MARKER + BANNER + SBAT
    return body + b"\x00" * 64


def bcj(data: bytes) -> bytes:
    """zbin's bcj_filter (util/zbin.c), as the reference for the inverse."""
    buf = bytearray(data)
    limit = len(buf) - 5
    off = 0
    while off <= limit:
        if buf[off] not in (0xE8, 0xE9):
            off += 1
            continue
        (t,) = struct.unpack_from("<i", buf, off + 1)
        if -off <= t < limit - off:
            t += off
        elif limit - off <= t < limit:
            t -= limit
        struct.pack_into("<i", buf, off + 1, t)
        off += 5
    return bytes(buf)


def zbin_block(payload: bytes) -> bytes:
    packed = lzma.compress(bcj(payload), format=lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA1, "lc": 2, "lp": 0, "pb": 0, "dict_size": 1 << 20}])
    crc = zlib.crc32(packed) ^ 0xFFFFFFFF
    return struct.pack("<I", len(packed) + 4) + packed + struct.pack("<I", crc)


def kpxe(payload: bytes) -> bytes:
    return b"\xeb\x3c" + bytes(range(256)) * 8 + zbin_block(payload) + b"\x00" * 12


CODE = bytes([0xE8, 0x10, 0, 0, 0, 0xE9, 0xF0, 0xFF, 0xFF, 0xFF, 0x90]) * 300
VERSION_STRINGS = b"\x00\x00undionly.kpxe\x00\x00\x00demo\x00Demo\x00\x00\x00\x00demo-1.2 abc\x00\x00"


def test_efi_with_an_embedded_script(tmp_path: Path) -> None:
    p = tmp_path / "ipxe.efi"
    p.write_bytes(efi(SCRIPT))
    e = ii.embedded_script(p)
    assert e.state == "embedded" and e.container == "efi"
    assert e.script == SCRIPT.decode()
    assert e.needs_43_70 is True
    assert e.chain_urls == ["http://${next-server}:8080/api/v0/pxe/boot?uuid=${43.70}&b=${buildarch}"]
    assert (e.version, e.build_name) == ("demo-1.2 abc", "snponly.efi")
    assert e.banner == "demo demo-1.2 abc -- a tag line"
    assert "plain bytes" in e.note


def test_efi_without_a_script_is_none_and_says_autoexec(tmp_path: Path) -> None:
    p = tmp_path / "snponly.efi"
    p.write_bytes(efi(None))
    e = ii.embedded_script(p)
    assert (e.state, e.script, e.needs_43_70, e.chain_urls) == ("none", None, None, [])
    assert "autoexec.ipxe" in e.note and e.version == "demo-1.2 abc"


def test_a_script_that_never_reads_43_70() -> None:
    e = ii.inspect_bytes(efi(b"#!ipxe\ndhcp\nchain http://${next-server}:8080/x?uuid=${uuid}\n"))
    assert e.state == "embedded" and e.needs_43_70 is False
    assert e.chain_urls == ["http://${next-server}:8080/x?uuid=${uuid}"]


def test_bcj_inverse_restores_code() -> None:
    assert ii.unbcj(bcj(CODE)) == CODE
    assert bcj(CODE) != CODE  # the filter did change something


def test_kpxe_script_inside_an_lzma_block(tmp_path: Path) -> None:
    payload = CODE + VERSION_STRINGS + SCRIPT + b"\x00" * 3 + MARKER + CODE + BANNER
    p = tmp_path / "ipxe.kpxe"
    p.write_bytes(kpxe(payload))
    assert SCRIPT not in p.read_bytes()  # compressed: not visible as plain bytes
    e = ii.embedded_script(p)
    assert e.state == "embedded" and e.container == "zbin"
    assert e.script == SCRIPT.decode() and e.needs_43_70 is True
    assert (e.version, e.build_name) == ("demo-1.2 abc", "undionly.kpxe")
    assert "LZMA block" in e.note


def test_kpxe_without_a_script(tmp_path: Path) -> None:
    p = tmp_path / "undionly.kpxe"
    p.write_bytes(kpxe(CODE + VERSION_STRINGS + MARKER + CODE + BANNER))
    e = ii.embedded_script(p)
    assert e.state == "none" and "DHCP" in e.note


def test_a_corrupt_block_is_not_read(tmp_path: Path) -> None:
    data = bytearray(kpxe(CODE + SCRIPT + MARKER))
    data[2 + 2048 + 40] ^= 0xFF  # inside the packed block: its CRC no longer matches
    e = ii.inspect_bytes(bytes(data))
    assert e.state == "unknown" and "zbin" in e.note


@pytest.mark.parametrize("blob", [b"", b"hello world" * 100, b"MZ" + b"\x00" * 4096])
def test_not_ipxe_is_unknown(blob: bytes) -> None:
    e = ii.inspect_bytes(blob)
    assert e.state == "unknown" and e.note


def test_unreadable_file_is_unknown(tmp_path: Path) -> None:
    e = ii.embedded_script(tmp_path / "missing.efi")
    assert e.state == "unknown" and "cannot read" in e.note


def test_pci_rom_says_so() -> None:
    rom = b"\x55\xaa" + kpxe(CODE + MARKER + BANNER)[2:]
    e = ii.inspect_bytes(rom)
    assert e.state == "none" and e.container == "pci-rom" and "option ROM" in e.note


def test_two_embedded_scripts_keep_the_first() -> None:
    e = ii.inspect_bytes(efi(b"#!ipxe\necho one\n#!ipxe\necho two\n"))
    assert e.script == "#!ipxe\necho one\n" and "more than one" in e.note


def test_chain_urls_and_commands() -> None:
    text = ("#!ipxe\n# chain http://comment/only\n:label\nchain --replace tftp://x/a.efi || goto y\n"
            "imgexec http://h/b\nchain tftp://x/a.efi\n")
    assert ii.chain_urls(text) == ["tftp://x/a.efi", "http://h/b"]
    assert ii.script_commands(text)[0].startswith("chain --replace")


def test_bios_nop_padding_after_the_script_is_not_part_of_it() -> None:
    # seen in undionly.kpxe at d7e58c5a: the script is followed by 66 90 (a two-byte NOP)
    payload = CODE + SCRIPT + b"f\x90" * 15 + b"\x1ba" + MARKER + BANNER
    e = ii.inspect_bytes(kpxe(payload))
    assert e.script == SCRIPT.decode()
    utf8 = b"#!ipxe\necho caf\xc3\xa9 \xc3\x90\n"  # a real 0x90 inside UTF-8 text stays
    assert ii.inspect_bytes(efi(utf8)).script == utf8.decode()
