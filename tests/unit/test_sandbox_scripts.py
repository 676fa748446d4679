"""The iPXE chain script, the boot-script template, the shipped mkosi tree."""

from __future__ import annotations

import configparser
import os
import re

import pytest

from runbook_lib.sandbox import scripts


def test_chain_script_dhcp_then_carbide_url() -> None:
    text = scripts.chain_script()
    assert text.startswith("#!ipxe\n")
    assert "ifconf -c dhcp" in text
    url = "http://${next-server}:8080/api/v0/pxe/boot?uuid=${uuid}&buildarch=${buildarch}"
    assert f"set chain_url {url}" in text
    assert url == scripts.chain_url_template(8080)
    assert "chain ${chain_url}" in text
    assert "@" not in text.replace("carbide-sandbox", "")  # every placeholder rendered


def test_chain_script_retries_visibly_and_bounded() -> None:
    text = scripts.chain_script(port=18080, retries=4, delay_s=2)
    assert ":18080/api/v0/pxe/boot" in text
    # each loop counts its tries and gives up at the bound
    assert "iseq ${dhcp_tries} 4 && goto give_up" in text
    assert "iseq ${chain_tries} 4 && goto give_up" in text
    assert re.search(r"^echo .*retrying in 2 s$", text, re.M)
    assert re.search(r"^sleep 2$", text, re.M)
    # every label that is jumped to exists
    labels = set(re.findall(r"^:(\S+)$", text, re.M))
    for target in re.findall(r"goto (\S+)", text):
        assert target in labels, target


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_chain_script_rejects_bad_ports(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        scripts.chain_script(port=port)


def test_boot_script_uefi_chains_uki_bios_loads_kernel() -> None:
    base = "http://10.0.2.2:8080/public/blobs/internal/x86_64"
    text = scripts.boot_script(base + "/", uuid="u-1", buildarch="x86_64")
    assert text.startswith("#!ipxe\n")
    assert f"chain {base}/carbide.efi" in text
    assert f"kernel {base}/carbide.vmlinuz initrd=carbide.root {scripts.KERNEL_CMDLINE}" in text
    assert f"initrd {base}/carbide.root" in text
    assert "uuid=u-1 buildarch=x86_64" in text
    assert "iseq ${platform} efi" in text


def test_boot_script_refuses_injection() -> None:
    with pytest.raises(ValueError):
        scripts.boot_script("http://x/ y")
    with pytest.raises(ValueError):
        scripts.boot_script("http://x", uuid="a\nshell")


def test_render_requires_every_placeholder() -> None:
    assert scripts.render("a @X@ ${y}", {"X": "1"}) == "a 1 ${y}"
    with pytest.raises(KeyError, match="@Y@"):
        scripts.render("@Y@", {})


def test_kernel_cmdline_has_serial_console() -> None:
    assert "console=ttyS0,115200" in scripts.KERNEL_CMDLINE.split()


def test_mkosi_tree_is_a_bookworm_cpio_with_networkd_and_finalize() -> None:
    root = scripts.tree_root() / "mkosi"
    cp = configparser.ConfigParser(strict=False, allow_no_value=True, comment_prefixes=("#",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(root / "mkosi.default")
    assert cp["Distribution"]["Distribution"] == "debian"
    assert cp["Distribution"]["Release"] == "bookworm"
    assert cp["Output"]["Format"] == "cpio"
    assert cp["Output"]["CompressOutput"] == "zstd"
    assert cp["Output"]["ManifestFormat"] == "json"
    packages = cp["Content"]["Packages"].split()
    assert {"systemd", "linux-image-amd64", "udev"} <= set(packages)
    network = (root / "mkosi.extra/etc/systemd/network/80-dhcp.network").read_text()
    assert "DHCP=yes" in network
    assert (root / "mkosi.extra/etc/hostname").read_text().strip() == "carbide-sandbox"
    finalize = (root / "mkosi.finalize").read_text()
    assert "ln -sfn /usr/lib/systemd/systemd \"$BUILDROOT/init\"" in finalize
    assert "serial-getty@ttyS0.service" in finalize and "systemd-networkd.service" in finalize
    assert "depmod" in finalize
    assert os.access(root / "mkosi.finalize", os.X_OK)
