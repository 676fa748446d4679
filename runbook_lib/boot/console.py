"""Serial console capture: stamp, log, watch, decide when to stop.

QEMU writes the guest's serial port to a raw file (a file never blocks the guest,
unlike a pty nobody reads). :func:`watch` follows that file: each complete line
is stamped with the host time since the VM started (``[+  12.345s] ``), written
whole to the console log, fed to the :class:`BootLogAnalyzer`, and any milestone
or failure is reported through ``on_event``. A prompt without a newline (``login: ``,
``iPXE> ``, ``Shell> ``) is checked as soon as the console goes quiet for a moment.

The watch ends on the success pattern; on a fatal message or a loop (after a short grace
to catch the trace, and only if the boot makes no progress in that grace); on kernel
trouble that stalls the boot (an RCU stall or soft lockup followed by a silent console
for ``STALL_QUIET_S`` or no progress for ``STALL_GRACE_S``: ``ended="stalled"``); when
QEMU exits; or on the timeout. Errors the boot may still get past (a failed PXE attempt
before HTTP boot works) never end it early.
The verdict is the analyzer's, on exactly the bytes written to the console log, so a
saved log analyzed later gives the same verdict and first failure.
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
from .catalogue import FATAL, SURVIVED

log = logging.getLogger(__name__)

Event = Milestone | Failure

FATAL_GRACE_S = 2.0
# kernel trouble that, with no progress after it for this long, is a hung boot
STALL_KINDS = frozenset({"rcu_stall", "soft_lockup"})
STALL_QUIET_S = 10.0  # ... and the console silent this long after it
STALL_GRACE_S = 60.0  # ... or no progress this long after it (stall reports repeat)
# prompts that wait for a key: nothing more will come
_WAITING_PROMPT = re.compile(r"(?:^|\n)\s*(?:iPXE|Shell)> ?$")
PROMPT_QUIET_S = 0.1
POLL_S = 0.05


@dataclass
class WatchOutcome:
    ended: str  # success | fatal | stalled | exit | timeout
    analysis: Analysis
    duration_s: float
    success_at: float | None
    verdict_at: float


def watch(serial_raw: Path, console_log: Path, *, t0: float, timeout_s: float,
          is_running: Callable[[], bool], success_pattern: str,
          on_event: Callable[[Event], None] | None = None,
          stop_early: bool = True) -> WatchOutcome:
    """`stop_early=False` records until success, exit or timeout (for the corpus recorder)."""
    analyzer = BootLogAnalyzer(success_pattern)
    success_rx = re.compile(success_pattern)
    pending = b""
    last_data = time.monotonic()
    ended: str | None = None
    fatal_deadline: float | None = None
    stall_deadline: float | None = None
    level_then = -1  # the analyzer's progress when the deadline was set
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
            nonlocal fatal_deadline, stall_deadline, level_then, callback_failures
            if on_event:
                try:
                    on_event(ev)
                except Exception:  # a display problem must not stop the watch
                    callback_failures += 1
                    if callback_failures == 1:
                        log.exception("the console event callback failed; the watch goes on "
                                      "(further failures are counted, not logged)")
            if not stop_early or not isinstance(ev, Failure):
                return
            if ev.severity == FATAL and fatal_deadline is None:
                fatal_deadline, level_then = time.monotonic() + FATAL_GRACE_S, analyzer.level
            elif ev.severity == SURVIVED and ev.kind in STALL_KINDS and stall_deadline is None:
                stall_deadline, level_then = time.monotonic() + STALL_GRACE_S, analyzer.level

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
            elif pending and now - last_data >= PROMPT_QUIET_S:
                text = clean_text(pending)
                if success_rx.search(text):
                    emit_lines(pending)
                    pending = b""
                    ended = "success"
                elif stop_early and _WAITING_PROMPT.search(text):
                    emit_lines(pending)
                    pending = b""
                    fatal_deadline = min(fatal_deadline or now, now)
            if ended == "success":
                success_at = now - t0
                break
            if analyzer.level > level_then:  # progress since: the boot got past it
                fatal_deadline = stall_deadline = None
                level_then = analyzer.level
            if fatal_deadline is not None and now >= fatal_deadline:
                ended = "fatal"
                break
            if stall_deadline is not None and (now >= stall_deadline or now - last_data >= STALL_QUIET_S):
                ended = "stalled"
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
        ended={"success": "success", "fatal": "exit", "exit": "exit", "stalled": "stalled",
               "timeout": "timeout"}[ended], timeout_s=timeout_s, duration_s=duration)
    return WatchOutcome(ended, analysis, duration, success_at, time.monotonic() - t0)


def _read_from(path: Path, offset: int, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(limit)
    except FileNotFoundError:
        return b""
