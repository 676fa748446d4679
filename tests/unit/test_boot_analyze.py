"""Boot-log analyzer on real serial logs recorded from this project's boots (tests/fixtures/bootlogs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from runbook_lib.boot import cli
from runbook_lib.boot.analyze import BootLogAnalyzer, analyze_file, iter_excerpt

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "bootlogs"


def names(an) -> list[str]:
    return [m.name for m in an.milestones]


def test_uefi_uki_boot_passes_with_milestones_in_order() -> None:
    an = analyze_file(LOGS / "uefi_uki_login.log")
    assert an.verdict == "PASS"
    assert an.first_failure is None
    assert names(an) == ["firmware_start", "pxe_dhcp", "nbp_downloaded", "ipxe_banner", "ipxe_script",
                         "ipxe_dhcp", "boot_script", "kernel_fetched", "efi_stub", "linux_version",
                         "initrd_unpacked", "systemd_welcome", "target_reached", "login_prompt"]
    secs = [m.seconds for m in an.milestones]
    assert all(s is not None for s in secs) and secs == sorted(secs)
    # the prompt shares its line with kernel messages that followed it
    login = an.milestone("login_prompt")
    assert login is not None and "scsi host2" in login.text
    assert an.last_milestone == "login_prompt"


def test_bios_nic_rom_boot_unwraps_80_column_rows() -> None:
    an = analyze_file(LOGS / "bios_nic_rom_login.log")
    assert an.verdict == "PASS"
    assert {"kernel_fetched", "initrd_fetched", "linux_version", "login_prompt"} <= set(names(an))
    assert "pxe_dhcp" not in names(an)  # the NIC ROM does DHCP itself: no firmware PXE line
    kf = an.milestone("initrd_fetched")
    assert kf is not None and kf.text.endswith("ok")


def test_uki_without_kernel_console_still_passes() -> None:
    an = analyze_file(LOGS / "uefi_uki_login_no_kernel_console.log")
    assert an.verdict == "PASS"
    assert "linux_version" not in names(an) and "efi_stub" in names(an)


def test_no_bootfile_is_a_tftp_error() -> None:
    an = analyze_file(LOGS / "uefi_no_bootfile.log")
    assert an.verdict == "FAIL"
    assert an.first_failure is not None
    assert an.first_failure.kind == "tftp_error"
    assert "PXE-E23" in an.first_failure.text
    assert "ipxe.efi" in an.first_failure.hint
    assert an.last_milestone == "pxe_dhcp"


def test_two_loads_of_the_same_ipxe_are_not_yet_a_loop_but_the_hint_says_so() -> None:
    """Recorded when two iPXE starts counted as a loop; a loop now takes three (one chainload is
    normal), so this short log just ends, and the end's hint points at the repetition."""
    an = analyze_file(LOGS / "uefi_stock_ipxe_chain_loop.log")
    assert an.verdict == "FAIL"
    ff = an.first_failure
    assert ff is not None and ff.kind == "no_login"
    assert "ipxe.efi was loaded 2 times" in ff.hint
    assert an.counts["ipxe_starts"] == 2


def test_kernel_404_names_the_file_and_the_ipxe_link() -> None:
    an = analyze_file(LOGS / "bios_kernel_404.log")
    ff = an.first_failure
    assert an.verdict == "FAIL"
    assert ff is not None and ff.kind == "http_not_found"
    assert "carbide.vmlinuz" in ff.text  # joined from two 80-column rows
    assert ff.code == "2d0c613b" and ff.link == "http://ipxe.org/2d0c613b"
    assert "ipxe.org/2d0c613b" in ff.hint
    assert an.last_milestone == "boot_script"


def test_standin_down_is_a_connection_failure() -> None:
    an = analyze_file(LOGS / "bios_standin_down.log")
    ff = an.first_failure
    assert ff is not None and ff.kind == "http_connection"
    assert "Connection reset" in ff.text and ff.code is not None
    assert an.last_milestone == "ipxe_dhcp"


def test_kernel_panic_fixture() -> None:
    an = analyze_file(LOGS / "uefi_kernel_no_initrd_panic.log")
    assert an.verdict == "FAIL"
    ff = an.first_failure
    assert ff is not None and ff.kind == "root_mount"
    assert "Kernel panic - not syncing" in ff.text
    assert "initrd" in ff.hint
    assert an.last_milestone == "linux_version"


def test_timeout_names_last_milestone_and_silence() -> None:
    an = BootLogAnalyzer()
    an.feed_line("[+   1.000s] >>Start PXE over IPv4.")
    an.feed_line("[+   2.000s] iPXE initialising devices...ok")
    res = an.finish(ended="timeout", timeout_s=30, duration_s=30.0)
    assert res.verdict == "FAIL"
    ff = res.first_failure
    assert ff is not None and ff.kind == "timeout"
    assert "ipxe_banner" in ff.hint
    assert "silent for the last 28s" in ff.text


def test_empty_log_is_no_output(tmp_path: Path) -> None:
    f = tmp_path / "empty.log"
    f.write_bytes(b"")
    res = analyze_file(f)
    assert res.verdict == "FAIL" and res.first_failure.kind == "no_output"


