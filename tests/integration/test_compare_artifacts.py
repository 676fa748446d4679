"""The downstream report ("BYO-built boot artifacts are non-functional") as a test.

iPXE is built for real from the commit carbide pins, twice, with two embedded scripts: the
sandbox's (chains carbide-pxe only when DHCP gives option 43.70, like carbide's embed.ipxe) and
a self-built one that chains elsewhere without 43.70. The other artifacts are made with the real
tools (cpio + zstd for the root, objcopy + systemd's EFI stub for the UKI) and copied into both
sets unchanged. `runbook compare-artifacts` must exit 1 and name the embedded script first, in
words; identical sets exit 0.

The build tree is kept in ~/.cache/carbide-runbooks/test-inputs/ipxe-compare (cold: ~4.5 min on
2 cores, then a relink per script: seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import time
from pathlib import Path

import pytest

from runbook_lib import inspect, paths, shell
from runbook_lib.compare import compare_artifacts
from runbook_lib.sandbox import ipxe, scripts
from runbook_lib.sandbox.image import uki_argv
from runbook_lib.sandbox.ipxe_source import PINNED_COMMIT, resolve
from runbook_lib.sandbox.runner import Runner
from runbook_lib.system_paths import EFI_STUB

pytestmark = [pytest.mark.integration,
              pytest.mark.needs_tool("make", "iPXE is built with make: apt-get install build-essential"),
              pytest.mark.needs_tool("gcc", "iPXE is compiled with gcc"),
              pytest.mark.needs_tool("perl", "iPXE's build scripts are perl"),
              pytest.mark.needs_tool("objcopy", "assembles the test's UKI (binutils)"),
              pytest.mark.needs_tool("zstd", "compresses the test's root archive"),
              pytest.mark.needs_tool("cpio", "packs the test's root archive"),
              pytest.mark.usefixtures("no_leftover_processes")]

REPO = Path(__file__).resolve().parents[2]
BUILD_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "carbide-runbooks" / "test-inputs" \
    / "ipxe-compare"
SELF_BUILT = """#!ipxe
# a self-built iPXE: configure DHCP, then ask the boot API without waiting for option 43.70
dhcp
chain http://${next-server}:8080/api/v0/pxe/boot?uuid=${uuid}&buildarch=${buildarch}
"""
KERNEL_VERSION = "6.1.0-99-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1"
CARBIDE_CORPUS = Path("/tmp/corpus-carbide")  # carbide's own build, on the machines where it was made


def _bzimage_header() -> bytes:
    """The boot-protocol header of a bzImage (what the inspector reads of .linux), made here."""
    head = bytearray(0x5000)
    head[0:2] = b"MZ"
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<HH", head, 0x206, 0x020F, 0)
    struct.pack_into("<H", head, 0x20E, 0x44C0 - 0x200)
    raw = KERNEL_VERSION.encode() + b"\0"
    head[0x44C0: 0x44C0 + len(raw)] = raw
    return bytes(head)


def _run(argv: list[str], log: Path, **kw) -> shell.RunResult:
    rr = shell.run(argv, timeout=600, log_path=log, **kw)
    assert rr.ok, f"{rr.command} failed: {rr.tail_text(20)}"
    return rr


def _root_archive(work: Path, log: Path) -> Path:
    tree = work / "rootfs"
    (tree / "usr/lib/systemd").mkdir(parents=True)
    (tree / "usr/lib/systemd/systemd").write_bytes(b"\x7fELF" + os.urandom(4096))
    (tree / "etc").mkdir()
    (tree / "etc/hostname").write_text("carbide\n")
    (tree / "init").symlink_to("/usr/lib/systemd/systemd")
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    plain = work / "root.cpio"
    _run(["cpio", "-o", "-H", "newc", "-O", str(plain)], log, cwd=tree, input="\n".join([".", *names]) + "\n")
    out = work / "carbide.root"
    _run(["zstd", "-q", "-f", "-o", str(out), str(plain)], log)
    return out


def _uki(work: Path, initrd: Path, log: Path, cmdline: str, uname: str | None = None) -> Path:
    if not EFI_STUB.is_file():
        pytest.fail(f"{EFI_STUB} is missing (package systemd-boot-efi, installed by scripts/setup.sh)")
    (work / "os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    (work / "cmdline").write_text(cmdline + "\n")
    (work / "linux").write_bytes(_bzimage_header())
    out = work / ("carbide.efi" if uname is None else "uname.efi")
    argv = uki_argv(EFI_STUB, work / "os-release", work / "cmdline", work / "linux", initrd, out)
    if uname is not None:
        (work / "uname").write_text(uname + "\n")
        argv[1:1] = ["--add-section", f".uname={work / 'uname'}", "--change-section-vma", ".uname=0x28000"]
    _run(argv, log)
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory, pinned_ipxe_source: Path) -> dict[str, Path]:
    """REF (the sandbox's 43.70 script) and DIR (the self-built script): only ipxe.efi differs."""
    tmp = tmp_path_factory.mktemp("compare")
    log = tmp / "build.log"
    res = resolve(pinned_ipxe_source, None, BUILD_CACHE / "src", apt_probe=lambda: (None, "not tried here"))
    runner = Runner(lambda line: None, log)
    t0 = time.monotonic()
    ipxe.build_from_source(runner, res, BUILD_CACHE / "build", scripts.embedded_chain_script(), tmp / "built-ref")
    ipxe.build_from_source(runner, res, BUILD_CACHE / "build", SELF_BUILT, tmp / "built-dir")
    print(f"two iPXE builds: {time.monotonic() - t0:.1f} s")
    root = _root_archive(tmp, log)
    uki = _uki(tmp, root, log, "console=tty0 console=ttyS0,115200")
    manifest = tmp / "carbide.manifest"
    manifest.write_text(json.dumps({"manifest_version": 1, "packages": [
        {"type": "deb", "name": "systemd", "version": "252.33-1~deb12u1", "architecture": "amd64"}]}))
    ref, mine = tmp / "ref", tmp / "dir"
    for d, efi in ((ref, tmp / "built-ref" / "ipxe.efi"), (mine, tmp / "built-dir" / "ipxe.efi")):
        d.mkdir()
        shutil.copyfile(efi, d / "ipxe.efi")
        shutil.copyfile(tmp / "built-ref" / "ipxe.kpxe", d / "ipxe.kpxe")  # the same kpxe in both
        for f in (uki, root, manifest):
            shutil.copyfile(f, d / f.name)
    return {"ref": ref, "dir": mine, "tmp": tmp, "built_ref": tmp / "built-ref", "built_dir": tmp / "built-dir",
            "log": log}


@pytest.fixture(autouse=True)
def private_facts_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _cli(*args: str) -> shell.RunResult:
    return shell.capture([sys.executable, "-m", "runbook_lib.cli", "compare-artifacts", *args], timeout=120,
                         cwd=REPO, env={"PYTHONPATH": str(REPO)})


def test_only_the_embedded_script_differs_and_it_is_named_first(sets: dict[str, Path]) -> None:
    cmp = compare_artifacts(sets["ref"], sets["dir"])
    assert cmp.verdict == "DIFFERENT" and cmp.exit_code == 1, cmp.text()
    assert [f.name for f in cmp.files if not f.equal] == ["ipxe.efi"]
    first = cmp.differences[0]
    assert first.category == "embedded script" and first.file == "ipxe.efi"
    url_ref = scripts.embedded_chain_url_template()
    url_dir = "http://${next-server}:8080/api/v0/pxe/boot?uuid=${uuid}&buildarch=${buildarch}"
    assert first.sentence == (f"ipxe.efi: the embedded script differs: REF chains {url_ref} only when DHCP gives "
                              f"option 43.70; DIR chains {url_dir} without needing DHCP option 43.70")
    assert first.diff and "+dhcp" in first.diff and "-isset ${43.70} || goto no_uuid" in first.diff
    assert [d.category for d in cmp.differences] == ["embedded script", "DHCP option 43.70", "chained URL"]
    assert cmp.differences[1].sentence.startswith("ipxe.efi: REF's script needs DHCP option 43.70")


def test_the_cli_exits_1_and_says_it_in_words(sets: dict[str, Path]) -> None:
    rr = _cli(str(sets["ref"]), str(sets["dir"]))
    assert rr.returncode == 1, rr.tail_text()
    out = rr.tail
    assert out[0].startswith("DIFFERENT: REF ")
    assert out[2] == "differences (most boot-relevant first):"
    assert out[3].startswith("  1. [embedded script] ipxe.efi: the embedded script differs: REF chains ")
    assert out[3].endswith("without needing DHCP option 43.70")
    rr = _cli(str(sets["ref"]), str(sets["dir"]), "--json")
    got = json.loads("\n".join(rr.tail))
    assert got["exit_code"] == 1 and got["differences"][0]["category"] == "embedded script"
    assert got["dir_facts"]["ipxe.efi"]["ipxe"]["script"] == SELF_BUILT


def test_identical_sets_exit_0(sets: dict[str, Path]) -> None:
    copy = sets["tmp"] / "ref-copy"
    if not copy.exists():
        shutil.copytree(sets["ref"], copy)
    rr = _cli(str(sets["ref"]), str(copy))
    assert rr.returncode == 0, rr.tail_text()
    assert rr.tail[0].startswith("SAME: REF ")


def test_facts_of_the_real_ipxe_builds(sets: dict[str, Path]) -> None:
    version = ipxe.make_version(f"commit {PINNED_COMMIT}")
    for name, container in (("ipxe.efi", "efi"), ("ipxe.kpxe", "zbin")):
        f = inspect.artifact_facts(sets["built_ref"] / name)
        assert f["kind"] == "ipxe", name
        ip = f["ipxe"]
        assert (ip["container"], ip["version"], ip["script_state"]) == (container, version, "embedded")
        assert ip["script"] == scripts.embedded_chain_script() and ip["needs_43_70"] is True
        # the sandbox's config/local/general.h, as compiled in (see runbook_lib/inspect/ipxe.py)
        want = {"https", "ipv6", "ping", "nslookup", "ntp", "imgtrust", "digest", "vlan", "param", "console",
                "poweroff"}
        assert want <= set(ip["features"]), (name, ip["features"])
        assert not {"tpm-measurement", "pciscan", "ipstat", "syslog", "gzip", "zlib"} & set(ip["features"])
        assert ("autoexec" in ip["features"]) == (container == "efi")
    # the .kpxe of the second build holds the second script (read from its LZMA block)
    k = inspect.artifact_facts(sets["built_dir"] / "ipxe.kpxe")["ipxe"]
    assert k["container"] == "zbin" and k["script"] == SELF_BUILT and k["needs_43_70"] is False
    assert k["chain_urls"] == ["http://${next-server}:8080/api/v0/pxe/boot?uuid=${uuid}&buildarch=${buildarch}"]


def test_uki_and_root_made_with_the_real_tools(sets: dict[str, Path]) -> None:
    f = inspect.artifact_facts(sets["ref"] / "carbide.efi")
    assert f["kind"] == "uki"
    u = f["uki"]
    names = [s["name"] for s in u["sections"]]
    assert names[-4:] == [".osrel", ".cmdline", ".linux", ".initrd"] and ".sbat" in names
    assert u["cmdline"] == "console=tty0 console=ttyS0,115200"
    assert u["osrel_pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert (u["kernel_release"], u["kernel_release_from"]) == ("6.1.0-99-amd64", ".linux header")
    root = sets["ref"] / "carbide.root"
    assert u["initrd_size"] == root.stat().st_size
    r = inspect.artifact_facts(root)
    assert r["kind"] == "cpio" and r["cpio"]["compression"] == "zstd"
    listed = shell.capture(["sh", "-c", 'zstd -dc "$1" | cpio -t', "sh", str(root)], timeout=60)
    names_listed = [ln for ln in listed.tail if ln and not ln.endswith("blocks")]
    assert r["cpio"]["files"] == len(names_listed) == 8, listed.tail
    assert r["cpio"]["init"] == {"exists": True, "type": "symlink", "target": "/usr/lib/systemd/systemd",
                                 "target_in_archive": True}
    assert u["initrd"] == r["cpio"]
    # a .uname section wins over the header; a changed cmdline is named
    work = sets["tmp"] / "uname"
    work.mkdir(exist_ok=True)
    other = _uki(work, root, sets["log"], "console=ttyS0 panic=-1 init=/bin/false", uname="6.1.0-100-amd64")
    g = inspect.artifact_facts(other)["uki"]
    assert (g["kernel_release"], g["kernel_release_from"]) == ("6.1.0-100-amd64", ".uname")
    a, b = sets["tmp"] / "ukiA", sets["tmp"] / "ukiB"
    for d, src in ((a, sets["ref"] / "carbide.efi"), (b, other)):
        d.mkdir(exist_ok=True)
        shutil.copyfile(src, d / "carbide.efi")
    cmp = compare_artifacts(a, b)
    assert [d.category for d in cmp.differences][:2] == ["kernel cmdline", "kernel version"]
    assert "panic=-1 init=/bin/false" in cmp.differences[0].sentence


def test_carbides_own_build_when_present() -> None:
    """carbide's own ipxe.efi (its config and TPM patch) and UKI, where that build exists (never committed)."""
    efi, uki = CARBIDE_CORPUS / "tftp" / "ipxe.efi", CARBIDE_CORPUS / "artifacts" / "carbide.efi"
    if not efi.is_file() or not uki.is_file():
        pytest.skip(f"carbide's own build is not in {CARBIDE_CORPUS} on this machine")
    ip = inspect.artifact_facts(efi)["ipxe"]
    assert ip["needs_43_70"] is True and ip["banner"].startswith("carbide ")
    assert {"tpm-measurement", "https", "pciscan", "ipstat", "syslog", "gzip", "zlib"} <= set(ip["features"])
    u = inspect.artifact_facts(uki)["uki"]
    assert u["kernel_release"] and u["initrd"]["init"]["exists"] is True


def test_a_real_sandbox_build_when_present() -> None:
    art = paths.artifacts_dir(paths.sandbox_workdir())
    if not (art / "carbide.efi").is_file():
        pytest.skip(f"no sandbox build in {art} (runbook sandbox build makes one)")
    u = inspect.artifact_facts(art / "carbide.efi")["uki"]
    assert u["kernel_release"] and u["cmdline"] and u["initrd"]["init"]["exists"] is True
    assert inspect.artifact_facts(art / "carbide.root")["cpio"]["files"] > 1000


def test_zstd_that_is_not_cpio_or_is_cut_short(tmp_path: Path) -> None:
    """zstd runs through shell.spawn: stopped when the parser gives up early, its failure reported."""
    log = tmp_path / "zstd.log"
    (tmp_path / "notes.txt").write_bytes(b"not a cpio archive\n" * 50000)
    _run(["zstd", "-q", "-o", str(tmp_path / "x.cpio.zst"), str(tmp_path / "notes.txt")], log)
    f = inspect.artifact_facts(tmp_path / "x.cpio.zst", use_cache=False)
    assert f["kind"] == "cpio" and "not a newc cpio archive" in f["cpio"]["problem"]
    (tmp_path / "r").mkdir()
    data = _root_archive(tmp_path / "r", log).read_bytes()
    (tmp_path / "cut.cpio.zst").write_bytes(data[: len(data) // 2])
    g = inspect.artifact_facts(tmp_path / "cut.cpio.zst", use_cache=False)
    assert g["kind"] == "cpio" and "zstd -d failed" in g["cpio"]["problem"], g
