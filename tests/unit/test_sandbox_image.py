"""Image config generation: the private drop-in, the UKI command, the staged tree."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from runbook_lib.sandbox import image, scripts
from runbook_lib.sandbox.runner import EnvironmentProblem


def _recompute(pw: str, hashed: str) -> str:
    """The hash recomputed by an independent `openssl passwd -6 -salt SALT -stdin` run."""
    salt = hashed.split("$")[2]
    out = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=pw + "\n",
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def _crypt(pw: str, salt: str) -> str | None:
    """glibc's crypt(3) through Python's crypt module, where it still exists (<= 3.12)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        return None
    return crypt.crypt(pw, salt)


@pytest.mark.parametrize("pw", ["carbide", " spaced out ", "ünïcødé-$6$-'\"\\", "x" * 200])
def test_password_is_hashed_never_plain(pw: str) -> None:
    h = image.hash_password(pw)
    assert image.SHA512_CRYPT.match(h) and h.startswith("$6$") and pw not in h
    assert _recompute(pw, h) == h
    assert _crypt(pw, h) in (h, None)  # glibc agrees: /etc/shadow accepts it
    assert image.hash_password(pw) != h  # a fresh random salt each time
    assert image.hash_password(pw, salt=h.split("$")[2]) == h
    text = image.dropin_text(h, "http://m.example/debian")
    assert f"Password={h}" in text and "PasswordIsHashed=yes" in text
    assert "Mirror=http://m.example/debian" in text
    assert "[Distribution]" not in image.dropin_text(h, None)


def test_hashing_needs_no_crypt_module(tmp_path: Path) -> None:
    """Python 3.13 has no `crypt`: hashing must not need it (simulated by blocking the import)."""
    code = ("import sys; sys.modules['crypt'] = None\n"
            "from runbook_lib.sandbox import image\n"
            "print(image.hash_password('carbide'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    h = out.stdout.strip()
    assert _recompute("carbide", h) == h


def test_a_password_with_a_line_break_is_an_environment_error() -> None:
    with pytest.raises(EnvironmentProblem, match="line break"):
        image.hash_password("two\nlines")


def test_prepare_config_stages_tree_with_private_dropin(tmp_path: Path) -> None:
    src = image.prepare_config(scripts.tree_root() / "mkosi", tmp_path, "pw-123", None)
    assert (src / "mkosi.default").is_file()
    assert os.access(src / "mkosi.finalize", os.X_OK)
    secret = src / "mkosi.default.d" / "50-runbook.conf"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "pw-123" not in secret.read_text()
    assert (src / "mkosi.extra" / "etc" / "systemd" / "network" / "80-dhcp.network").is_file()


def test_mkosi_argv_outputs_cpio_into_staging(tmp_path: Path) -> None:
    argv = image.mkosi_argv(tmp_path, tmp_path / "pkgcache")
    assert argv[0] == "mkosi" and argv[-1] == "build"
    assert argv[argv.index("--output") + 1] == "image.cpio.zst"
    assert argv[argv.index("--cache") + 1] == str(tmp_path / "pkgcache")
    assert all("pw" not in a for a in argv)


def test_uki_argv_uses_mkosi_section_addresses(tmp_path: Path) -> None:
    f = {n: tmp_path / n for n in ("osrel", "cmd", "k", "i")}
    argv = image.uki_argv(image.EFI_STUB, f["osrel"], f["cmd"], f["k"], f["i"], tmp_path / "o.efi")
    assert argv[0] == "objcopy" and argv[-2:] == [str(image.EFI_STUB), str(tmp_path / "o.efi")]
    pairs = {argv[i + 1] for i, a in enumerate(argv) if a == "--change-section-vma"}
    assert pairs == {".osrel=0x20000", ".cmdline=0x30000", ".linux=0x2000000", ".initrd=0x3000000"}
    adds = [argv[i + 1] for i, a in enumerate(argv) if a == "--add-section"]
    assert adds == [f".osrel={f['osrel']}", f".cmdline={f['cmd']}", f".linux={f['k']}", f".initrd={f['i']}"]
