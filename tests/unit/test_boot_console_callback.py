"""The serial console watch: a failing event callback is logged (once), never silently dropped."""

from __future__ import annotations

import time
from pathlib import Path

from runbook_lib.boot import console


def test_a_failing_event_callback_is_logged_once_and_the_watch_goes_on(tmp_path: Path, caplog) -> None:
    raw = tmp_path / "serial.raw"
    raw.write_bytes(b"BdsDxe: loading Boot0001\r\n"
                    b"Linux version 6.1.0-28-amd64 (debian)\r\n"
                    b"Welcome to Debian GNU/Linux 12 (bookworm)!\r\n"
                    b"carbide login: \r\n")
    seen = []

    def broken(ev: object) -> None:
        seen.append(ev)
        raise RuntimeError("display broke")

    with caplog.at_level("WARNING", logger="runbook_lib.boot.console"):
        out = console.watch(raw, tmp_path / "console.log", t0=time.monotonic(), timeout_s=10,
                            is_running=lambda: True, success_pattern=r"login:", on_event=broken)
    assert out.ended == "success" and len(seen) >= 3
    records = [r for r in caplog.records if r.name == "runbook_lib.boot.console"]
    assert len([r for r in records if r.exc_info]) == 1 and "display broke" in caplog.text
    assert len(records) == 2 and f"failed {len(seen)} times" in records[1].getMessage()
