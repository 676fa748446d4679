"""Artifact inspection on inputs the test makes (cpio, bzImage header, manifest) and on real
files every machine has after scripts/setup.sh (systemd's EFI stub, QEMU's iPXE NIC ROMs)."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import struct
from pathlib import Path

import pytest

from runbook_lib import inspect
from runbook_lib.inspect import cpio, kernel, pe

STUB = Path("/usr/lib/systemd/boot/efi/linuxx64.efi.stub")  # package systemd-boot-efi (setup.sh)
QEMU_ROM = Path("/usr/lib/ipxe/qemu/pxe-virtio.rom")  # package ipxe-qemu (setup.sh)


def need(path: Path) -> Path:
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is missing (scripts/setup.sh installs it)", pytrace=False)
        pytest.skip(f"{path} is missing (run scripts/setup.sh)")
    return path


def newc(entries: list[tuple[str, int, bytes]], trailer: bool = True) -> bytes:
    """A newc archive: (name, mode, data) entries, as cpio -H newc writes them."""
    out = bytearray()
    items = entries + ([("TRAILER!!!", 0, b"")] if trailer else [])
    for ino, (name, mode, data) in enumerate(items, 1):
        nm = name.encode() + b"\0"
        hdr = b"070701" + b"".join(f"{v:08X}".encode() for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0))
        out += hdr + nm
        out += b"\0" * ((-len(out)) % 4)
        out += data
        out += b"\0" * ((-len(out)) % 4)
    return bytes(out)


REG, DIR, LNK = 0o100644, 0o040755, 0o120777
ROOT = [(".", DIR, b""), ("usr", DIR, b""), ("usr/lib", DIR, b""), ("usr/lib/systemd", DIR, b""),
        ("usr/lib/systemd/systemd", 0o100755, b"\x7fELF" + b"x" * 1000),
        ("init", LNK, b"/usr/lib/systemd/systemd"), ("etc", DIR, b""), ("etc/hostname", REG, b"carbide\n")]


def test_newc_root_plain_gzip_xz(tmp_path: Path) -> None:
    raw = newc(ROOT)
    for name, data, comp in (("root.cpio", raw, "none"), ("root.cpio.gz", gzip.compress(raw), "gzip"),
                             ("root.cpio.xz", lzma.compress(raw), "xz")):
        (tmp_path / name).write_bytes(data)
        f = cpio.facts_of(tmp_path / name)
        assert f.compression == comp
        assert (f.files, f.regular_files, f.archives) == (8, 2, 1), name
        assert f.unpacked_size == len(raw)
        assert f.init == {"exists": True, "type": "symlink", "target": "/usr/lib/systemd/systemd",
                          "target_in_archive": True}


def test_newc_relative_dangling_and_missing_init(tmp_path: Path) -> None:
    (tmp_path / "a.cpio").write_bytes(newc([("init", LNK, b"lib/systemd/systemd")]))
    f = cpio.facts_of(tmp_path / "a.cpio")
    assert f.init == {"exists": True, "type": "symlink", "target": "lib/systemd/systemd",
                      "target_in_archive": False}
    (tmp_path / "b.cpio").write_bytes(newc([("etc", DIR, b"")]))
    assert cpio.facts_of(tmp_path / "b.cpio").init == {"exists": False}
    (tmp_path / "c.cpio").write_bytes(newc([("init", 0o100755, b"#!/bin/sh\n")]))
    assert cpio.facts_of(tmp_path / "c.cpio").init == {"exists": True, "type": "file"}


def test_two_archives_in_a_row_and_a_cut_one(tmp_path: Path) -> None:
    early = newc([("kernel", DIR, b""), ("kernel/x86", DIR, b"")])
    (tmp_path / "two.cpio").write_bytes(early + b"\0" * 512 + newc(ROOT))
    f = cpio.facts_of(tmp_path / "two.cpio")
    assert (f.archives, f.files) == (2, 10) and f.init["exists"] is True
    (tmp_path / "cut.cpio.gz").write_bytes(gzip.compress(newc(ROOT, trailer=False)))
    g = cpio.facts_of(tmp_path / "cut.cpio.gz")
    assert g.archives == 0 and "cut short" in g.note


def test_not_cpio(tmp_path: Path) -> None:
    (tmp_path / "x.cpio.gz").write_bytes(gzip.compress(b"hello world, not an archive" * 10))
    with pytest.raises(cpio.CpioError, match="not a newc"):
        cpio.facts_of(tmp_path / "x.cpio.gz")
    assert cpio.compression(b"\x28\xb5\x2f\xfd....") == "zstd"
    assert cpio.compression(b"PK\x03\x04") is None


def bzimage_head(version: str, protocol: int = 0x020F) -> bytes:
    head = bytearray(0x5000)
    head[0:2] = b"MZ"
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, protocol)
    at = 0x44C0  # beyond the first 16 KB, like a Debian 6.1 kernel
    struct.pack_into("<H", head, 0x20E, at - 0x200)
    raw = version.encode() + b"\0"
    head[at: at + len(raw)] = raw
    return bytes(head)


def test_kernel_header() -> None:
    v = "6.1.0-28-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1"
    got = kernel.header_facts(bzimage_head(v))
    assert got == {"boot_protocol": "2.15", "kernel_version_string": v, "kernel_release": "6.1.0-28-amd64"}
    assert kernel.header_facts(b"MZ" + b"\0" * 0x300) is None


def test_real_efi_stub_sections() -> None:
    with open(need(STUB), "rb") as fh:
        image = pe.read_headers(fh)
        names = [s.name for s in image.sections]
        assert image.machine_name == "x86_64"
        assert ".text" in names and ".sbat" in names and ".sdmagic" in names
        sbat = pe.section_bytes(fh, image.section(".sbat"))  # type: ignore[arg-type]
    assert sbat.startswith(b"sbat,1,") and b"systemd" in sbat
    facts = inspect.artifact_facts(STUB, use_cache=False)
    assert facts["kind"] == "pe"  # a stub alone has no .linux: not a UKI


def test_qemu_rom_is_ipxe_without_script() -> None:
    f = inspect.artifact_facts(need(QEMU_ROM), use_cache=False)
    assert f["kind"] == "ipxe"
    ip = f["ipxe"]
    assert ip["script_state"] == "none" and ip["container"] == "pci-rom"
    assert ip["version"] and ip["version"].startswith("1.0.0+git-2019")
    assert "ipv6" in ip["features"]  # QEMU's ROMs are built with IPv6 ...
    assert "https" not in ip["features"] and "tpm-measurement" not in ip["features"]  # ... not HTTPS, no patch


def test_manifest_and_plain_files(tmp_path: Path) -> None:
    (tmp_path / "carbide.manifest").write_text(json.dumps({"manifest_version": 1, "packages": [
        {"type": "deb", "name": "systemd", "version": "252.33-1", "architecture": "amd64"},
        {"type": "deb", "name": "bash", "version": "5.2.15-2", "architecture": "amd64"}]}))
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / ".gitignore").write_text("*\n")
    facts = inspect.set_facts(tmp_path, use_cache=False)
    assert sorted(facts) == ["carbide.manifest", "notes.txt"]  # hidden files are not artifacts
    m = facts["carbide.manifest"]
    assert m["kind"] == "manifest" and m["manifest"]["packages"] == {"bash": "5.2.15-2", "systemd": "252.33-1"}
    t = facts["notes.txt"]
    assert t["kind"] == "file" and t["size"] == 6
    assert t["sha256"] == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


def test_unreadable_is_an_error_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "gone.efi").symlink_to(tmp_path / "nowhere")
    facts = inspect.set_facts(tmp_path, use_cache=False)
    assert facts["gone.efi"]["kind"] == "error" and "cannot read" in facts["gone.efi"]["error"]


def test_cache_is_used_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    art = tmp_path / "set" / "carbide.root"
    art.parent.mkdir()
    art.write_bytes(gzip.compress(newc(ROOT)))
    first = inspect.artifact_facts(art)
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 1 and first["cpio"]["files"] == 8
    # the cache answers: a doctored entry shows up (same path, size, mtime)
    doctored = json.loads(cached[0].read_text())
    doctored["cpio"]["files"] = 12345
    cached[0].write_text(json.dumps(doctored))
    assert inspect.artifact_facts(art)["cpio"]["files"] == 12345
    # a changed file (new mtime and size) is read again
    art.write_bytes(gzip.compress(newc(ROOT[:-1])))
    os.utime(art, ns=(1, 1))
    assert inspect.artifact_facts(art)["cpio"]["files"] == 7
