"""The live console watch: a stalled kernel ends the watch early ("stalled", the stall as the
cause), a stall the boot survives is a warning, and a waiting shell prompt ends it at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.boot import console

KERNEL = [b"SeaBIOS (version 1.16.2-debian-1.16.2-1)", b"[    0.000000] Linux version 6.1.0-56-amd64 (x)"]
STALL = b"[   35.123456] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"


def _watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pieces: list[bytes]):
    it = iter(pieces)
    monkeypatch.setattr(console, "_read_from", lambda path, offset, limit=1 << 20: next(it, b""))
    monkeypatch.setattr(console, "POLL_S", 0.01)
    monkeypatch.setattr(console, "STALL_QUIET_S", 0.3)
    return console.watch(tmp_path / "raw", tmp_path / "serial.log", t0=0.0, timeout_s=1e9,
                         is_running=lambda: True, success_pattern=r"[\w.-]+ login:")


def test_a_stall_then_silence_ends_the_watch_as_stalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _watch(tmp_path, monkeypatch, [b"\n".join(KERNEL + [STALL]) + b"\n"])
    assert out.ended == "stalled"
    ff = out.analysis.first_failure
    assert ff is not None and ff.kind == "rcu_stall" and ff.line == 3
    assert out.analysis.verdict == "FAIL"


def test_a_stall_the_boot_gets_past_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = KERNEL + [STALL, b"Welcome to Debian GNU/Linux 12 (bookworm)!", b"carbide-sandbox login: "]
    out = _watch(tmp_path, monkeypatch, [b"\n".join(lines[:3]) + b"\n", b"\n".join(lines[3:]) + b"\n"])
    assert out.ended == "success" and out.analysis.verdict == "PASS"
    assert [w.kind for w in out.analysis.warnings] == ["rcu_stall"]


def test_an_ipxe_prompt_waiting_for_input_ends_the_watch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _watch(tmp_path, monkeypatch, [b"SeaBIOS (version 1.16.2)\nNo more network devices\niPXE> "])
    assert out.ended == "fatal"
    assert [f.kind for f in out.analysis.failures][:1] == ["ipxe_gave_up"]
    assert "ipxe_shell" in [f.kind for f in out.analysis.failures]
