"""Step 2's one-line iPXE provenance note names how iPXE was made first, however long the record."""

from runbook_lib.build.step import _provenance_line


def test_the_path_comes_first_and_survives_the_bound() -> None:
    prov = {"autoexec_sha256": "9" * 64, "built": "2026-11-26T17:00:00+00:00",
            "chain_url": "http://${next-server}:8080/api/v0/pxe/boot?uuid=${uuid}&buildarch=${buildarch}",
            "resolution_summary": "ipxe_source: not given; carbide checkout: none; apt-get source: 404",
            "note": "x" * 70, "origin": "ipxe_1.21.1+git20250501_all.deb (Debian trixie)",
            "version": "1.21.1+git20250501", "path": "prebuilt"}
    line = _provenance_line(prov)
    assert line.startswith("path=prebuilt, version=1.21.1+git20250501, origin=ipxe_1.21.1")
    assert len(line) <= 300
