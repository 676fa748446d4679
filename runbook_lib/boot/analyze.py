"""Boot-log analysis: milestones, failures and a verdict for any saved serial log.

The analyzer is streaming: it reads a log in binary chunks and scans each chunk with
one combined regular expression, so a 100 MB log is read at disk speed and never
held in memory. It copes with what firmware really prints: ANSI cursor escapes
(SeaBIOS' serial graphics adapter writes one escape per character), bare ``\\r``,
control bytes and invalid UTF-8.

Times: a line captured by :mod:`runbook_lib.boot.console` starts with a host stamp
``[+  12.345s] ``; those seconds are used. A raw log without stamps gives
``seconds = None``.

Verdict: PASS when the success pattern (a login prompt) is seen and no fatal
failure came before it; FAIL when the boot went wrong (a failure was seen, or the
run timed out / ended before success); ERROR is decided by the caller for
environment trouble (nothing in a serial log can prove that) and passed in.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..report.sanitize import clean_text

STAMP_RE = re.compile(rb"^\[\+\s*(\d+\.\d+)s\] ")
STAMP_FMT = "[+{:8.3f}s] "

_ANSI_B = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
# SGA/sercon move the cursor to a new row with an escape instead of a newline.
_CURSOR_ROW_B = re.compile(rb"\x1b\[\d+;1H")
# SeaBIOS' serial console wraps at 80 columns: join a full row with the next one and
# move the newline after it, so patterns match and line numbers stay the file's.
WRAP_COLUMNS = 80
_WRAPPED = re.compile(
    rb"^((?:\[\+\s*\d+\.\d+s\] )?)([^\n]{%d})\n(?:\[\+\s*\d+\.\d+s\] )?([^\n]*)\n" % WRAP_COLUMNS,
    re.MULTILINE)
# A full row at the end of a chunk: its continuation may only arrive with the next chunk.
_FULL_ROW_AT_END = re.compile(rb"(?:^|\n)((?:\[\+\s*\d+\.\d+s\] )?[^\n]{%d}\n)\Z" % WRAP_COLUMNS)

# "<hostname> login:"; not anchored at the line end, because kernel messages often
# land on the same line right after the prompt.
DEFAULT_SUCCESS = r"[\w.-]+ login:"

# name, regex (bytes; matched on one line, ANSI already stripped)
MILESTONES: list[tuple[str, str, str]] = [
    ("firmware_start", "firmware started",
     r"(?:BdsDxe: loading Boot|SeaBIOS \(version|UEFI Interactive Shell|Booting from ROM)"),
    ("pxe_dhcp", "PXE DHCP address",
     r"(?:Station IP address is|>>Start PXE over IPv4)"),
    ("nbp_downloaded", "NBP downloaded", r"(?:NBP file downloaded successfully|BdsDxe: starting Boot)"),
    ("ipxe_banner", "iPXE banner", r"iPXE (?:initialising devices|\d+\.\d+\.\d+\S* -- Open Source)"),
    ("ipxe_script", "iPXE script", r"(?:autoexec\.ipxe\.*\s*ok|Embedded script|carbide-sandbox: iPXE)"),
    ("ipxe_dhcp", "iPXE DHCP ok", r"(?:Configuring (?:\[\w+\] )?\(net\d[^)]*\)\.*\s*ok|DHCP \(net\d[^)]*\)\.*\s*ok)"),
    ("boot_script", "boot script fetched", r"(?:/api/v0/pxe/boot\S*\.\.\.[^\n]*\bok\s*$|carbide-sandbox: boot script for|carbide-pxe stand-in: uuid)"),
    ("kernel_fetched", "kernel fetched", r"/(?:public/blobs/internal/\S+?\.(?:efi|kernel|vmlinuz)|vmlinuz)\S*?\.\.\.[^\n]*\bok\s*$"),
    ("initrd_fetched", "initrd fetched", r"/public/blobs/internal/\S+?\.(?:root|initrd|cpio\S*)\.\.\.[^\n]*\bok\s*$"),
    ("efi_stub", "EFI stub", r"EFI stub: "),
    ("linux_version", "Linux version", r"Linux version \d"),
    ("tpm_detected", "TPM 2.0 detected", r"tpm_tis \S+: 2\.0 TPM"),
    ("initrd_unpacked", "initrd unpacked", r"(?:Freeing initrd memory|Unpacking initramfs|Run /init as init process)"),
    ("systemd_welcome", "systemd welcome", r"Welcome to .*!"),
    ("target_reached", "target reached", r"Reached target .*(?:Multi-User|Basic System|sysinit|Local File)"),
    ("login_prompt", "login prompt", r"[\w.-]+ login:"),
]

# kind, regex, hint
FAILURES: list[tuple[str, str, str]] = [
    ("no_dhcp_offer", r"PXE-E16|No valid offer received|DHCP \(net\d[^)]*\)\.* No configuration methods succeeded"
     r"|Configuring \(net\d[^)]*\)\.*\s*(?:No configuration|Connection timed out)",
     "no DHCP offer: check the network mode (user networking answers DHCP itself; bridge mode needs "
     "carbide-dhcp or dnsmasq on carbide0)"),
    ("tftp_error", r"PXE-E(?:23|3[0-9]|18)|TFTP error|Client received TFTP error|BdsDxe: failed to load Boot\w+ \"UEFI PXEv4",
     "TFTP/PXE download failed: the bootfile (ipxe.efi) is missing from the TFTP root or the firmware "
     "could not load it; check the artifacts dir and the -netdev bootfile="),
    ("http_connection", r"(?:Connection (?:reset|refused)|Connection timed out)[^\n]*ipxe\.org",
     "iPXE could not reach the carbide-pxe server: is it running and listening on the chained port? "
     "(under user networking a stopped server shows as 'Connection reset')"),
    ("http_not_found", r"(?:No such file or directory|Not found)[^\n]*ipxe\.org",
     "the server answered 404: the boot script names an artifact that is not in the artifacts dir; "
     "rebuild (step 2) or fix the template"),
    ("ipxe_error", r"\(https?://ipxe\.org/[0-9a-f]{8}\)",
     "iPXE reported an error: open the ipxe.org link for its meaning"),
    ("efi_stub_error", r"EFI stub: ERROR",
     "the UKI could not load (often too little memory for its initrd): give the VM >= 2048 MB"),
    ("initramfs_unpack", r"Initramfs unpacking failed",
     "the kernel could not unpack the initrd (out of memory or a corrupt carbide.root): give the VM "
     "more memory (memory_mb >= 2048; the docs use 4096) or rebuild the image"),
    ("root_mount", r"VFS: Unable to mount root fs",
     "the kernel found no root filesystem: the initrd is missing or not passed (check the boot "
     "script's initrd line and carbide.root)"),
    ("kernel_panic", r"Kernel panic - not syncing",
     "the kernel panicked: read the lines just above the panic for the cause"),
    ("kernel_oops", r"(?:^|\] )(?:Oops[:\s]|BUG: |Unhandled fault|-+\[ cut here \]-+)",
     "a kernel bug/oops was logged: read the trace that follows"),
    ("emergency_mode", r"(?:You are in emergency mode|Entering emergency mode|Emergency shell)",
     "systemd fell into emergency mode: a unit needed for boot failed (look for 'Failed to' above)"),
    ("chain_loop", r"tftp://\S+/(?:ipxe|snponly|undionly)[^/\s]*\.(?:efi|kpxe|pxe)\.*\s*ok",
     "iPXE is downloading iPXE again (a chain loop): it got no script, so it booted the DHCP "
     "bootfile, which is itself. Put autoexec.ipxe beside ipxe.efi in the TFTP root (prebuilt "
     "iPXE >= 2023) or embed the chain script (EMBED=)"),
    ("no_bootable", r"No bootable device|No more network devices|Boot failed: not a bootable|"
     r"Nothing to boot|No bootable option or device was found",
     "the firmware found nothing to boot: check that the NIC has PXE enabled and a bootfile is "
     "offered (-netdev user,...,bootfile=)"),
]

MAX_FAILURES = 1000
CHAIN_LOOP_LIMIT = 2  # iPXE started this many times = a chain loop

# Literal strings one of which every match of a pattern contains. Lines without any
# of them are never handed to the regexes: bytes.find runs at memory speed, so a
# 100 MB log of kernel chatter costs little. (A unit test checks that the fast path
# and the every-line path agree on the recorded logs.)
ANCHORS: dict[str, tuple[bytes, ...]] = {
    "firmware_start": (b"BdsDxe: loading Boot", b"SeaBIOS (version", b"UEFI Interactive Shell",
                       b"Booting from ROM"),
    "pxe_dhcp": (b"Station IP address is", b">>Start PXE over IPv4"),
    "nbp_downloaded": (b"NBP file downloaded successfully", b"BdsDxe: starting Boot"),
    "ipxe_banner": (b"iPXE ",),
    "ipxe_script": (b"autoexec.ipxe", b"Embedded script", b"carbide-sandbox: iPXE"),
    "ipxe_dhcp": (b"Configuring ", b"DHCP (net"),
    "boot_script": (b"/api/v0/pxe/boot", b"carbide-sandbox: boot script for",
                    b"carbide-pxe stand-in: uuid"),
    "kernel_fetched": (b"/public/blobs/internal/", b"vmlinuz"),
    "initrd_fetched": (b"/public/blobs/internal/",),
    "efi_stub": (b"EFI stub: ",),
    "linux_version": (b"Linux version ",),
    "tpm_detected": (b": 2.0 TPM",),
    "initrd_unpacked": (b"Freeing initrd memory", b"Unpacking initramfs", b"Run /init as init process"),
    "systemd_welcome": (b"Welcome to ",),
    "target_reached": (b"Reached target ",),
    "login_prompt": (b" login:",),
    "no_dhcp_offer": (b"PXE-E16", b"No valid offer received", b"No configuration methods succeeded",
                      b"Configuring ("),
    "tftp_error": (b"PXE-E", b"TFTP error", b"BdsDxe: failed to load Boot"),
    "http_connection": (b"ipxe.org",),
    "http_not_found": (b"ipxe.org",),
    "ipxe_error": (b"ipxe.org",),
    "efi_stub_error": (b"EFI stub: ERROR",),
    "initramfs_unpack": (b"Initramfs unpacking failed",),
    "root_mount": (b"VFS: Unable to mount root fs",),
    "kernel_panic": (b"Kernel panic - not syncing",),
    "kernel_oops": (b"Oops", b"BUG: ", b"Unhandled fault", b"[ cut here ]"),
    "emergency_mode": (b"emergency mode", b"Emergency shell"),
    "chain_loop": (b"tftp://",),
    "no_bootable": (b"No bootable device", b"No more network devices", b"Boot failed: not a bootable",
                    b"Nothing to boot", b"No bootable option or device was found"),
}
_ALL_ANCHORS: tuple[bytes, ...] = tuple(sorted({a for v in ANCHORS.values() for a in v}))
_ANCHOR_NAMES: dict[bytes, frozenset[str]] = {
    a: frozenset(n for n, v in ANCHORS.items() if a in v) for a in _ALL_ANCHORS}
_FAILURE_KINDS = frozenset(k for k, _, _ in FAILURES)
_ALL_NAMES = frozenset(ANCHORS)

_MS_RX = [(name, label, re.compile(rx.encode())) for name, label, rx in MILESTONES]
_FAIL_RX = [(kind, re.compile(rx.encode()), hint) for kind, rx, hint in FAILURES]

_IPXE_LINK = re.compile(r"(https?://ipxe\.org/([0-9a-f]{8}))")


@dataclass
class Milestone:
    name: str
    label: str
    seconds: float | None
    line: int
    text: str


@dataclass
class Failure:
    kind: str
    line: int
    text: str
    hint: str
    seconds: float | None = None
    code: str | None = None
    link: str | None = None


@dataclass
class Analysis:
    verdict: str
    milestones: list[Milestone]
    failures: list[Failure]
    lines: int
    bytes: int
    last_milestone: str | None
    ended: str
    success_line: int | None = None
    duration_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def first_failure(self) -> Failure | None:
        return self.failures[0] if self.failures else None

    def milestone(self, name: str) -> Milestone | None:
        for m in self.milestones:
            if m.name == name:
                return m
        return None

    def to_dict(self) -> dict[str, Any]:
        ff = self.first_failure
        return {
            "verdict": self.verdict,
            "ended": self.ended,
            "last_milestone": self.last_milestone,
            "milestones": [{"name": m.name, "label": m.label, "seconds": m.seconds,
                            "line": m.line, "text": m.text} for m in self.milestones],
            "first_failure": asdict(ff) if ff else None,
            "failures": [asdict(f) for f in self.failures[:50]],
            "lines": self.lines,
            "bytes": self.bytes,
            "duration_s": self.duration_s,
            "counts": self.counts,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        ff = self.first_failure
        head = f"{self.verdict}: last milestone {self.last_milestone or 'none'}"
        if ff:
            head += f"; first failure {ff.kind} at line {ff.line}: {ff.text}"
        return head


class BootLogAnalyzer:
    """Feed lines (or whole chunks) in order, then :meth:`finish`."""

    def __init__(self, success_pattern: str = DEFAULT_SUCCESS, prefilter: bool = True) -> None:
        """`prefilter=False` hands every line to every regex (slow; for cross-checks)."""
        self._success_src = success_pattern
        self._success = re.compile(success_pattern.encode(), re.MULTILINE)
        self._prefilter = prefilter
        # the default prompt has an anchor; a custom success regex is searched on its own
        self._success_scan = success_pattern != DEFAULT_SUCCESS
        self.milestones: dict[str, Milestone] = {}
        self.failures: list[Failure] = []
        self.lines = 0
        self.bytes = 0
        self.ipxe_starts = 0
        self.success_line: int | None = None
        self.last_seconds: float | None = None
        self._loop_reported = False
        self.failure_count = 0  # all failures seen; only the first MAX_FAILURES are kept
        self.wrapped = False  # BIOS console: rows of 80 columns are continued on the next
        self._held = b""  # a trailing full row held back until its continuation arrives

    # ---- feeding -------------------------------------------------------------
    def feed_chunk(self, chunk: bytes, final: bool = False) -> list[Milestone | Failure]:
        """A chunk of complete lines (ending in b'\\n' unless it is the tail).

        On a wrapping (BIOS) console a full-width last row is held back until the next
        chunk, so a row split across two reads is still joined; `final` (and finish())
        flush it.
        """
        self.bytes += len(chunk)
        if self._held:
            chunk, self._held = self._held + chunk, b""
        # Newlines are kept exactly (line numbers are the file's); escapes and bare
        # carriage returns become nothing or a space.
        if b"\x1b" in chunk:
            chunk = _CURSOR_ROW_B.sub(b" ", chunk)
            chunk = _ANSI_B.sub(b"", chunk)
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b" ")
        if not self.wrapped and b"SeaBIOS" in chunk:
            self.wrapped = True
        if self.wrapped:
            chunk = _WRAPPED.sub(rb"\1\2\3\n\n", chunk)
            held = None if final else _FULL_ROW_AT_END.search(chunk)
            if held:
                self._held = held.group(1)
                chunk = chunk[:held.start(1)]
        events: list[Milestone | Failure] = []
        if self.lines == 0 and "firmware_start" not in self.milestones and chunk.strip():
            first = chunk.split(b"\n", 1)[0]
            st = STAMP_RE.match(first)
            ms = Milestone("firmware_start", "firmware started",
                           float(st.group(1)) if st else None, 1,
                           clean_text(first[st.end():] if st else first).strip()[:300])
            self.milestones["firmware_start"] = ms
            events.append(ms)
        base_line = self.lines
        pos_line, pos = base_line, 0
        for start, names in self._candidate_lines(chunk):
            pos_line += chunk.count(b"\n", pos, start)
            pos = start
            end = chunk.find(b"\n", start)
            raw = chunk[start:end if end >= 0 else len(chunk)]
            self._on_match(raw, pos_line + 1, events, names)
        n = chunk.count(b"\n")
        if chunk and not chunk.endswith(b"\n"):
            n += 1
        self.lines = base_line + n
        # stamp of the last line (for 'silence' reports)
        tail_start = chunk.rfind(b"\n", 0, len(chunk) - 1) + 1
        st = STAMP_RE.match(chunk, tail_start)
        if st:
            self.last_seconds = float(st.group(1))
        return events

    def _candidate_lines(self, chunk: bytes) -> list[tuple[int, frozenset[str]]]:
        """(start offset, pattern names worth trying) of the lines that contain an anchor.

        Anchors whose patterns are all milestones already found are not searched any more,
        so after the boot only failure anchors (and the prompt) cost anything.
        """
        if not self._prefilter:
            return [(0, _ALL_NAMES)] + [(i + 1, _ALL_NAMES) for i in range(len(chunk))
                                        if chunk[i] == 10 and i + 1 < len(chunk)]
        starts: dict[int, set[str]] = {}
        find, rfind = chunk.find, chunk.rfind
        done = self.milestones.keys() - {"ipxe_banner"}
        for anchor in _ALL_ANCHORS:
            names = _ANCHOR_NAMES[anchor]
            if names <= done and not (anchor == b" login:" and self.success_line is None):
                continue
            i = find(anchor)
            while i >= 0:
                starts.setdefault(rfind(b"\n", 0, i) + 1, set()).update(names)
                nl = find(b"\n", i)
                if nl < 0:
                    break
                i = find(anchor, nl + 1)
        if self._success_scan and self.success_line is None:
            for m in self._success.finditer(chunk):
                starts.setdefault(rfind(b"\n", 0, m.start()) + 1, set())
        return [(k, frozenset(starts[k])) for k in sorted(starts)]

    def feed_line(self, line: str | bytes) -> list[Milestone | Failure]:
        raw = line.encode("utf-8", "replace") if isinstance(line, str) else line
        return self.feed_chunk(raw.rstrip(b"\n") + b"\n")

    def _on_match(self, raw: bytes, line_no: int, events: list[Milestone | Failure],
                  names: frozenset[str] = _ALL_NAMES) -> None:
        st = STAMP_RE.match(raw)
        seconds = float(st.group(1)) if st else None
        body = raw[st.end():] if st else raw
        cleaned: list[str] = []

        def line_text() -> str:  # cleaned only when something is recorded
            if not cleaned:
                cleaned.append(clean_text(body).strip()[:300])
            return cleaned[0]

        # one line can match several patterns; re-check it against all of them
        for name, label, rx in _MS_RX:
            if name not in names or (name in self.milestones and name != "ipxe_banner"):
                continue
            if not rx.search(body):
                continue
            if name == "ipxe_banner" and b"initialising devices" in body:
                self.ipxe_starts += 1
                if self.ipxe_starts >= CHAIN_LOOP_LIMIT and not self._loop_reported:
                    self._loop_reported = True
                    f: Failure | None = Failure("chain_loop", line_no, line_text(),
                                f"iPXE started {self.ipxe_starts} times: the firmware keeps loading "
                                "ipxe.efi because its script never chains the boot URL (stock iPXE "
                                "without a script, or a script that fails); check autoexec.ipxe / "
                                "the embedded script and the chain URL", seconds)
                    if any(x.kind == "chain_loop" for x in self.failures):
                        f = None
                    if f is not None:
                        self.failures.append(f)
                        events.append(f)
            if name in self.milestones:
                continue
            ms = Milestone(name, label, seconds, line_no, line_text())
            self.milestones[name] = ms
            events.append(ms)
        for name, rx, hint in _FAIL_RX:
            if name not in names or not rx.search(body):
                continue
            self.failure_count += 1
            if len(self.failures) >= MAX_FAILURES:
                break
            text = line_text()
            link = _IPXE_LINK.search(text)
            f = Failure(name, line_no, text, hint, seconds,
                        code=link.group(2) if link else None, link=link.group(1) if link else None)
            if link:
                f.hint += f" (see {link.group(1)})"
            self.failures.append(f)
            events.append(f)
            break
        if self.success_line is None and self._success.search(body):
            self.success_line = line_no

    def feed_stream(self, fh: BinaryIO, chunk_size: int = 4 << 20,
                    max_line: int = 1 << 20) -> None:
        """Read `fh` in chunks; a line longer than `max_line` is analyzed in pieces."""
        carry = b""
        while True:
            block = fh.read(chunk_size)
            if not block:
                break
            block = carry + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                carry = block
                if len(carry) > max(max_line, chunk_size):  # pathological: analyze what we have
                    self.feed_chunk(carry + b"\n")
                    carry = b""
                continue
            carry = block[cut:]
            self.feed_chunk(block[:cut])
        if carry:
            self.feed_chunk(carry)

    # ---- result --------------------------------------------------------------
    def finish(self, ended: str = "eof", timeout_s: float | None = None,
               duration_s: float | None = None, verdict: str | None = None) -> Analysis:
        """`ended`: success | timeout | exit | eof (a saved log)."""
        if self._held:
            held, self._held = self._held, b""
            self.bytes -= len(held)  # counted when it first arrived
            self.feed_chunk(held, final=True)
        ms = sorted(self.milestones.values(), key=lambda m: m.line)
        last = ms[-1].name if ms else None
        failures = list(self.failures)
        success = self.success_line is not None
        fatal_before = [f for f in failures if not success or f.line < (self.success_line or 0)]
        if ended == "timeout" and not success:
            silence = ""
            if self.last_seconds is not None and duration_s is not None:
                silence = f"; the console was silent for the last {duration_s - self.last_seconds:.0f}s"
            failures.append(Failure(
                "timeout", self.lines,
                f"no login prompt within {timeout_s or duration_s or 0:.0f}s{silence}",
                f"the boot stopped after milestone '{last or 'none'}': look at the serial lines "
                "after it; a hang there is the first problem to fix", self.last_seconds))
        elif ended == "exit" and not success and not failures:
            failures.append(Failure(
                "vm_exited", self.lines, "the VM exited before a login prompt",
                f"QEMU stopped after milestone '{last or 'none'}' (with -no-reboot a reboot or "
                "reset ends the VM): read the last serial lines", self.last_seconds))
        elif ended == "eof" and not success and not failures:
            failures.append(Failure(
                "no_login", self.lines, "the log ends without a login prompt",
                f"the boot got as far as '{last or 'none'}'", self.last_seconds))
        if self.lines == 0:
            failures.insert(0, Failure("no_output", 0, "no serial output at all",
                                       "the VM printed nothing: check the firmware and that the serial "
                                       "console is ttyS0 (console=ttyS0,115200)", None))
        if verdict is None:
            verdict = "PASS" if success and not fatal_before else "FAIL"
        if verdict == "PASS":
            failures = [f for f in failures if f.line > (self.success_line or 0)]
        else:
            failures = sorted(failures, key=lambda f: (f.line, 0 if f.kind != "ipxe_error" else 1))
        return Analysis(verdict, ms, failures, self.lines, self.bytes, last, ended,
                        self.success_line, duration_s,
                        {"ipxe_starts": self.ipxe_starts, "failures_seen": self.failure_count})


def analyze_file(path: str | Path, success_pattern: str = DEFAULT_SUCCESS,
                 ended: str = "eof") -> Analysis:
    an = BootLogAnalyzer(success_pattern)
    with open(path, "rb") as fh:
        an.feed_stream(fh)
    return an.finish(ended=ended)


def iter_excerpt(path: str | Path, line: int, before: int = 5, after: int = 5,
                 max_chars: int = 240) -> Iterator[tuple[int, str]]:
    """Lines around `line` (1-based), cleaned and truncated; streams the file."""
    lo, hi = max(1, line - before), line + after
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if n < lo:
                continue
            if n > hi:
                break
            text = clean_text(raw).rstrip("\n")
            yield n, text[:max_chars] + ("…" if len(text) > max_chars else "")
