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
    with pytest.raises(ValueError, match="port"):
        scripts.embedded_chain_script(port=port)


def _commands(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("#", ":"))]


def test_embedded_script_follows_carbides_contract() -> None:
    text = scripts.embedded_chain_script(port=18080, retries=4, delay_s=2)
    cmds = _commands(text)
    assert text.startswith("#!ipxe\n") and "@" not in text.replace("carbide-sandbox", "")
    assert cmds[0].startswith("echo carbide-sandbox:")  # the banner first
    assert "ifconf -c dhcp && goto dhcp_ok ||" in cmds
    assert "iseq ${dhcp_tries} 4 && goto dhcp_failed ||" in cmds
    # after DHCP, only 43.70 decides: isset, else the error path
    after_dhcp = cmds[cmds.index("echo carbide-sandbox: DHCP ok: address ${ip} next-server ${next-server}") + 1:]
    assert after_dhcp[0] == "isset ${43.70} || goto no_uuid"
    url = scripts.embedded_chain_url_template(18080)
    assert url == ("http://${next-server}:18080/api/v0/pxe/boot?uuid=${43.70}&buildarch=${buildarch}"
                   "&platform=${platform}&manufacturer=${manufacturer}&product=${product}&serial=${serial}")
    assert f"chain {url} && goto chained ||" in cmds
    assert "iseq ${chain_tries} 4 && goto chain_failed ||" in cmds
    # the error path: the exact line first, then the prompt, then exit 1
    lines = text.splitlines()
    at = lines.index(":no_uuid")
    assert lines[at + 1] == f"echo {scripts.NO_UUID_LINE}"
    assert lines[at + 2].startswith("prompt --key p --timeout 4000 Hit the p key to continue...")
    assert lines[at + 3] == "exit 1"
    assert scripts.NO_UUID_LINE == ("carbide-sandbox: no DHCP option 43.70 (machine uuid): the chain to "
                                    "carbide-pxe cannot fire")
    labels = set(re.findall(r"^:(\S+)$", text, re.M))
    for target in re.findall(r"goto (\S+)", text):
        assert target in labels, target
    # chain is reached only through the isset line: no other chain, no uuid without 43.70
    assert [c for c in cmds if c.startswith("chain ")] == [f"chain {url} && goto chained ||"]
    assert "${uuid}" not in text


def test_user_mode_script_never_waits_for_43_70() -> None:
    assert "43.70" not in "\n".join(_commands(scripts.chain_script()))


def test_embedded_script_as_ipxe_inspect_reads_it() -> None:
    from runbook_lib import ipxe_inspect

    text = scripts.embedded_chain_script()
    assert ipxe_inspect.chain_urls(text) == [scripts.embedded_chain_url_template()]
    blob = b"MZ" + b"\0" * 64 + text.encode() + b"\0" * 8 + b"#!ipxe\0"
    e = ipxe_inspect.inspect_bytes(blob)
    assert e.state == "embedded" and e.needs_43_70 is True and e.script == text


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


def test_embedded_messages_fit_seabios_80_columns() -> None:
    """SeaBIOS's serial console wraps at 80 columns (seen at d7e58c5a): messages stay inside,
    except the chain URL and the fixed no-43.70 line (89 characters; match its first 80)."""
    values = {"${version}": "0.1.0+ipxe-d7e58c5a", "${platform}": "pcbios", "${buildarch}": "i386",
              "${ip}": "192.168.240.100", "${next-server}": "192.168.240.1", "${dhcp_tries}": "5",
              "${chain_tries}": "5", "${43.70}": "0f0c9e4e-3c1a-4c5e-9a57-0d0f2c8b6a11"}
    text = scripts.embedded_chain_script()
    for line in text.splitlines():
        if not line.startswith("echo ") or line == f"echo {scripts.NO_UUID_LINE}" or "/api/v0/pxe/boot" in line:
            continue
        shown = line[5:]
        for k, v in values.items():
            shown = shown.replace(k, v)
        assert len(shown) <= 80, shown
    assert len(scripts.NO_UUID_LINE[:80]) == 80 and scripts.NO_UUID_LINE.startswith(
        "carbide-sandbox: no DHCP option 43.70")
