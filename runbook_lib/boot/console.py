"""Serial console capture: stamp, log, watch, decide when to stop.

QEMU writes the guest's serial port to a raw file (a file never blocks the guest,
unlike a pty nobody reads). :func:`watch` follows that file: each complete line
is stamped with the host time since the VM started (``[+  12.345s] ``), written
whole to the console log, fed to the :class:`BootLogAnalyzer`, and any milestone
or failure is reported through ``on_event``. A prompt without a newline (``login: ``)
is checked as soon as the console goes quiet for a moment. The watch ends on the
success pattern, on a fatal failure (after a short grace to catch the trace), when
QEMU exits, or on the timeout.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..report.sanitize import clean_text
from .analyze import STAMP_FMT, Analysis, BootLogAnalyzer, Failure, Milestone

log = logging.getLogger(__name__)

Event = Milestone | Failure

# Failures that end the run (the boot cannot recover from them).
FATAL_KINDS = frozenset({
    "kernel_panic", "root_mount", "initramfs_unpack", "emergency_mode", "chain_loop", "efi_stub_error",
    "http_connection", "http_not_found", "no_bootable", "no_dhcp_offer", "tftp_error",
})
FATAL_GRACE_S = 2.0
PROMPT_QUIET_S = 0.1
POLL_S = 0.05


@dataclass
class WatchOutcome:
    ended: str  # success | fatal | exit | timeout
    analysis: Analysis
    duration_s: float
    success_at: float | None
    verdict_at: float


def watch(serial_raw: Path, console_log: Path, *, t0: float, timeout_s: float,
          is_running: Callable[[], bool], success_pattern: str,
          on_event: Callable[[Event], None] | None = None,
          fatal_kinds: frozenset[str] = FATAL_KINDS) -> WatchOutcome:
    analyzer = BootLogAnalyzer(success_pattern)
    success_rx = re.compile(success_pattern)
    pending = b""
    last_data = time.monotonic()
    ended: str | None = None
    fatal_deadline: float | None = None
    success_at: float | None = None
    offset = 0
    callback_failures = 0
    console_log.parent.mkdir(parents=True, exist_ok=True)
    with open(console_log, "wb") as out:

        def emit_lines(data: bytes) -> None:
            stamp = STAMP_FMT.format(time.monotonic() - t0).encode()
            stamped = b"".join(stamp + ln + b"\n" for ln in data.split(b"\n"))
            out.write(stamped)
            out.flush()
            for ev in analyzer.feed_chunk(stamped):
                _report(ev)

        def _report(ev: Event) -> None:
            nonlocal fatal_deadline, callback_failures
            if on_event:
                try:
                    on_event(ev)
                except Exception:  # a display problem must not stop the watch
                    callback_failures += 1
                    if callback_failures == 1:
                        log.exception("the console event callback failed; the watch goes on "
                                      "(further failures are counted, not logged)")
            if isinstance(ev, Failure) and ev.kind in fatal_kinds and fatal_deadline is None:
                fatal_deadline = time.monotonic() + FATAL_GRACE_S

        while True:
            now = time.monotonic()
            data = _read_from(serial_raw, offset)
            if data:
                offset += len(data)
                last_data = now
                pending += data
                cut = pending.rfind(b"\n")
                if cut >= 0:
                    emit_lines(pending[:cut])
                    pending = pending[cut + 1:]
            if analyzer.success_line is not None:
                ended = "success"
            elif pending and now - last_data >= PROMPT_QUIET_S and \
                    success_rx.search(clean_text(pending)):
                emit_lines(pending)
                pending = b""
                ended = "success"
            if ended == "success":
                success_at = now - t0
                break
            if fatal_deadline is not None and now >= fatal_deadline:
                ended = "fatal"
                break
            if not is_running():
                # drain what QEMU wrote last
                tail = _read_from(serial_raw, offset)
                offset += len(tail)
                pending += tail
                ended = "exit"
                break
            if now - t0 >= timeout_s:
                ended = "timeout"
                break
            time.sleep(POLL_S)
        if pending:
            emit_lines(pending)
    if callback_failures > 1:
        log.warning("the console event callback failed %d times", callback_failures)
    duration = time.monotonic() - t0
    analysis = analyzer.finish(
        ended={"success": "success", "fatal": "exit", "exit": "exit",
               "timeout": "timeout"}[ended], timeout_s=timeout_s, duration_s=duration)
    return WatchOutcome(ended, analysis, duration, success_at, time.monotonic() - t0)


def _read_from(path: Path, offset: int, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(limit)
    except FileNotFoundError:
        return b""
