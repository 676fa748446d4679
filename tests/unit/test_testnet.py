"""The test network without root: dnsmasq's command line, the config's checks, pre-flight rows,
the privilege check and which namespaces count as stale. (The real network: tests/integration.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runbook_lib.boot import testnet as tnet
from runbook_lib.boot.testnet import (TestNet, TestNetConfig, TestNetError, dnsmasq_argv,
                                      option43_hex, privileges_problem)

UUID = "6a3f6f0e-8c1b-4d6e-9b7a-2f4c1e5d8a90"


def cfg(tmp_path: Path, **kw) -> TestNetConfig:
    return TestNetConfig(artifacts=tmp_path / "art", log_dir=tmp_path / "log", **kw)


def opts(argv: list[str], name: str) -> list[str]:
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]


def test_option43_hex_is_sub_option_70_with_length() -> None:
    assert option43_hex("ab") == "46:02:61:62"
    h = option43_hex(UUID)
    assert h.startswith("46:24:36:61:33") and len(h.split(":")) == 2 + 36
    with pytest.raises(ValueError):
        option43_hex("x" * 256)


def test_dnsmasq_argv_carbide_dhcp_contract(tmp_path: Path) -> None:
    c = cfg(tmp_path, machine_uuid=UUID)
    argv = dnsmasq_argv(c, c.log_dir)
    assert argv[0] == "dnsmasq"
    for flag in ("--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--bind-interfaces",
                 "--interface=carbide0", "--log-dhcp", "--log-facility=-", "--enable-tftp",
                 "--dhcp-authoritative", "--no-ping"):
        assert flag in argv
    assert opts(argv, "tftp-root") == [str(tmp_path / "art")]
    assert opts(argv, "dhcp-range") == ["192.168.240.10,192.168.240.100,255.255.255.0,1h"]
    assert opts(argv, "dhcp-leasefile") == [str(tmp_path / "log" / "dnsmasq.leases")]
    assert opts(argv, "pid-file") == [str(tmp_path / "log" / "dnsmasq.pid")]
    # who is who
    assert set(opts(argv, "dhcp-match")) >= {"set:ipxe,175", "set:bios,option:client-arch,0",
                                              "set:efi,option:client-arch,7", "set:efi,option:client-arch,9",
                                              "set:httpclient,option:client-arch,16"}
    assert opts(argv, "dhcp-userclass") == ["set:ipxe,iPXE"]
    assert opts(argv, "dhcp-vendorclass") == ["set:httpclient,HTTPClient"]
    # first stage: BIOS -> ipxe.kpxe whatever the user class (no tag:!ipxe), HTTP boot last (wins)
    boots = opts(argv, "dhcp-boot")
    assert boots == ["tag:bios,ipxe.kpxe,,192.168.240.1",
                     "tag:efi,tag:!httpclient,ipxe.efi,,192.168.240.1",
                     "tag:httpclient,http://192.168.240.1:8080/public/blobs/internal/x86_64/ipxe.efi"]
    forced = opts(argv, "dhcp-option-force")
    assert "tag:httpclient,60,HTTPClient" in forced
    assert f"tag:ipxe,43,{option43_hex(UUID)}" in forced


def test_withheld_uuid_and_http_only_uefi(tmp_path: Path) -> None:
    c = cfg(tmp_path, machine_uuid=None, uefi_boot="http", port=9090, bridge_ip="10.77.0.1",
            prefix_len=16, dhcp_range=("10.77.1.1", "10.77.1.9"))
    argv = dnsmasq_argv(c, tmp_path / "elsewhere")
    assert not [a for a in opts(argv, "dhcp-option-force") if ",43," in a]
    boots = opts(argv, "dhcp-boot")
    assert not [b for b in boots if "ipxe.efi,," in b]  # UEFI PXE clients get no boot file
    assert boots[-1] == "tag:httpclient,http://10.77.0.1:9090/public/blobs/internal/x86_64/ipxe.efi"
    assert boots[0] == "tag:bios,ipxe.kpxe,,10.77.0.1"
    assert opts(argv, "dhcp-range") == ["10.77.1.1,10.77.1.9,255.255.0.0,1h"]
    assert opts(argv, "pid-file") == [str(tmp_path / "elsewhere" / "dnsmasq.pid")]


def test_aarch64_codes(tmp_path: Path) -> None:
    argv = dnsmasq_argv(cfg(tmp_path, arch="aarch64"), tmp_path)
    assert "set:efi,option:client-arch,11" in opts(argv, "dhcp-match")
    assert "set:httpclient,option:client-arch,19" in opts(argv, "dhcp-match")
    assert any("/internal/aarch64/ipxe.efi" in b for b in opts(argv, "dhcp-boot"))


@pytest.mark.parametrize("kw, match", [
    ({"uefi_boot": "tftp"}, "uefi_boot"),
    ({"arch": "riscv64"}, "arch"),
    ({"bridge_ip": "10.0.0.1"}, "not in"),
    ({"dhcp_range": ("192.168.240.10", "192.168.241.5")}, "not in"),
    ({"machine_uuid": "has space"}, "printable"),
    ({"machine_uuid": "x\n"}, "printable"),
    ({"port": 0}, "port"),
])
def test_config_is_checked(tmp_path: Path, kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cfg(tmp_path, **kw)


def test_names_exec_argv_and_describe(tmp_path: Path) -> None:
    a, b = TestNet(cfg(tmp_path, machine_uuid=UUID)), TestNet(cfg(tmp_path))
    assert a.name != b.name
    assert a.name.startswith(f"crbtn-{os.getpid()}-") and len(a.name.rsplit("-", 1)[1]) == 4
    assert a.exec_argv(["qemu-system-x86_64", "-m", "1"]) == ["ip", "netns", "exec", a.name,
                                                               "qemu-system-x86_64", "-m", "1"]
    rows = dict(a.describe())
    assert list(rows) == ["namespace", "bridge", "DHCP range", "option 43.70", "first stage",
                          "TFTP root", "stand-in"]
    assert rows["option 43.70"] == UUID and "192.168.240.1/24" in rows["bridge"]
    assert "ipxe.kpxe" in rows["first stage"] and "ipxe.efi over TFTP" in rows["first stage"]
    assert rows["stand-in"].startswith("http://192.168.240.1:8080")
    assert dict(b.describe())["option 43.70"].startswith("withheld")
    http = dict(TestNet(cfg(tmp_path, uefi_boot="http")).describe())["first stage"]
    assert "no boot file" in http and "http://192.168.240.1:8080/public/blobs/internal/x86_64/ipxe.efi" in http


def test_privileges_problem_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tnet.os, "geteuid", lambda: 1000)
    cause, fix = privileges_problem()  # type: ignore[misc]
    assert "root" in cause and fix == "run as root: sudo .venv/bin/runbook boot -p network testnet"
    monkeypatch.setattr(tnet.os, "geteuid", lambda: 0)
    monkeypatch.setattr(tnet.shutil, "which", lambda name: None if name == "dnsmasq" else "/bin/" + name)
    cause, fix = privileges_problem()  # type: ignore[misc]
    assert "dnsmasq" in cause and fix == "apt-get install dnsmasq-base"
    monkeypatch.setattr(tnet.shutil, "which", lambda name: None)
    assert privileges_problem()[1] == "apt-get install iproute2 dnsmasq-base"  # type: ignore[index]
    monkeypatch.setattr(tnet.shutil, "which", lambda name: "/bin/" + name)
    assert privileges_problem() is None


def test_start_without_root_is_an_error_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tnet.os, "geteuid", lambda: 1000)
    with pytest.raises(TestNetError) as ei:
        TestNet(cfg(tmp_path)).start()
    assert "sudo .venv/bin/runbook boot -p network testnet" in ei.value.fix


def test_cleanup_stale_only_our_dead_owners(monkeypatch: pytest.MonkeyPatch) -> None:
    alive = {os.getpid(), 4242}
    names = ["crbtn-999999-ab12", f"crbtn-{os.getpid()}-cd34", "crbtn-4242-0000", "h9b-x",
             "crbtn-77-zzzz", "other-999999-ab12", "crbtn-888888-ffff"]
    removed: list[str] = []
    monkeypatch.setattr(tnet, "list_namespaces", lambda: names)
    monkeypatch.setattr(tnet, "_pid_alive", lambda pid: pid in alive)
    monkeypatch.setattr(tnet, "_remove_namespace",
                        lambda name: removed.append(name) or ([] if name != "crbtn-888888-ffff" else ["busy"]))
    assert tnet.cleanup_stale() == ["crbtn-999999-ab12"]  # 888888 could not be removed: not reported
    assert removed == ["crbtn-999999-ab12", "crbtn-888888-ffff"]
    removed.clear()
    assert tnet.cleanup_stale("other") == ["other-999999-ab12"]


def test_stop_before_start_is_harmless(tmp_path: Path) -> None:
    tn = TestNet(cfg(tmp_path))
    tn.stop()
    tn.stop()
    assert tn.leftovers == [] and tn.dhcp_events() == []


def test_live_events_are_relative_to_the_vm_start_and_complete_the_uuid(tmp_path: Path) -> None:
    """dhcp_events() from the lines dnsmasq printed so far (fed here as the pump would)."""
    import time

    tn = TestNet(cfg(tmp_path, machine_uuid=UUID))
    lines = (Path(__file__).resolve().parent.parent / "fixtures" / "dnsmasq" /
             "carbide_uefi_pxe_43_70.log").read_text().splitlines()
    t0 = time.monotonic()
    for ln in lines:
        tn._on_line(ln)
    tn.reset_clock(t0 - 5.0)  # the VM started 5 s before these lines arrived
    evs = tn.dhcp_events()
    assert evs and all(e.seconds is not None and 4.9 < e.seconds < 10 for e in evs)
    ipxe = [e for e in evs if e.kind == "DHCPACK" and e.ipxe]
    assert ipxe and ipxe[0].opt43_70 == UUID and ipxe[0].opt43_70_complete  # dnsmasq showed 12 chars
    assert tn._ready.is_set()  # "TFTP root is" was among the lines
