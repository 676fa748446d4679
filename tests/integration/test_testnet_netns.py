"""The test network for real: namespace, bridge carbide0, tap0, dnsmasq as carbide-dhcp, the
stand-in listening inside the namespace, and a real DHCP client (busybox udhcpc) on a veth pair
to the bridge, from a second namespace, sending what each kind of boot client sends.

Needs root, `ip` (iproute2), dnsmasq (dnsmasq-base) and busybox (Debian package `busybox`,
a test-only dependency): skipped without them locally, a failure under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from runbook_lib import shell
from runbook_lib.boot import testnet as tnet
from runbook_lib.boot.standin import UNKNOWN_UUID_LINE, StandIn
from runbook_lib.boot.testnet import (BRIDGE, PREFIX, TAP, TestNet, TestNetConfig, TestNetError,
                                      namespace_exists, option43_hex)

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.needs_tool("busybox", "a real DHCP client (udhcpc): apt-get install busybox"),
              pytest.mark.needs_tool("dnsmasq", "carbide-dhcp's stand-in: apt-get install dnsmasq-base"),
              pytest.mark.needs_tool("ip", "network namespaces: apt-get install iproute2"),
              pytest.mark.usefixtures("no_leftover_processes", "needs_root")]

UUID = "6a3f6f0e-8c1b-4d6e-9b7a-2f4c1e5d8a90"
IPXE_USER_CLASS = "0x4d:69505845"  # option 77 "iPXE", as iPXE sends it
IPXE_175 = "0xaf:b10501"  # option 175 (iPXE encapsulated options), present in every iPXE request
UEFI_PXE = ["-x", "0x5d:0007", "-V", "PXEClient:Arch:00007:UNDI:003000"]
UEFI_IPXE = ["-x", "0x5d:0007", "-V", "PXEClient:Arch:00007:UNDI:003010", "-x", IPXE_USER_CLASS, "-x", IPXE_175]
BIOS_IPXE_ROM = ["-x", "0x5d:0000", "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", IPXE_USER_CLASS, "-x", IPXE_175]
UEFI_HTTP = ["-x", "0x5d:0010", "-V", "HTTPClient:Arch:00016:UNDI:003000"]
DUMP_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
env | grep -E '^(ip|siaddr|boot_file|opt43|vendor|serverid|router)=' > "$UDHCPC_OUT"
"""


@pytest.fixture
def art(tmp_path: Path) -> Path:
    d = tmp_path / "art"
    d.mkdir()
    (d / "ipxe.efi").write_bytes(b"MZ" + b"\0" * 1000)
    (d / "ipxe.kpxe").write_bytes(b"\0" * 500)
    return d


def config(tmp_path: Path, art: Path, **kw) -> TestNetConfig:
    return TestNetConfig(artifacts=art, log_dir=tmp_path / "log", **kw)


@contextlib.contextmanager
def up(cfg: TestNetConfig) -> Iterator[TestNet]:
    tn = TestNet(cfg)
    try:
        yield tn.start()
    finally:
        tn.stop()
        assert not namespace_exists(tn.name)


def ip(*argv: str) -> shell.RunResult:
    rr = shell.run(["ip", *argv], timeout=15)
    assert rr.ok, rr.tail_text()
    return rr


@contextlib.contextmanager
def client(tn: TestNet) -> Iterator[str]:
    """A second namespace (a 'machine') with vc0, whose veth peer is a port of carbide0."""
    name = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(2)}"
    ip("netns", "add", name)
    try:
        ip("-n", tn.name, "link", "add", "vb0", "type", "veth", "peer", "name", "vc0")
        ip("-n", tn.name, "link", "set", "vb0", "master", BRIDGE)
        ip("-n", tn.name, "link", "set", "vb0", "up")
        ip("-n", tn.name, "link", "set", "vc0", "netns", name)
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "link", "set", "vc0", "up")
        yield name
    finally:
        shell.run(["ip", "netns", "del", name], timeout=15)


def udhcpc(ns: str, tmp_path: Path, args: list[str], tries: int = 4) -> dict[str, str] | None:
    """One real DHCP exchange from namespace `ns`: what the client was given, or None (no lease)."""
    script = tmp_path / "udhcpc.sh"
    script.write_text(DUMP_SCRIPT)
    script.chmod(0o755)
    out = tmp_path / f"lease-{secrets.token_hex(3)}.env"
    rr = shell.run(["ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", "vc0", "-f", "-q", "-n", "-B",
                    "-t", str(tries), "-T", "1", "-A", "1", "-s", str(script), "-O", "43", "-O", "60",
                    *args], timeout=30, env={"UDHCPC_OUT": str(out)})
    if not rr.ok:
        return None
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return env


def last_ack(tn: TestNet, vendor_prefix: str):
    acks = [e for e in tn.dhcp_events() if e.kind == "DHCPACK" and e.vendor_class.startswith(vendor_prefix)]
    assert acks, [e.summary() for e in tn.dhcp_events()]
    return acks[-1]


