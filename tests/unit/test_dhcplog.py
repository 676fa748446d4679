"""dnsmasq --log-dhcp logs as events, on real recordings (tests/fixtures/dnsmasq) and edge cases.

The fixtures are our own recordings: carbide's real iPXE (embedded script) booted by OVMF
against dnsmasq in a network namespace, with and without option 43.70 (carbide_*: plain
dnsmasq lines), and the test network's own logs (testnet_*: stamped, with the VM-start
marker), UEFI native PXE and UEFI HTTP boot.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.boot.dhcplog import (CLOCK_MARKER, DhcpEvent, decode_vendor_encap,
                                      parse_dnsmasq_log, with_clock)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "dnsmasq"
UUID = "6a3f6f0e-8c1b-4d6e-9b7a-2f4c1e5d8a90"


def events(name: str, known: tuple[str, ...] = (UUID,)) -> list[DhcpEvent]:
    return parse_dnsmasq_log((FIX / name).read_text().splitlines(), known_uuids=known)


def acks(evs: list[DhcpEvent]) -> list[DhcpEvent]:
    return [e for e in evs if e.kind == "DHCPACK"]


def test_uefi_pxe_with_43_70_firmware_then_ipxe() -> None:
    evs = events("carbide_uefi_pxe_43_70.log")
    kinds = [e.kind for e in evs if e.kind != "tftp"]
    assert kinds[:4] == ["DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK"]
    firmware, ipxe = acks(evs)[0], acks(evs)[1]
    assert firmware.vendor_class.startswith("PXEClient:Arch:00007") and firmware.user_class == ""
    assert firmware.arch == "7" and firmware.arch_name == "x86-64 UEFI" and not firmware.ipxe
    assert firmware.ip == "192.168.77.100" and firmware.mac == "52:54:00:c4:7b:01"
    assert firmware.bootfile == "ipxe.efi" and firmware.next_server == "192.168.77.1"
    assert ipxe.user_class == "iPXE" and ipxe.ipxe
    assert ipxe.opt43_70 == UUID and ipxe.opt43_70_complete
    assert ipxe.summary() == ("DHCPACK 192.168.77.100 to 52:54:00:c4:7b:01 (iPXE, PXEClient:Arch:00007) "
                              f"bootfile ipxe.efi, 43.70 = {UUID}")
    # no stamps in a plain dnsmasq log
    assert all(e.seconds is None for e in evs)


def test_a_cut_off_uuid_stays_marked_without_known_uuids() -> None:
    ack = acks(events("carbide_uefi_pxe_43_70.log", known=()))[1]
    # dnsmasq shows 14 bytes of option 43: sub-option 70, its length 36, and 12 characters
    assert ack.opt43_70 == UUID[:12] and not ack.opt43_70_complete
    assert ack.summary().endswith(f"43.70 = {UUID[:12]}...")
    other = acks(events("carbide_uefi_pxe_43_70.log", known=("ffffffff-0000",)))[1]
    assert other.opt43_70 == UUID[:12] and not other.opt43_70_complete


def test_tftp_lines() -> None:
    tftp = [e for e in events("carbide_uefi_pxe_43_70.log") if e.kind == "tftp"]
    assert [e.detail for e in tftp] == ["error 8 User aborted the transfer", "sent", "sent", "not found"]
    assert tftp[1].summary() == "TFTP sent ipxe.efi to 192.168.77.100"
    assert tftp[3].summary() == "TFTP not found: autoexec.ipxe for 192.168.77.100"
    assert tftp[0].summary() == "TFTP error 8 User aborted the transfer from 192.168.77.100"


def test_without_43_70_no_ack_carries_it() -> None:
    evs = events("carbide_uefi_no_43_70.log")
    replies = [e for e in evs if e.is_reply]
    assert replies and all(e.opt43_70 is None for e in replies)
    ipxe_acks = [e for e in acks(evs) if e.ipxe]
    assert ipxe_acks and ipxe_acks[0].summary().endswith("43.70 not sent")
    # then OVMF falls through to HTTP boot (vendor class HTTPClient, arch 16)
    http = [e for e in evs if e.vendor_class.startswith("HTTPClient")]
    assert http and http[0].arch == "16" and http[0].arch_name == "x86-64 UEFI HTTP"


def test_testnet_log_times_are_relative_to_the_vm_start_marker() -> None:
    lines = (FIX / "testnet_uefi_pxe.log").read_text().splitlines()
    assert any(CLOCK_MARKER in ln for ln in lines)
    evs = parse_dnsmasq_log(lines, known_uuids=[UUID])
    first = evs[0]
    assert first.kind == "DHCPDISCOVER" and first.seconds == pytest.approx(7.770, abs=0.01)
    assert first.tags == ("efi", "carbide0")
    ipxe = [e for e in acks(evs) if e.ipxe]
    assert ipxe[0].opt43_70 == UUID and ipxe[0].tags == ("ipxe", "efi", "carbide0")
    assert ipxe[0].bootfile == "ipxe.efi" and ipxe[0].next_server == "192.168.240.1"
    # the same log without the marker: seconds since dnsmasq started
    raw = parse_dnsmasq_log([ln for ln in lines if CLOCK_MARKER not in ln])
    assert raw[0].seconds is not None and raw[0].seconds > first.seconds


def test_testnet_http_boot_log() -> None:
    evs = events("testnet_uefi_http_boot.log")
    pxe_offers = [e for e in evs if e.kind == "DHCPOFFER" and e.vendor_class.startswith("PXEClient")
                  and not e.ipxe]
    assert len(pxe_offers) == 4 and all(e.bootfile == "" for e in pxe_offers)
    assert pxe_offers[0].summary().endswith("no bootfile, 43.70 not sent")
    http_ack = next(e for e in acks(evs) if e.vendor_class.startswith("HTTPClient"))
    assert http_ack.bootfile == "http://192.168.240.1:8080/public/blobs/internal/x86_64/ipxe.efi"
    assert http_ack.sent_vendor_class == "HTTPClient"  # logged as hex, shown as text
    assert "option 60 HTTPClient" in http_ack.summary()
    assert "httpclient" in http_ack.tags
    ipxe_ack = next(e for e in acks(evs) if e.ipxe)
    assert ipxe_ack.opt43_70 == UUID and ipxe_ack.seconds > http_ack.seconds


SYNTHETIC = """\
$ ip netns exec crbtn-1-abcd dnsmasq --keep-in-foreground
Jan  2 03:04:05 host dnsmasq-dhcp[77]: 17 vendor class: PXEClient:Arch:00000:UNDI:002001
Jan  2 03:04:05 host dnsmasq-dhcp[77]: 17 user class: iPXE
Jan  2 03:04:05 host dnsmasq-dhcp[77]: 17 DHCPREQUEST(carbide0) 192.168.240.33 52:54:00:AA:BB:CC
Jan  2 03:04:05 host dnsmasq-dhcp[77]: 17 tags: ipxe, bios, carbide0
Jan  2 03:04:05 host dnsmasq-dhcp[77]: 17 DHCPNAK(carbide0) 192.168.240.33 52:54:00:aa:bb:cc wrong network
[   3.5] dnsmasq-dhcp: 18 DHCPDISCOVER(carbide0) 52:54:00:aa:bb:cc no address available
[   4.25] dnsmasq-tftp[77]: failed sending /srv/ipxe.kpxe to 192.168.240.33
[   4.5] dnsmasq-tftp: file /srv/nothing not found
dnsmasq-dhcp: 19 sent size:  4 option:  1 netmask  255.255.255.0
not dnsmasq at all
"""


def test_other_formats_nak_and_odd_lines() -> None:
    evs = parse_dnsmasq_log(SYNTHETIC.splitlines())
    req, nak, disc, failed, missing = evs
    assert req.kind == "DHCPREQUEST" and req.mac == "52:54:00:aa:bb:cc" and req.ip == "192.168.240.33"
    assert req.arch == "0" and req.arch_name == "BIOS" and req.ipxe and req.interface == "carbide0"
    assert nak.kind == "DHCPNAK" and nak.detail == "wrong network" and nak.tags == ("ipxe", "bios", "carbide0")
    assert nak.summary() == ("DHCPNAK 192.168.240.33 to 52:54:00:aa:bb:cc (iPXE, PXEClient:Arch:00000): "
                             "wrong network")
    assert disc.seconds == 3.5 and disc.detail == "no address available" and disc.vendor_class == ""
    assert disc.summary() == "DHCPDISCOVER from 52:54:00:aa:bb:cc"
    assert failed.detail == "failed" and failed.seconds == 4.25 and failed.ip == "192.168.240.33"
    assert missing.detail == "not found" and missing.ip == "" and missing.summary() == "TFTP not found: nothing"


def test_vendor_encap_decoding() -> None:
    full = "46:03:61:62:63:01:01:07:ff"
    assert decode_vendor_encap(full) == {70: (b"abc", 3), 1: (b"\x07", 1)}
    assert decode_vendor_encap("46:24:36:61...") == {70: (b"6a", 36)}
    assert decode_vendor_encap("zz:01") == {}
    assert decode_vendor_encap("01:02:03:04:46") == {1: (b"\x03\x04", 2), 70: (b"", -1)}


def test_with_clock_and_to_dict() -> None:
    ev = DhcpEvent(seconds=10.0, xid="1", kind="DHCPACK", ip="1.2.3.4", mac="m", tags=("a",))
    assert with_clock([ev], 4.0)[0].seconds == 6.0 and ev.seconds == 10.0
    d = ev.to_dict()
    assert d["tags"] == ["a"] and d["summary"].startswith("DHCPACK 1.2.3.4 to m") and d["opt43_70"] is None


def test_every_fixture_parses_with_replies_after_requests() -> None:
    for path in sorted(FIX.glob("*.log")):
        evs = parse_dnsmasq_log(path.read_text().splitlines(), known_uuids=[UUID])
        assert evs, path.name
        seen: set[str] = set()
        for e in evs:
            if e.kind in ("DHCPDISCOVER", "DHCPREQUEST"):
                seen.add(e.xid)
            elif e.is_reply:
                assert e.xid in seen, (path.name, e.text)
                assert e.mac, (path.name, e.text)
