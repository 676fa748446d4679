"""Real PXE boots on the testnet: carbide's DHCP contract in a network namespace of the run's own.

The artifacts are the sandbox's, with iPXE built from the source carbide pins (the tarball in
../shared/data) so ``ipxe.efi`` and ``ipxe.kpxe`` embed the sandbox chain script, which, like
carbide's, chains only when DHCP sent option 43.70. Each test asserts the verdict, the first
failure where failing, the DHCP and HTTP evidence, and that nothing is left behind (no process,
no namespace). Root only (network namespaces); about 8 minutes under TCG on 2 cores, plus
~3 minutes to build iPXE from source when its cache is cold.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from runbook_lib.boot import step
from runbook_lib.boot import testnet as tn
from runbook_lib.params import STEP3
from runbook_lib.paths import artifacts_dir
from runbook_lib.result import Status

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes")]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return {ln.split()[0] for ln in out.splitlines() if ln.strip()}


@pytest.fixture(scope="module")
def art(tmp_path_factory: pytest.TempPathFactory, pinned_ipxe_source: Path, needs_root: None) -> Path:
    from runbook_lib.sandbox import build

    workdir = tmp_path_factory.mktemp("testnet-sandbox")
    res = build(workdir=workdir, ipxe_source=pinned_ipxe_source)
    assert res.status is Status.PASS, f"sandbox build from the pinned iPXE source failed: {res}"
    d = artifacts_dir(workdir)
    prov = json.loads((d / "ipxe.provenance.json").read_text())
    assert prov["path"] == "source", prov
    assert not (d / "autoexec.ipxe").exists()
    return d


@pytest.fixture(autouse=True)
def _no_namespace_left() -> None:
    before = {n for n in _namespaces() if n.startswith(tn.PREFIX)}
    yield
    left = {n for n in _namespaces() if n.startswith(tn.PREFIX)} - before
    assert not left, f"namespaces left behind: {left}"


def params(art: Path, **kw) -> dict:
    base = {"artifacts_dir": str(art), "network": "testnet", "accel": "tcg", "boot_timeout_s": 300}
    base.update(kw)
    return STEP3.validate(base)


def boot(tmp_path: Path, p: dict, **kw) -> tuple[step.BootRun, dict]:
    plan = step.preflight(p)
    assert plan.first_problem() is None, plan.first_problem()
    run = step.boot(plan, tmp_path, on_event=None, **kw)
    data = json.loads(json.dumps(step.result(run).to_dict(), default=str))
    assert not run.leftovers, run.leftovers
    assert Path(run.logs["dhcp (dnsmasq)"]).is_file()
    return run, data


def _acks(run: step.BootRun, user_class: str = "") -> list:
    return [e for e in run.dhcp if e.kind == "DHCPACK" and user_class.lower() in e.user_class.lower()]


def _boot_requests(run: step.BootRun) -> list:
    return [r for r in run.requests if r.path.startswith("/api/v0/pxe/boot")]


def test_uefi_pxe_tftp_ipxe_efi_43_70_chain_reaches_login(tmp_path: Path, art: Path) -> None:
    p = params(art)
    run, data = boot(tmp_path, p)
    assert run.status is Status.PASS, run.cause
    reached = [m.name for m in run.analysis.milestones]
    assert {"pxe_dhcp", "nbp_downloaded", "ipxe_banner", "boot_script", "login_prompt"} <= set(reached)
    uuid = p["uuid"] or step.vmq.default_uuid(p["mac"])
    # DHCP: the firmware got ipxe.efi over TFTP, then the embedded iPXE got 43.70 = the VM's uuid
    firmware_acks = [e for e in _acks(run) if "PXEClient" in e.vendor_class and not e.user_class]
    assert firmware_acks and firmware_acks[0].bootfile == "ipxe.efi"
    assert _acks(run, "iPXE") and _acks(run, "iPXE")[-1].opt43_70 == uuid
    # HTTP: the chain carried carbide's query parameters, then the UKI
    req = _boot_requests(run)[0]
    assert req.status == 200 and req.query["uuid"] == uuid
    assert req.query["platform"] == "efi" and req.query["manufacturer"] == "Fedora"
    assert req.query["product"] == "Virt-Manager" and req.query["serial"]
    assert any(r.path.endswith("/carbide.efi") and r.status == 200 for r in run.requests)
    # one timeline from three sources, in time order
    tl = step.view.timeline_table(run)
    assert {"serial", "http", "dhcp"} <= set(tl["source"])
    secs = [s for s in tl["seconds"] if s == s and s is not None]
    assert secs == sorted(secs)
    assert any("ipxe.efi" in n for n in run.notes if n.startswith("exercised"))
    assert data["details"]["dhcp_events"]


def test_dhcp_without_43_70_fails_naming_it(tmp_path: Path, art: Path) -> None:
    run, _ = boot(tmp_path, params(art, dhcp_machine_uuid=False, boot_timeout_s=150))
    assert run.status is Status.FAIL
    assert run.analysis.first_failure.kind == "no_uuid_option", run.analysis.first_failure
    assert "43.70" in run.cause
    ipxe_acks = _acks(run, "iPXE")
    assert ipxe_acks and all(e.opt43_70 is None for e in ipxe_acks)
    assert not _boot_requests(run)
    assert any("no option 43.70" in n for n in run.notes)


def test_unknown_machine_uuid_fails_naming_the_answer(tmp_path: Path, art: Path) -> None:
    other = "0b7c6e5e-1d2a-4c1e-9f1e-2a3b4c5d6e7f"
    run, _ = boot(tmp_path, params(art, standin_uuid=other, boot_timeout_s=150))
    assert run.status is Status.FAIL
    reqs = _boot_requests(run)
    # as carbide-pxe: HTTP 200 with a script that prints the error and exits 101
    assert reqs and all(r.note and "unknown machine uuid" in r.note for r in reqs)
    assert run.analysis.first_failure.kind == "unknown_machine", run.analysis.first_failure
    assert any("does not know that machine uuid" in n for n in run.notes)


def test_dhcp_server_down_is_no_dhcp_offer(tmp_path: Path, art: Path) -> None:
    run, _ = boot(tmp_path, params(art, boot_timeout_s=120),
                  before_vm=lambda net: net.stop_dhcp())
    assert run.status is Status.FAIL
    assert run.analysis.first_failure.kind == "no_dhcp_offer", run.analysis.first_failure
    assert not [e for e in run.dhcp if e.kind in ("DHCPOFFER", "DHCPACK")]
    assert any("offered nothing" in n for n in run.notes)


def test_bios_kpxe_and_uefi_http_boot_at_once(tmp_path: Path, art: Path) -> None:
    """Two testnet boots at the same time, each with its own namespace, bridge and stand-in."""
    results: dict[str, tuple[step.BootRun, dict]] = {}
    errors: list[BaseException] = []

    def one(name: str, p: dict) -> None:
        try:
            results[name] = boot(tmp_path / name, p)
        except BaseException as exc:  # noqa: BLE001 (re-raised below in the test thread)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=("bios", params(art, firmware="bios", mac="52:54:00:12:34:60"))),
               threading.Thread(target=one, args=("http", params(art, uefi_boot="http", mac="52:54:00:12:34:61",
                                                                 boot_timeout_s=400)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    bios, _ = results["bios"]
    assert bios.status is Status.PASS, bios.cause
    # BIOS clients got ipxe.kpxe over TFTP whatever their user class (the ROM is iPXE too)
    # every PXE client (the ROM, then ipxe.kpxe) got ipxe.kpxe; the booted OS's own DHCP
    # (systemd-networkd, no vendor class) gets an address only
    pxe_acks = [e for e in _acks(bios) if e.vendor_class.startswith("PXEClient")]
    assert pxe_acks and all(e.bootfile == "ipxe.kpxe" for e in pxe_acks)
    assert any(e.kind == "tftp" and "ipxe.kpxe" in e.text for e in bios.dhcp)
    assert any("ipxe.kpxe" in n for n in bios.notes if n.startswith("exercised"))
    assert any(r.path.endswith("/carbide.vmlinuz") for r in bios.requests)
    http, _ = results["http"]
    assert http.status is Status.PASS, http.cause
    assert any(e.vendor_class.startswith("HTTPClient") and e.bootfile.endswith("/ipxe.efi")
               for e in _acks(http))
    assert any(r.path.endswith("/ipxe.efi") and r.status == 200 for r in http.requests)
    assert dict(bios.testnet)["namespace"] != dict(http.testnet)["namespace"]