def test_garbage_ansi_control_and_invalid_utf8_do_not_crash(tmp_path: Path) -> None:
    f = tmp_path / "junk.log"
    junk = bytes(range(256)) * 50 + b"\x1b[31m\xff\xfe Kernel panic - not syncing: boom\x1b[0m\r\n"
    f.write_bytes(junk + b"\x1b]0;title\x07\x00\x01carbide login: \n")
    res = analyze_file(f)
    # outcome first: the console ended at a login prompt; the panic before it is a warning
    assert res.verdict == "PASS"
    assert [w.kind for w in res.warnings] == ["kernel_panic"]
    assert all("\x1b" not in x.text for x in res.warnings)


def test_streaming_chunk_boundaries_do_not_change_the_result(tmp_path: Path) -> None:
    whole = analyze_file(LOGS / "uefi_uki_login.log")
    an = BootLogAnalyzer()
    with open(LOGS / "uefi_uki_login.log", "rb") as fh:
        an.feed_stream(fh, chunk_size=97)
    small = an.finish()
    assert [(m.name, m.line) for m in small.milestones] == [(m.name, m.line) for m in whole.milestones]


def test_excerpt_is_bounded_and_clean() -> None:
    an = analyze_file(LOGS / "bios_kernel_404.log")
    rows = list(iter_excerpt(LOGS / "bios_kernel_404.log", an.first_failure.line, 2, 2, max_chars=60))
    assert [n for n, _ in rows] == list(range(an.first_failure.line - 2, an.first_failure.line + 3))
    assert all(len(t) <= 61 and "\x1b" not in t for _, t in rows)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="runbook")
    cli.register(ap.add_subparsers(dest="cmd"))
    return ap


def test_cli_json_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["analyze-bootlog", str(LOGS / "bios_kernel_404.log"), "--json"])
    assert args.func(args) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "FAIL"
    assert {"name", "seconds"} <= set(data["milestones"][0])
    assert data["first_failure"]["kind"] == "http_not_found"
    assert {"kind", "line", "hint"} <= set(data["first_failure"])
    args = _parser().parse_args(["analyze-bootlog", str(LOGS / "uefi_uki_login.log")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS") and "login prompt" in out


def test_cli_missing_file_is_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["analyze-bootlog", str(tmp_path / "nope.log")])
    assert args.func(args) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("log", sorted(p.name for p in LOGS.glob("*.log")))
def test_prefilter_agrees_with_checking_every_line(log: str) -> None:
    fast = BootLogAnalyzer()
    slow = BootLogAnalyzer(prefilter=False)
    data = (LOGS / log).read_bytes()
    fast.feed_chunk(data)
    slow.feed_chunk(data)
    a, b = fast.finish(), slow.finish()
    assert [(m.name, m.line) for m in a.milestones] == [(m.name, m.line) for m in b.milestones]
    assert [(f.kind, f.line) for f in a.failures] == [(f.kind, f.line) for f in b.failures]
    assert a.verdict == b.verdict


def test_custom_success_pattern(tmp_path: Path) -> None:
    an = BootLogAnalyzer(success_pattern=r"READY-\d+")
    an.feed_line("[+   1.000s] Linux version 6.1.0")
    an.feed_line("[+   2.000s] service says READY-42 now")
    res = an.finish()
    assert res.verdict == "PASS" and res.success_line == 2


def test_too_little_memory_fails_unpacking_the_initramfs() -> None:
    an = analyze_file(LOGS / "uefi_512mb_initramfs_unpack_failed.log")
    ff = an.first_failure
    assert an.verdict == "FAIL"
    assert ff is not None and ff.kind == "initramfs_unpack"
    assert "memory_mb" in ff.hint
    assert an.milestone("efi_stub") is not None  # the UKI itself loaded


def test_uefi_standin_down_through_autoexec_chain() -> None:
    an = analyze_file(LOGS / "uefi_standin_down.log")
    ff = an.first_failure
    assert ff is not None and ff.kind == "http_connection"
    assert ff.link and ff.link.startswith("https://ipxe.org/")
    assert an.last_milestone == "ipxe_dhcp" and "boot_script" not in names(an)


def test_bios_row_wrapped_across_two_reads_is_still_joined():
    """Seen live: the 80-column row and its continuation arrived in different reads."""
    from runbook_lib.boot.analyze import BootLogAnalyzer

    url = "http://10.0.2.2:56927/public/blobs/internal/x86_64/no-such.vmlinuz... No such fi"
    assert len(url) == 80
    an = BootLogAnalyzer()
    an.feed_chunk(b"[+   0.100s] SeaBIOS (version 1.16.2-debian-1.16.2-1)\n")
    an.feed_chunk(f"[+   5.445s] {url}\n".encode())
    an.feed_chunk(b"[+   5.496s] le or directory (http://ipxe.org/2d0c613b)\n")
    res = an.finish("exit")
    ff = res.first_failure
    assert ff.kind == "http_not_found" and "no-such.vmlinuz" in ff.text and ff.code == "2d0c613b"
    assert res.lines == 3
