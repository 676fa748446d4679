"""The testnet's DHCP log in step 3's verdict: the notes and the merged timeline (real dnsmasq logs)."""

from __future__ import annotations

from pathlib import Path

from runbook_lib.boot import report
from runbook_lib.boot.dhcplog import parse_dnsmasq_log
from runbook_lib.boot.step import dhcp_evidence
from runbook_lib.boot.run import BootRun
from runbook_lib.boot.standin import Request
from runbook_lib.result import Status

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "dnsmasq"


def events(name: str) -> list:
    return parse_dnsmasq_log((FIX / name).read_text().splitlines())


def run_with(dhcp: list, requests: list[Request] | None = None) -> BootRun:
    return BootRun(Status.FAIL, "", None, None, dhcp=dhcp, requests=requests or [],
                   testnet=[("namespace", "crbtn-1-abcd")])


def boot_request(status: int = 200, note: str | None = None) -> Request:
    return Request(time="12:00:00.000", seconds=20.0, client="192.168.240.10", method="GET",
                   path="/api/v0/pxe/boot?uuid=u&buildarch=x86_64", status=status, bytes=10,
                   duration_s=0.01, note=note)


def test_an_ack_without_43_70_and_no_boot_request_is_said_plainly() -> None:
    notes = dhcp_evidence(run_with(events("carbide_uefi_no_43_70.log")))
    assert any("carried no option 43.70" in n for n in notes)
    assert "no request reached /api/v0/pxe/boot" in notes


def test_an_ack_with_43_70_names_the_uuid() -> None:
    evs = events("carbide_uefi_pxe_43_70.log")
    uuid = next(e.opt43_70 for e in evs if e.kind == "DHCPACK" and e.opt43_70)
    notes = dhcp_evidence(run_with(evs, [boot_request()]))
    assert notes == [f"DHCP ACK to the iPXE client carried option 43.70 = {uuid}"] or \
        any(uuid in n for n in notes)


def test_an_unknown_machine_answer_is_named() -> None:
    notes = dhcp_evidence(run_with(events("carbide_uefi_pxe_43_70.log"),
                                   [boot_request(note="unknown machine uuid u")]))
    assert any("unknown machine uuid u" in n and "does not know" in n for n in notes)


def test_no_offer_at_all_blames_the_network_not_the_image() -> None:
    notes = dhcp_evidence(run_with([]))
    assert any("offered nothing" in n and "not a fault of the image" in n for n in notes)


def test_timeline_merges_dhcp_offers_and_acks_with_http() -> None:
    run = run_with(events("testnet_uefi_pxe.log"), [boot_request()])
    tl = report.timeline_table(run)
    assert {"dhcp", "http"} <= set(tl["source"])
    assert set(tl[tl["source"] == "dhcp"]["event"]) <= set(report.DHCP_TIMELINE_KINDS)
    assert len(report.dhcp_table(run.dhcp)) <= report.MAX_DHCP_ROWS
