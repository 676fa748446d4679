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


def test_provenance_json_round_trip() -> None:
    p = ipxe.Provenance("prebuilt", "1.2-3", "ipxe_1.2-3_all.deb (Debian trixie)",
                        {"ipxe.efi": "/usr/lib/ipxe/snponly.efi"}, "note")
    data = json.loads(p.to_json())
    assert data == {"path": "prebuilt", "version": "1.2-3", "origin": "ipxe_1.2-3_all.deb (Debian trixie)",
                    "files": {"ipxe.efi": "/usr/lib/ipxe/snponly.efi"}, "note": "note"}


def test_provenance_details_are_flattened() -> None:
    p = ipxe.Provenance("source", "commit x", "/src", {}, details={"embedded_script": True})
    assert json.loads(p.to_json())["embedded_script"] is True and "details" not in p.to_dict()


def test_local_config_enables_the_features_carbide_needs() -> None:
    headers = ipxe.local_config()
    assert sorted(headers) == ["branding.h", "console.h", "general.h"]
    enabled = ipxe.enabled_features(headers)
    for name in ("CONSOLE_CMD", "DOWNLOAD_PROTO_HTTPS", "NET_PROTO_IPV6", "TIME_CMD", "PARAM_CMD",
                 "PING_CMD", "NSLOOKUP_CMD", "REBOOT_CMD", "POWEROFF_CMD", "IMAGE_TRUST_CMD",
                 "DIGEST_CMD", "VLAN_CMD", "NTP_CMD"):
        assert name in enabled, name
    # the firmware already mirrors iPXE's console to serial: CONSOLE_SERIAL doubled every character
    assert "CONSOLE_SERIAL" not in enabled and "CONSOLE_SERIAL" in headers["console.h"]
    assert '#define PRODUCT_SHORT_NAME "carbide-sandbox"' in headers["branding.h"]
    assert "PRODUCT_ERROR_URI" not in headers["branding.h"]  # ipxe.org error links stay


def test_make_version_is_safe_for_sbat() -> None:
    v = ipxe.make_version("commit d7e58c5a812988c341ec4ad19f79faf067388d58")
    assert v.endswith("+ipxe-d7e58c5a") and " " not in v and "," not in v
    assert ipxe.make_version("Debian 1.21.1+git20250501.dad20602+dfsg-1").endswith(
        "+ipxe-1.21.1+git20250501.dad20602+dfsg-1")


def test_make_steps_counts_compiles() -> None:
    lines = ["  [DEPS] core/main.c", "  [BUILD] bin/main.o", "  [BUILD] bin/x.o", "  [LD] bin/undionly.kpxe.tmp",
             "make[1]: 'bin/undionly.kpxe' is up to date.", "[BUILD] not indented"]
    assert ipxe.make_steps(lines) == {"BUILD": 2, "DEPS": 1, "LD": 1}


def test_missing_features_reads_link_maps(tmp_path: Path) -> None:
    for target in ipxe.TARGETS.values():
        (tmp_path / target).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{target}.tmp.map").write_text(" bin/blib.a(https.o)\n bin/blib.a(ping_cmd.o)\n")
    assert ipxe.missing_features(tmp_path, ["DOWNLOAD_PROTO_HTTPS", "PING_CMD"]) == {}
    assert ipxe.missing_features(tmp_path, ["NTP_CMD"]) == {"ipxe.efi": ["NTP_CMD"], "ipxe.kpxe": ["NTP_CMD"]}


def test_apt_source_failure_names_the_file_and_the_answer() -> None:
    tail = ["Err:1 http://deb.debian.org/debian bookworm/main ipxe 1.0.0+git-20190125.36a4c85-5.1 (tar)",
            "  404  Not Found [IP: 203.0.113.80 80]",
            "E: Failed to fetch http://deb.debian.org/debian/pool/main/i/ipxe/ipxe_1.0.0%2bgit-20190125.36a4c85"
            ".orig.tar.xz  404  Not Found [IP: 203.0.113.80 80]",
            "E: Failed to fetch some archives."]
    assert ipxe.apt_source_failure(tail, 100) == (
        "404 Not Found for ipxe_1.0.0%2bgit-20190125.36a4c85.orig.tar.xz (the mirror has no source tarball)")
    assert ipxe.apt_source_failure(["E: Unable to find a source package for ipxe"], 100) == \
        "failed: E: Unable to find a source package for ipxe"
    assert ipxe.apt_source_failure([], 100) == "failed: exit 100"
