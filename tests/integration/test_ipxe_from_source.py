"""The sandbox builds iPXE like carbide does, from the pinned source in ../shared/data (~3 min cold).

Also reads real iPXE binaries with ipxe_inspect: the ones built here, Debian's prebuilt (the
cached .deb, when present) and QEMU's NIC ROMs and carbide's own build (when present).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from runbook_lib import paths, shell
from runbook_lib.ipxe_inspect import embedded_script
from runbook_lib.result import Status
from runbook_lib.sandbox import build, ipxe, scripts
from runbook_lib.sandbox.ipxe_source import PINNED_COMMIT, PINNED_SHA256
from runbook_lib.sandbox.tasks import IPXE_TASK, PROVENANCE_FILE

pytestmark = [pytest.mark.integration,
              pytest.mark.needs_tool("make", "iPXE is built with make: apt-get install build-essential"),
              pytest.mark.needs_tool("gcc", "iPXE is compiled with gcc: apt-get install build-essential"),
              pytest.mark.needs_tool("perl", "iPXE's build scripts are perl")]

REPO = Path(__file__).resolve().parents[2]
DEB_CACHE = Path.home() / ".cache" / "carbide-runbooks" / "ipxe-deb"
CARBIDE_EFI = Path("/tmp/corpus-carbide/tftp/ipxe.efi")  # carbide's own build, never committed
QEMU_ROM = Path("/usr/lib/ipxe/qemu/pxe-virtio.rom")


def _need(path: Path, why: str) -> None:
    if not path.exists():
        msg = f"{path} is missing: {why}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: test data must be present)", pytrace=False)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, pinned_ipxe_source: Path) -> dict:
    """One cold build through the CLI, with a private cache and workdir."""
    TARBALL = pinned_ipxe_source  # noqa: N806 (the conftest fixture finds ../shared/data)
    tmp = tmp_path_factory.mktemp("ipxe-src")
    xdg, wd = tmp / "xdg", tmp / "wd"
    argv = [sys.executable, "-m", "runbook_lib.sandbox", "build", "--task", IPXE_TASK, "--workdir", str(wd),
            "--ipxe-source", str(TARBALL), "--no-ipxe-download"]
    env = {"XDG_CACHE_HOME": str(xdg), "PYTHONPATH": str(REPO)}
    rr = shell.run(argv, timeout=1800, cwd=REPO, env=env, log_path=tmp / "cli.log")
    dest = paths.artifacts_dir(wd, "x86_64")
    return {"rr": rr, "dest": dest, "cache": xdg / "carbide-runbooks", "wd": wd, "log": tmp / "cli.log",
            "tarball": TARBALL}


def test_cold_build_from_the_pinned_tarball(built: dict) -> None:
    rr = built["rr"]
    assert rr.ok, f"exit {rr.returncode}; see {built['log']}:\n" + "\n".join(rr.tail[-30:])
    dest: Path = built["dest"]
    for name in ("ipxe.efi", "ipxe.kpxe"):
        assert (dest / name).stat().st_size > 64 * 1024, name
    assert not (dest / "autoexec.ipxe").exists()  # carbide never writes one; neither does this path
    prov = json.loads((dest / PROVENANCE_FILE).read_text())
    TARBALL = built["tarball"]  # noqa: N806
    assert prov["path"] == "source" and prov["origin"] == str(TARBALL)
    assert prov["source_kind"] == "ipxe_source" and prov["source_sha256"] == PINNED_SHA256
    assert prov["version"] == f"commit {PINNED_COMMIT}"
    assert prov["resolution"][0]["used"] and prov["resolution"][0]["why"].startswith(f"used: tarball {TARBALL}")
    assert not any(r["used"] for r in prov["resolution"][1:])
    assert prov["files"] == {"ipxe.efi": "bin-x86_64-efi/snponly.efi", "ipxe.kpxe": "bin/undionly.kpxe"}
    assert prov["embedded_script"] is True
    assert prov["embedded_script_sha256"] == ipxe._sha(scripts.embedded_chain_script())
    assert prov["chain_url"] == scripts.embedded_chain_url_template()
    assert prov["build_tree_state"] == "cold" and prov["compiled_objects"] > 1000
    assert prov["features_not_linked"] == {}, "a feature of config/local/general.h did not link"
    assert "CONSOLE_SERIAL" not in prov["features_enabled"]
    assert any(f"iPXE make: {prov['compiled_objects']} objects compiled" in ln for ln in rr.tail)


def test_the_script_is_found_in_both_binaries(built: dict) -> None:
    assert built["rr"].ok
    want = scripts.embedded_chain_script()
    version = ipxe.make_version(f"commit {PINNED_COMMIT}")
    for name, container in (("ipxe.efi", "efi"), ("ipxe.kpxe", "zbin")):
        e = embedded_script(built["dest"] / name)
        assert e.state == "embedded" and e.container == container, (name, e.note)
        assert e.script == want, name
        assert e.needs_43_70 is True
        assert e.chain_urls == [scripts.embedded_chain_url_template()]
        assert e.version == version and e.banner is not None and e.banner.startswith(f"carbide-sandbox {version} -- ")


def test_a_second_build_compiles_nothing(built: dict) -> None:
    assert built["rr"].ok
    kw = {"workdir": built["wd"], "cache": built["cache"], "ipxe_source": built["tarball"], "download": False}
    again = build(IPXE_TASK, **kw)
    assert again.status is Status.PASS, again
    assert again.details["ipxe_build"] == {"action": "up-to-date", "make_ran": False, "compiled_objects": 0}
    forced = build(IPXE_TASK, force=True, **kw)  # make runs again in the cached build tree
    assert forced.status is Status.PASS, forced
    facts = forced.details["ipxe_build"]
    assert facts["make_ran"] and facts["build_tree_state"] == "warm"
    assert facts["compiled_objects"] == 0, facts
    assert embedded_script(built["dest"] / "ipxe.efi").state == "embedded"


@pytest.mark.needs_tool("dpkg-deb", "unpacks Debian's ipxe package")
def test_debians_prebuilt_has_no_script(tmp_path: Path) -> None:
    debs = sorted(DEB_CACHE.glob("ipxe_*_all.deb"))
    if not debs:
        pytest.skip(f"no cached Debian ipxe .deb in {DEB_CACHE} (a sandbox build without source fetches it)")
    assert shell.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp_path)], timeout=120).ok
    for name, container in (("snponly.efi", "efi"), ("undionly.kpxe", "zbin")):
        (path,) = tmp_path.rglob(name)
        e = embedded_script(path)
        assert (e.state, e.container) == ("none", container), (name, e.note)
        assert e.version and e.banner and "iPXE" in e.banner
    assert "autoexec.ipxe" in embedded_script(next(tmp_path.rglob("snponly.efi"))).note


def test_carbides_own_build_needs_43_70() -> None:
    if not CARBIDE_EFI.is_file():
        pytest.skip(f"{CARBIDE_EFI} (carbide's own ipxe.efi) is not on this machine")
    e = embedded_script(CARBIDE_EFI)
    assert e.state == "embedded" and e.needs_43_70 is True
    assert any("/api/v0/pxe/boot?uuid=${43.70}" in u for u in e.chain_urls)
    assert e.banner is not None and e.banner.startswith("carbide ")


def test_qemus_nic_rom_has_no_script() -> None:
    if not QEMU_ROM.is_file():
        pytest.skip(f"{QEMU_ROM} is missing (package ipxe-qemu)")
    e = embedded_script(QEMU_ROM)
    assert (e.state, e.container) == ("none", "pci-rom") and "option ROM" in e.note
