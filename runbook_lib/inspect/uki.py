"""Unified kernel images (``carbide.efi``, ``scout.efi``): a systemd-stub PE with the kernel
(``.linux``), the initrd (``.initrd``), the command line (``.cmdline``), the os-release of the
image (``.osrel``) and, when the builder added it, ``uname -r`` (``.uname``).

The kernel release comes from ``.uname`` when present, else from the bzImage header of
``.linux`` (:mod:`.kernel`). The initrd is read as a cpio stream (:mod:`.cpio`).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from . import cpio, kernel, pe

TEXT_LIMIT = 64 * 1024


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", errors="replace").strip()


def os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines of an os-release file (quotes removed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
        except ValueError:
            parts = [value.strip("\"'")]
        out[key.strip()] = " ".join(parts)
    return out


def is_uki(image: pe.PeImage) -> bool:
    return image.section(".linux") is not None


def facts(path: Path, image: pe.PeImage | None = None, read_initrd: bool = True) -> dict[str, object]:
    """What the UKI at `path` boots: sections, cmdline, os-release, kernel release, initrd."""
    with open(path, "rb") as fh:
        image = image or pe.read_headers(fh)
        out: dict[str, object] = {
            "machine": image.machine_name,
            "sections": [s.to_dict() for s in image.sections],
        }
        sec = image.section(".cmdline")
        out["cmdline"] = _text(pe.section_bytes(fh, sec, TEXT_LIMIT)) if sec else None
        sec = image.section(".osrel")
        rel = os_release(_text(pe.section_bytes(fh, sec, TEXT_LIMIT))) if sec else {}
        out["osrel_pretty_name"] = rel.get("PRETTY_NAME")
        out["osrel"] = {k: rel[k] for k in ("ID", "VERSION_ID", "VERSION_CODENAME", "IMAGE_ID",
                                            "IMAGE_VERSION") if k in rel}
        sec = image.section(".uname")
        uname = _text(pe.section_bytes(fh, sec, 256)) if sec else None
        linux = image.section(".linux")
        out["linux_size"] = linux.size if linux else None
        head = kernel.header_facts(pe.section_bytes(fh, linux, kernel.SETUP_READ)) if linux else None
        out["kernel_version_string"] = head.get("kernel_version_string") if head else None
        if uname:
            out["kernel_release"], out["kernel_release_from"] = uname, ".uname"
        elif head and head.get("kernel_release"):
            out["kernel_release"], out["kernel_release_from"] = head["kernel_release"], ".linux header"
        else:
            out["kernel_release"], out["kernel_release_from"] = None, None
        initrd = image.section(".initrd")
        out["initrd_size"] = initrd.size if initrd else None
    if initrd is not None and read_initrd:
        try:
            out["initrd"] = cpio.facts_of(path, initrd.raw_offset, initrd.file_size).to_dict()
        except (cpio.CpioError, OSError) as exc:
            out["initrd"] = {"error": str(exc)}
    return out
