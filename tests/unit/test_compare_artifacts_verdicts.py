"""compare_artifacts on sets the test makes: verdicts, exit codes, the order of differences,
the sentences, and the CLI. (The real iPXE builds are in tests/integration/test_compare_artifacts.py.)"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from runbook_lib import cli
from runbook_lib.compare import DIFFERENT, ERROR, SAME, compare_artifacts, compare_section, file_differences
from runbook_lib.result import Status

REG, DIR, LNK = 0o100644, 0o040755, 0o120777


def newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nm = name.encode() + b"\0"
        out += b"070701" + b"".join(f"{v:08X}".encode() for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0)) + nm
        out += b"\0" * ((-len(out)) % 4) + data
        out += b"\0" * ((-len(out)) % 4)
    return bytes(out)


def manifest(pkgs: dict[str, str]) -> str:
    return json.dumps({"manifest_version": 1, "packages": [
        {"type": "deb", "name": n, "version": v, "architecture": "amd64"} for n, v in pkgs.items()]})


def make_set(d: Path, init: bytes = b"/usr/lib/systemd/systemd", pkgs: dict[str, str] | None = None) -> Path:
    d.mkdir(parents=True)
    (d / "carbide.root").write_bytes(gzip.compress(newc([("usr", DIR, b""), ("usr/lib/systemd/systemd", REG, b"elf"),
                                                       ("init", LNK, init)]), mtime=0))
    (d / "carbide.manifest").write_text(manifest(pkgs or {"systemd": "252.33-1", "bash": "5.2.15-2"}))
    (d / "README").write_text("artifacts\n")
    return d


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def test_identical_sets_are_same(tmp_path: Path) -> None:
    a = make_set(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / ".gitignore").write_text("*\n")  # hidden files are not artifacts
    cmp = compare_artifacts(a, b)
    assert cmp.verdict == SAME and cmp.exit_code == 0 and cmp.differences == []
    assert [f.name for f in cmp.files] == ["carbide.root", "carbide.manifest", "README"]
    assert all(f.equal for f in cmp.files)
    r = cmp.to_result()
    assert r.status is Status.PASS and "SAME" in r.summary


def test_differences_in_order_of_boot_relevance(tmp_path: Path) -> None:
    a = make_set(tmp_path / "a")
    b = make_set(tmp_path / "b", init=b"/sbin/init", pkgs={"systemd": "252.34-1", "curl": "7.88"})
    (b / "README").write_text("ARTIFACTS\n")
    (b / "build-notes.txt").write_text("not an artifact a boot needs\n")  # only in DIR: late
    (a / "autoexec.ipxe").write_text("#!ipxe\ndhcp\nset url http://10.0.2.2:8080/boot\nchain ${url}\n")
    cmp = compare_artifacts(a, b)
    assert cmp.verdict == DIFFERENT and cmp.exit_code == 1
    cats = [d.category for d in cmp.differences]
    assert cats == ["missing artifact", "cpio root", "packages", "missing file", "bytes"], cats
    s = [d.sentence for d in cmp.differences]
    assert s[0] == ("autoexec.ipxe is only in REF (an iPXE script that chains http://10.0.2.2:8080/boot without "
                    "needing DHCP option 43.70, 59 B); DIR has no such file")
    assert s[3].startswith("build-notes.txt is only in DIR (a file, ")
    assert "REF has /init -> /usr/lib/systemd/systemd, DIR has /init -> /sbin/init (target not in the archive)" in s[1]
    assert "1 only in DIR, 1 only in REF, 1 at another version" in s[2]
    assert "+curl 7.88" in s[2] and "-bash 5.2.15-2" in s[2] and "systemd 252.33-1 -> 252.34-1" in s[2]
    assert s[4] == "README: the bytes differ (same size)"
    r = cmp.to_result()
    assert r.status is Status.FAIL and r.cause == s[0] and r.fix and "missing artifact" in r.fix
    assert list(r.tables["differences"]["what"]) == cats
    json.dumps(cmp.to_dict(with_facts=True))  # JSON-able


def test_missing_directory_and_unreadable_file_are_errors(tmp_path: Path) -> None:
    a = make_set(tmp_path / "a")
    cmp = compare_artifacts(a, tmp_path / "nope")
    assert cmp.verdict == ERROR and cmp.exit_code == 2 and "does not exist" in (cmp.error or "")
    assert cmp.to_result().status is Status.ERROR
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "carbide.efi").symlink_to(tmp_path / "deleted-build-output")
    cmp = compare_artifacts(a, b)
    assert cmp.verdict == ERROR and "DIR carbide.efi: cannot read" in (cmp.error or "")
    (tmp_path / "file").write_text("x")
    assert compare_artifacts(tmp_path / "file", a).verdict == ERROR
    empty1, empty2 = tmp_path / "e1", tmp_path / "e2"
    empty1.mkdir(), empty2.mkdir()
    assert "neither" in (compare_artifacts(empty1, empty2).error or "")


def ipxe(script: str | None, *, needs: bool = False, urls: list[str] | None = None, version: str = "1.0",
         features: list[str] | None = None, container: str = "efi") -> dict:
    return {"name": "ipxe.efi", "kind": "ipxe", "size": 1000, "sha256": str(hash((script, version, tuple(features or [])))),
            "ipxe": {"banner": f"iPXE {version} -- x", "version": version, "container": container,
                     "script_state": "embedded" if script else "none", "script": script,
                     "needs_43_70": needs if script else None, "chain_urls": urls or [],
                     "features": features or [], "script_sha256": None}}


CARBIDE = ("#!ipxe\nifconf -c dhcp\nisset ${43.70} && chain http://${next-server}:8080/api/v0/pxe/boot?"
           "uuid=${43.70}\n")
URL = "http://${next-server}:8080/api/v0/pxe/boot?uuid=${43.70}"


def test_the_downstream_report_in_words() -> None:
    ref = ipxe(CARBIDE, needs=True, urls=[URL], features=["https", "tpm-measurement"])
    mine = ipxe(None, version="1.21.1+", features=["https"])
    d = file_differences("ipxe.efi", ref, mine)
    assert [x.category for x in d] == ["embedded script", "DHCP option 43.70", "chained URL", "iPXE version",
                                       "iPXE features"]
    assert d[0].sentence == (f"ipxe.efi: the embedded script differs: REF chains {URL} only when DHCP gives "
                             "option 43.70; DIR has no embedded script (stock iPXE: it looks for "
                             "autoexec.ipxe beside itself, then boots what DHCP names)")
    assert d[0].diff and f"-isset ${{43.70}} && chain {URL}" in d[0].diff
    assert d[1].sentence.startswith("ipxe.efi: REF's script needs DHCP option 43.70") and \
        d[1].sentence.endswith("DIR has no embedded script")
    assert "REF 'iPXE 1.0 -- x'; DIR 'iPXE 1.21.1+ -- x'" in d[3].sentence
    assert "seen only in REF: tpm-measurement" in d[4].sentence
    other = ipxe("#!ipxe\ndhcp\nchain http://10.0.0.1/boot.ipxe\n", urls=["http://10.0.0.1/boot.ipxe"])
    d = file_differences("ipxe.efi", ipxe(CARBIDE, needs=True, urls=[URL]), other)
    assert d[0].sentence.endswith("DIR chains http://10.0.0.1/boot.ipxe without needing DHCP option 43.70")
    assert d[1].sentence.endswith("DIR's does not")


def test_same_story_different_script() -> None:
    a = ipxe(CARBIDE, needs=True, urls=[URL])
    b = ipxe(CARBIDE.replace("ifconf -c dhcp", "dhcp"), needs=True, urls=[URL])
    (d,) = file_differences("ipxe.efi", a, b)
    assert d.sentence.startswith("ipxe.efi: the embedded script differs (2 lines changed, see the diff); both chains")


def test_compare_section_without_reference(tmp_path: Path) -> None:
    r = compare_section("", tmp_path)
    assert r.status is Status.PASS and r.summary.startswith("not asked")
    a = make_set(tmp_path / "a")
    assert compare_section(str(a), a).status is Status.PASS


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_set(tmp_path / "a")
    b = make_set(tmp_path / "b", init=b"/bin/sh")
    assert cli.main(["compare-artifacts", str(a), str(a)]) == 0
    assert capsys.readouterr().out.startswith("SAME: REF")
    assert cli.main(["compare-artifacts", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "1. [cpio root] carbide.root: the root archive differs" in out
    assert cli.main(["compare-artifacts", str(a), str(tmp_path / "missing"), "--json"]) == 2
    got = json.loads(capsys.readouterr().out)
    assert got["verdict"] == "ERROR" and got["exit_code"] == 2
    assert cli.main(["compare-artifacts", str(a), str(b), "--json"]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["differences"][0]["category"] == "cpio root" and "carbide.root" in got["dir_facts"]