def test_up_and_down_leaves_nothing(tmp_path: Path, art: Path) -> None:
    with up(config(tmp_path, art, machine_uuid=UUID)) as tn:
        assert tn.name.startswith(f"{PREFIX}-{os.getpid()}-") and namespace_exists(tn.name)
        links = ip("-n", tn.name, "-d", "link", "show").tail_text(100)
        assert f"{BRIDGE}:" in links and "bridge" in links
        tap = ip("-n", tn.name, "-d", "link", "show", TAP).tail_text()
        assert f"master {BRIDGE}" in tap and "tun type tap" in tap and "persist" not in tap.split("tun")[0]
        addr = ip("-n", tn.name, "-4", "addr", "show", BRIDGE).tail_text()
        assert "inet 192.168.240.1/24" in addr
        pid = tn.dnsmasq_pid
        assert pid is not None and tn.dhcp_running
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "dnsmasq"
        assert pid in tnet._netns_pids(tn.name)
        assert (tmp_path / "log" / "dnsmasq.log").read_text().count("TFTP root is") == 1
        assert (tmp_path / "log" / "dnsmasq.pid").read_text().strip() == str(pid)
        assert tn.setup_s is not None and tn.setup_s < 10
    assert not tn.dhcp_running and not Path(f"/proc/{pid}").exists()
    assert tn.leftovers == []
    assert TAP not in ip("link", "show").tail_text(1000).split()  # the tap went with the namespace
    tn.stop()  # idempotent


@pytest.mark.parametrize("uuid", [UUID, None], ids=["43.70", "withheld"])
def test_ipxe_client_gets_43_70_only_when_set(tmp_path: Path, art: Path, uuid: str | None) -> None:
    with up(config(tmp_path, art, machine_uuid=uuid)) as tn, client(tn) as ns:
        lease = udhcpc(ns, tmp_path, UEFI_IPXE)
        assert lease is not None, tn.log_path.read_text()[-3000:]
        assert lease["ip"].startswith("192.168.240.") and lease["siaddr"] == "192.168.240.1"
        assert lease["boot_file"] == "ipxe.efi"
        ack = last_ack(tn, "PXEClient:Arch:00007")
        assert ack.ipxe and "ipxe" in ack.tags and ack.ip == lease["ip"] and ack.next_server == "192.168.240.1"
        if uuid:
            assert lease["opt43"] == option43_hex(uuid).replace(":", "")  # the client got all 38 bytes
            assert ack.opt43_70 == uuid and ack.opt43_70_complete
            assert ack.summary().endswith(f"43.70 = {uuid}")
        else:
            assert "opt43" not in lease
            assert ack.opt43_70 is None and ack.summary().endswith("43.70 not sent")


def test_first_stage_by_client_kind(tmp_path: Path, art: Path) -> None:
    with up(config(tmp_path, art, machine_uuid=UUID)) as tn, client(tn) as ns:
        fw = udhcpc(ns, tmp_path, UEFI_PXE)  # OVMF's own PXE: ipxe.efi, no 43.70 (not iPXE)
        assert fw and fw["boot_file"] == "ipxe.efi" and "opt43" not in fw
        rom = udhcpc(ns, tmp_path, BIOS_IPXE_ROM)  # SeaBIOS + QEMU's iPXE ROM: ipxe.kpxe all the same
        assert rom and rom["boot_file"] == "ipxe.kpxe" and rom["opt43"] == option43_hex(UUID).replace(":", "")
        http = udhcpc(ns, tmp_path, UEFI_HTTP)  # OVMF HTTP boot: URL + option 60 HTTPClient
        assert http and http["boot_file"] == "http://192.168.240.1:8080/public/blobs/internal/x86_64/ipxe.efi"
        assert http["vendor"] == "HTTPClient" and "opt43" not in http
        assert "option 60 HTTPClient" in last_ack(tn, "HTTPClient").summary()
        assert last_ack(tn, "PXEClient:Arch:00000").bootfile == "ipxe.kpxe"


def test_uefi_http_mode_gives_pxe_clients_no_boot_file(tmp_path: Path, art: Path) -> None:
    with up(config(tmp_path, art, machine_uuid=UUID, uefi_boot="http", port=8081)) as tn, client(tn) as ns:
        fw = udhcpc(ns, tmp_path, UEFI_PXE)
        assert fw is not None and "boot_file" not in fw
        http = udhcpc(ns, tmp_path, UEFI_HTTP)
        assert http and http["boot_file"] == "http://192.168.240.1:8081/public/blobs/internal/x86_64/ipxe.efi"
        ipxe = udhcpc(ns, tmp_path, UEFI_IPXE)  # iPXE loaded over HTTP still gets 43.70
        assert ipxe and ipxe["opt43"] == option43_hex(UUID).replace(":", "")


def test_stop_dhcp_means_no_offer(tmp_path: Path, art: Path) -> None:
    with up(config(tmp_path, art, machine_uuid=UUID)) as tn, client(tn) as ns:
        tn.stop_dhcp()
        assert not tn.dhcp_running and namespace_exists(tn.name)
        assert udhcpc(ns, tmp_path, UEFI_IPXE, tries=2) is None
        assert [e for e in tn.dhcp_events() if e.kind == "DHCPOFFER"] == []


