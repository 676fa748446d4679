"""iPXE paths: the private apt configuration, mirror discovery, provenance."""

from __future__ import annotations

import json
from pathlib import Path

from runbook_lib.sandbox import ipxe


def test_system_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://mirror.example/debian/ bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n")
    assert ipxe.system_mirror(tmp_path) == "http://mirror.example/debian"


def test_system_mirror_from_deb822(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "other.list").write_text(
        "deb https://packages.cloud.google.com/apt cloud-sdk main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm\nComponents: main\n")
    assert ipxe.system_mirror(tmp_path) == "http://deb.example/debian"


def test_system_mirror_default_when_none(tmp_path: Path) -> None:
    assert ipxe.system_mirror(tmp_path) == ipxe.DEFAULT_MIRROR


def test_private_apt_never_points_at_system_config(tmp_path: Path) -> None:
    apt = ipxe.PrivateApt(tmp_path / "apt", "http://m/debian", "trixie")
    apt.prepare()
    line = apt.sources.read_text()
    assert line.startswith("deb ") and "http://m/debian trixie main" in line
    argv = apt.argv("download", "ipxe/trixie")
    assert argv[0] == "apt-get" and argv[-2:] == ["download", "ipxe/trixie"]
    opts = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert opts["Dir::Etc::SourceList"] == str(apt.sources)
    assert opts["Dir::Etc::SourceParts"] == str(apt.parts)
    assert opts["Dir::State::Lists"] == str(apt.lists)
    assert opts["Dir::Cache"] == str(apt.cache)
    assert all(str(tmp_path) in v for k, v in opts.items() if k.startswith("Dir::"))
    assert (apt.lists / "partial").is_dir() and list(apt.parts.iterdir()) == []


def test_source_version_from_changelog(tmp_path: Path) -> None:
    (tmp_path / "debian").mkdir()
    (tmp_path / "debian" / "changelog").write_text("ipxe (1.21.1-1) unstable; urgency=medium\n")
    assert ipxe.source_version(tmp_path) == "1.21.1-1"
    assert ipxe.source_version(tmp_path / "nothing").startswith("unknown")


def test_provenance_json_round_trip() -> None:
    p = ipxe.Provenance("prebuilt", "1.2-3", "ipxe_1.2-3_all.deb (Debian trixie)",
                        {"ipxe.efi": "/usr/lib/ipxe/snponly.efi"}, "note")
    data = json.loads(p.to_json())
    assert data == {"path": "prebuilt", "version": "1.2-3", "origin": "ipxe_1.2-3_all.deb (Debian trixie)",
                    "files": {"ipxe.efi": "/usr/lib/ipxe/snponly.efi"}, "note": "note"}


def test_serial_console_is_enabled_for_source_builds() -> None:
    assert "#define CONSOLE_SERIAL" in ipxe.SERIAL_CONSOLE_H
