"""The iPXE scripts and the kernel command line of the sandbox.

Templates live in the shipped pxe tree (``tree/pxe``) and use ``@NAME@``
placeholders, because iPXE's own ``${...}`` syntax must pass through untouched.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

DEFAULT_PORT = 8080
DEFAULT_RETRIES = 5
DEFAULT_DELAY_S = 3
KERNEL_CMDLINE = "console=tty0 console=ttyS0,115200"
CHAIN_PATH = "/api/v0/pxe/boot"

_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


def tree_root() -> Path:
    """The shipped pxe tree (package data)."""
    return Path(str(resources.files("runbook_lib.sandbox") / "tree" / "pxe"))


def render(template: str, values: dict[str, str]) -> str:
    """Replace every ``@NAME@``; a placeholder without a value is a bug, so it raises."""
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"template placeholder @{key}@ has no value")
        return values[key]
    return _PLACEHOLDER.sub(sub, template)


# The first line the embedded script prints when DHCP gave no option 43.70 (boot analysis names it).
NO_UUID_LINE = "carbide-sandbox: no DHCP option 43.70 (machine uuid): the chain to carbide-pxe cannot fire"


def chain_url_template(port: int = DEFAULT_PORT) -> str:
    """The URL the user-mode chain script (autoexec.ipxe) requests, iPXE's variables unexpanded."""
    return f"http://${{next-server}}:{port}{CHAIN_PATH}?uuid=${{uuid}}&buildarch=${{buildarch}}"


def embedded_chain_url_template(port: int = DEFAULT_PORT) -> str:
    """The URL the embedded script requests, as carbide's does: the uuid comes from option 43.70."""
    return (f"http://${{next-server}}:{port}{CHAIN_PATH}?uuid=${{43.70}}&buildarch=${{buildarch}}"
            "&platform=${platform}&manufacturer=${manufacturer}&product=${product}&serial=${serial}")


def _script(name: str, port: int, retries: int, delay_s: int) -> str:
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1..65535")
    if retries < 1 or delay_s < 0:
        raise ValueError("retries must be >= 1 and delay_s >= 0")
    text = (tree_root() / "ipxe" / name).read_text()
    return render(text, {"PORT": str(port), "RETRIES": str(retries), "DELAY": str(delay_s)})


def chain_script(port: int = DEFAULT_PORT, retries: int = DEFAULT_RETRIES,
                 delay_s: int = DEFAULT_DELAY_S) -> str:
    """The user-mode script (``autoexec.ipxe`` beside a prebuilt iPXE): DHCP, then chain, no 43.70 needed."""
    return _script("autoexec.ipxe.in", port, retries, delay_s)


def embedded_chain_script(port: int = DEFAULT_PORT, retries: int = DEFAULT_RETRIES,
                          delay_s: int = DEFAULT_DELAY_S) -> str:
    """The script compiled into a from-source iPXE: DHCP, then chain only if option 43.70 is set."""
    return _script("embed.ipxe.in", port, retries, delay_s)


def boot_script(base_url: str, uuid: str = "${uuid}", buildarch: str = "${buildarch}",
                cmdline: str = KERNEL_CMDLINE) -> str:
    """carbide-pxe's answer to ``GET /api/v0/pxe/boot``: UEFI chains the UKI, BIOS loads kernel+root.

    ``base_url`` is where the artifacts are served, e.g.
    ``http://10.0.2.2:8080/public/blobs/internal/x86_64``.
    """
    if any(c in base_url for c in " \n\r\t"):
        raise ValueError(f"base_url must not contain whitespace: {base_url!r}")
    for name, value in (("uuid", uuid), ("buildarch", buildarch), ("cmdline", cmdline)):
        if "\n" in value or "\r" in value:
            raise ValueError(f"{name} must be a single line")
    text = (tree_root() / "templates" / "boot.ipxe.in").read_text()
    return render(text, {"BASE_URL": base_url.rstrip("/"), "UUID": uuid,
                         "BUILDARCH": buildarch, "CMDLINE": cmdline})
