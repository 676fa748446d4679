"""QEMU argv building for every firmware/network/accel combination."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from runbook_lib.boot import qemu as vmq


def cfg(tmp_path: Path, **kw) -> vmq.VmConfig:
    base = dict(serial_path=tmp_path / "serial.raw", ovmf_vars=tmp_path / "vars.fd",
                tftp_dir=tmp_path / "tftp", uuid="11111111-2222-3333-4444-555555555555")
    base.update(kw)
    return vmq.VmConfig(**base)


def opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_uefi_user_network(tmp_path: Path) -> None:
    argv = vmq.build_argv(cfg(tmp_path))
    assert argv[0] == "qemu-system-x86_64"
    drives = opt(argv, "-drive")
    assert drives[0] == f"if=pflash,format=raw,unit=0,readonly=on,file={vmq.OVMF_CODE}"
    assert drives[1] == f"if=pflash,format=raw,unit=1,file={tmp_path / 'vars.fd'}"
    assert opt(argv, "-netdev") == [f"user,id=n0,tftp={tmp_path / 'tftp'},bootfile=ipxe.efi"]
    assert opt(argv, "-device") == ["virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile="]
    assert opt(argv, "-uuid") == ["11111111-2222-3333-4444-555555555555"]
    assert opt(argv, "-m") == ["4096"] and opt(argv, "-smp") == ["2"]
    assert opt(argv, "-serial") == [f"file:{tmp_path / 'serial.raw'}"]
    assert opt(argv, "-display") == ["none"]
    assert "-no-reboot" in argv and opt(argv, "-accel") == ["tcg,thread=multi"] and "-cpu" not in argv


def test_bios_uses_nic_rom_and_boot_url(tmp_path: Path) -> None:
    url = vmq.boot_url(8080, "abc")
    assert url == "http://10.0.2.2:8080/api/v0/pxe/boot?uuid=abc&buildarch=x86_64"
    argv = vmq.build_argv(cfg(tmp_path, firmware="bios", tftp_dir=None, bootfile=url))
    assert "-drive" not in argv
    assert opt(argv, "-machine") == ["q35,graphics=off"]
    assert opt(argv, "-netdev") == [f"user,id=n0,bootfile={url}"]
    assert "romfile=" not in opt(argv, "-device")[0]


def test_bridge_kvm_tpm_and_extra_args(tmp_path: Path) -> None:
    sock = tmp_path / "tpm" / "swtpm-sock"
    argv = vmq.build_argv(cfg(tmp_path, network="bridge", accel="kvm", tpm_socket=sock,
                              memory_mb=2048, cpus=4, mac="52:54:00:aa:bb:cc",
                              extra_args="-d guest_errors -name 'two words'"))
    assert opt(argv, "-netdev") == ["bridge,id=n0,br=carbide0"]
    assert opt(argv, "-accel") == ["kvm"] and opt(argv, "-cpu") == ["host"]
    assert opt(argv, "-chardev") == [f"socket,id=chrtpm,path={sock}"]
    assert opt(argv, "-tpmdev") == ["emulator,id=tpm0,chardev=chrtpm"]
    assert "tpm-tis,tpmdev=tpm0" in opt(argv, "-device")
    assert argv[-4:] == ["-d", "guest_errors", "-name", "two words"]  # argv items, never a shell
    assert "52:54:00:aa:bb:cc" in opt(argv, "-device")[0]


def test_commas_in_paths_are_escaped(tmp_path: Path) -> None:
    argv = vmq.build_argv(cfg(tmp_path, tftp_dir=Path("/srv/a,b")))
    assert opt(argv, "-netdev")[0].startswith("user,id=n0,tftp=/srv/a,,b,")


def test_bad_choices_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="firmware"):
        vmq.build_argv(cfg(tmp_path, firmware="coreboot"))
    with pytest.raises(ValueError, match="accel"):
        vmq.build_argv(cfg(tmp_path, accel="auto"))
    with pytest.raises(ValueError, match="OVMF vars"):
        vmq.build_argv(cfg(tmp_path, ovmf_vars=None))


def test_default_uuid_is_stable_and_not_zero() -> None:
    a = vmq.default_uuid("52:54:00:12:34:56")
    assert a == vmq.default_uuid("52:54:00:12:34:56".upper())
    assert a != vmq.default_uuid("52:54:00:12:34:57")
    assert a.replace("0", "").replace("-", "")


def test_bridge_conf_acl(tmp_path: Path) -> None:
    conf = tmp_path / "bridge.conf"
    ok, why = vmq.bridge_allowed("carbide0", conf)
    assert not ok and "does not exist" in why
    conf.write_text("# comment\nallow virbr0\n")
    ok, why = vmq.bridge_allowed("carbide0", conf)
    assert not ok and "allow carbide0" in why
    conf.write_text("allow virbr0\nallow carbide0  # dev\n")
    assert vmq.bridge_allowed("carbide0", conf)[0]


def test_swtpm_argv_matches_carbide_doc(tmp_path: Path) -> None:
    argv = vmq.swtpm_argv(tmp_path)
    assert argv[:2] == ["swtpm", "socket"]
    assert f"dir={tmp_path}" in argv and "--tpm2" in argv
    assert f"type=unixio,path={tmp_path / 'swtpm-sock'}" in argv
    assert shlex.split(shlex.join(argv)) == argv


def test_testnet_uses_the_namespace_tap_and_smbios_like_carbides_dev_vm(tmp_path: Path) -> None:
    argv = vmq.build_argv(cfg(tmp_path, network="testnet", tftp_dir=None, bootfile=""))
    assert opt(argv, "-netdev") == ["tap,id=n0,ifname=tap0,script=no,downscript=no"]
    assert opt(argv, "-device") == ["virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,romfile="]
    assert opt(argv, "-smbios") == ["type=1,manufacturer=Fedora,product=Virt-Manager,version=0.9.4,"
                                    "serial=CRB525400123456"]


def test_smbios_values_escape_commas_and_uefi_can_keep_the_nic_rom(tmp_path: Path) -> None:
    argv = vmq.build_argv(cfg(tmp_path, smbios_product="A,B", smbios_serial="S1", nic_rom=True))
    assert opt(argv, "-smbios") == ["type=1,manufacturer=Fedora,product=A,,B,version=0.9.4,serial=S1"]
    assert "romfile=" not in opt(argv, "-device")[0]
    with pytest.raises(ValueError, match="user, testnet, bridge"):
        vmq.build_argv(cfg(tmp_path, network="slirp"))