def test_stale_namespace_of_a_dead_run_is_removed_by_the_next_start(tmp_path: Path, art: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{PREFIX}-{dead.pid}-beef"
    ip("netns", "add", stale)
    ip("-n", stale, "link", "add", BRIDGE, "type", "bridge")
    squatter = shell.spawn(["ip", "netns", "exec", stale, "sleep", "300"])  # what a killed run left
    try:
        assert stale in tnet.list_namespaces()
        with up(config(tmp_path, art)) as tn:
            assert stale in tn.stale_removed
            assert not namespace_exists(stale)
            assert squatter.poll() is not None  # killed: it ran inside the stale namespace
            assert namespace_exists(tn.name)  # ours, with a live owner, stays
    finally:
        squatter.stop(grace=1)
        if namespace_exists(stale):
            shell.run(["ip", "netns", "del", stale], timeout=15)


def test_dnsmasq_that_dies_is_an_error_with_its_words(tmp_path: Path, art: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = tnet.dnsmasq_argv
    monkeypatch.setattr(tnet, "dnsmasq_argv", lambda cfg, log_dir: real(cfg, log_dir) + ["--no-such-option"])
    tn = TestNet(config(tmp_path, art))
    with pytest.raises(TestNetError) as ei:
        tn.start()
    assert "dnsmasq exited" in ei.value.cause and ei.value.tail
    assert any("no-such-option" in ln or "bad command line" in ln for ln in ei.value.tail)
    assert not namespace_exists(tn.name) and tn.leftovers == []


def test_missing_tftp_root_is_an_error_before_anything_is_created(tmp_path: Path) -> None:
    tn = TestNet(config(tmp_path, tmp_path / "nope"))
    with pytest.raises(TestNetError, match="TFTP root"):
        tn.start()
    assert not namespace_exists(tn.name)


FETCH = ("import sys, urllib.request\n"
         "r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
         "sys.stdout.write(str(r.status) + '\\n' + r.read().decode())\n")


def fetch_in(ns: str, url: str) -> shell.RunResult:
    return shell.run(["ip", "netns", "exec", ns, sys.executable, "-c", FETCH, url], timeout=30)


def test_standin_listens_inside_the_namespace(tmp_path: Path, art: Path) -> None:
    """Two test networks at once, each with its stand-in on <bridge ip>:8080 in its own namespace."""
    with up(config(tmp_path, art, machine_uuid=UUID)) as a, \
            up(TestNetConfig(artifacts=art, log_dir=tmp_path / "log-b")) as b:
        sa = StandIn(art, host="192.168.240.1", port=8080, netns=a.name, known_uuids=frozenset({UUID}),
                     log_path=tmp_path / "a.jsonl").start()
        sb = StandIn(art, host="192.168.240.1", port=8080, netns=b.name).start()
        try:
            q = f"uuid={UUID}&buildarch=x86_64&platform=efi&manufacturer=QEMU&product=pc&serial=S1"
            rr = fetch_in(a.name, f"http://192.168.240.1:8080/api/v0/pxe/boot?{q}")
            assert rr.ok, rr.tail_text()
            assert rr.tail[0] == "200" and any("chain http://192.168.240.1:8080/public/blobs" in ln
                                               for ln in rr.tail)
            rr = fetch_in(a.name, "http://192.168.240.1:8080/api/v0/pxe/boot?uuid=nobody&buildarch=x86_64")
            assert rr.ok and any(UNKNOWN_UUID_LINE in ln for ln in rr.tail)
            rr = fetch_in(b.name, "http://192.168.240.1:8080/public/blobs/internal/x86_64/ipxe.efi")
            assert rr.ok and rr.tail[0] == "200"
            assert [r.client for r in sa.requests] == ["192.168.240.1", "192.168.240.1"]
            assert sa.requests[0].query == {"uuid": UUID, "buildarch": "x86_64", "platform": "efi",
                                            "manufacturer": "QEMU", "product": "pc", "serial": "S1"}
            assert sa.requests[1].note == "unknown machine uuid nobody"
            assert [r.path for r in sb.requests] == ["/public/blobs/internal/x86_64/ipxe.efi"]
            # the listening sockets are in the namespaces, not in the host's
            listening = ip("netns", "exec", a.name, "ss", "-ltnH").tail_text(100)
            assert "192.168.240.1:8080" in listening
            assert "192.168.240.1:8080" not in shell.run(["ss", "-ltnH"], timeout=15).tail_text(10000)
        finally:
            sa.stop()
            sb.stop()


def test_standin_in_a_missing_namespace_names_it(tmp_path: Path, art: Path) -> None:
    with pytest.raises(OSError, match="crbtn-0-0000"):
        StandIn(art, host="192.168.240.1", port=8080, netns="crbtn-0-0000").start()


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip")
def test_standin_on_an_address_the_namespace_lacks(tmp_path: Path, art: Path) -> None:
    with up(config(tmp_path, art)) as tn:
        with pytest.raises(OSError, match=f"cannot listen on 10.9.9.9:8080 in network namespace {tn.name}"):
            StandIn(art, host="10.9.9.9", port=8080, netns=tn.name).start()
