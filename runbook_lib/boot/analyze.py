"""Boot-log analysis: milestones, failures and a verdict for any saved serial log.

The analyzer is streaming: it reads a log in binary chunks, finds the few lines that
contain an anchor of some known message (:mod:`.catalogue`) in one RE2 pass (google-re2:
a DFA, no backtracking), and runs Python regexes on those lines only, so a 100 MB log is never held in memory. It copes with what firmware really prints: ANSI cursor escapes
(SeaBIOS' serial graphics adapter writes one escape per character), bare ``\\r``,
control bytes and invalid UTF-8.

Times: a line captured by :mod:`runbook_lib.boot.console` starts with a host stamp
``[+  12.345s] ``; those seconds are used. A raw log without stamps gives
``seconds = None``.

Verdict, outcome first: PASS when the boot ended at the success pattern (a login prompt),
whatever harmless or recovered errors came before it (they are the ``warnings``); FAIL
for any other end (a fatal message, a loop, a timeout, the VM exiting, the log ending).
The first failure is the cause of that end: the earliest message the boot never got past
(see :meth:`BootLogAnalyzer.finish`). ERROR is decided by the caller for environment
trouble (nothing in a serial log can prove that) and passed in.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import re2  # type: ignore[import-untyped]

from ..report.sanitize import clean_text
from .catalogue import BENIGN, END_HINTS, ENTRIES, ERROR, FATAL, LOOP_HINTS, MILESTONES, RANK, Entry

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

# "<hostname> login:"; not anchored at the line end, because kernel messages often
# land on the same line right after the prompt.
DEFAULT_SUCCESS = r"[\w.-]+ login:"
LOOP_LIMIT = 3  # the same boot file / banner this many times without a kernel = a loop
MAX_HITS = 1000  # messages kept (all are counted); the ones that can still be the cause win
MAX_BENIGN = 100  # benign messages kept (a 100 MB console repeats the same notes)
MAX_LISTED = 50  # per list in the JSON

# Detectors that are not catalogue entries: always scanned (never "done").
_FETCH_OK = re.compile(rb"((?:tftp|https?|ftp|file):\S+?)\.{2,}\s*ok\b")
_NBP_NAME = re.compile(rb"NBP filename is (\S+)")
# iPXE's banner names its build (PRODUCT_SHORT_NAME): iPXE, carbide, carbide-sandbox ...
_BANNER = re.compile(rb"([\w.-]+ initialising devices|SeaBIOS \(version|BdsDxe: loading (Boot\w+))")
_KERNEL_START = re.compile(rb"(?:Linux version \d|EFI stub: )")
_MENU = re.compile(rb"key to open \S+ menu")
_NBP_LOADED = re.compile(rb"NBP file downloaded successfully|Downloading\.+\s*100%"
                         rb"|BdsDxe: starting Boot\w+ \"(?!(?:EFI Internal|UEFI) Shell)")
_DHCP_OK = re.compile(rb"(?:Configuring|DHCP) (?:\[\w+\] )?\((net\d+)[^)]*\)\.*\s*ok")
_NET = re.compile(r"\((net\d+)")
_ATTEMPT = re.compile(
    rb"(?:BdsDxe: (?:loading|failed to load|failed to start) Boot\w+ \"(?P<bds>[^\"]*)\"|>>Start (?P<start>PXE|HTTP Boot) over (?P<ip>IPv[46])"
    rb"|Booting from (?P<sea>ROM|Hard Disk|DVD/CD|Floppy)|iPXE \(PCI (?P<pci>[0-9a-fA-F:.]+)\) starting execution)")
DETECTORS: dict[str, tuple[bytes, ...]] = {
    "@fetch": (b".. ok", b"NBP filename is "),
    "@banner": (b"initialising devices", b"SeaBIOS (version", b"BdsDxe: loading Boot"),
    "@kernel": (b"Linux version ", b"EFI stub: "),
    "@menu": (b"key to open ",),
    "@dhcp": (b"Configuring ", b"DHCP (net"),
    "@attempt": (b"BdsDxe: loading Boot", b"BdsDxe: failed to load Boot", b"BdsDxe: failed to start Boot",
                 b">>Start ", b"Booting from ", b"Station IP address is ", b"NBP file downloaded",
                 b"Downloading.", b"BdsDxe: starting Boot",
                 b"starting execution"),
}

_ANCHOR_NAMES_L: dict[bytes, set[str]] = {}
for _m in MILESTONES:
    for _a in _m.anchors:
        _ANCHOR_NAMES_L.setdefault(_a, set()).add(_m.name)
for _i, _e in enumerate(ENTRIES):
    for _a in _e.anchors:
        _ANCHOR_NAMES_L.setdefault(_a, set()).add(f"#{_i}")
for _d, _anchors in DETECTORS.items():
    for _a in _anchors:
        _ANCHOR_NAMES_L.setdefault(_a, set()).add(_d)
_ALL_ANCHORS: tuple[bytes, ...] = tuple(sorted(_ANCHOR_NAMES_L))
_ANCHOR_NAMES: dict[bytes, frozenset[str]] = {a: frozenset(v) for a, v in _ANCHOR_NAMES_L.items()}
# RE2 reports non-overlapping matches, the longest alternative first: a match also stands for
# every anchor inside it ("EFI stub: ERROR" holds "EFI stub: ").
_ANCHOR_CLOSURE: dict[bytes, frozenset[str]] = {
    a: frozenset(n for b in _ALL_ANCHORS if b in a for n in _ANCHOR_NAMES[b]) for a in _ALL_ANCHORS}
_FINDERS: dict[tuple[frozenset[str], bool], Any] = {}


def _finder(done: frozenset[str], waiting_login: bool) -> Any:
    """A compiled RE2 (one DFA pass, no backtracking) that finds every anchor still worth
    finding once the milestones in `done` are found. Cached: a log changes it a few times."""
    key = (done, waiting_login)
    got = _FINDERS.get(key)
    if got is None:
        active = tuple(a for a in _ALL_ANCHORS
                       if not _ANCHOR_NAMES[a] <= done or (a == b" login:" and waiting_login))
        active = tuple(sorted(active, key=len, reverse=True))
        got = _FINDERS[key] = re2.compile(b"|".join(re.escape(a) for a in active))
    return got


_ALL_NAMES = frozenset(n for v in _ANCHOR_NAMES.values() for n in v)
_MS_RX = [(m.name, m.label, re.compile(m.pattern.encode())) for m in MILESTONES]
_ENTRY_RX = [(f"#{i}", e) for i, e in enumerate(ENTRIES)]
_HINT_OF = {e.kind: e.hint for e in reversed(ENTRIES)}  # the first entry's hint for a kind
_PLANS: dict[frozenset[str], tuple[list[Any], list[Entry], bool]] = {}


def _plan(names: frozenset[str]) -> tuple[list[Any], list[Entry], bool]:
    """What to try on a line holding these anchors' names, in table order (cached)."""
    plan = _PLANS[names] = ([x for x in _MS_RX if x[0] in names], [e for k, e in _ENTRY_RX if k in names],
                            not names.isdisjoint(DETECTORS))
    return plan

_IPXE_LINK = re.compile(rb"(https?://ipxe\.org/([0-9a-f]{8}))")


@dataclass
class Milestone:
    name: str
    label: str
    seconds: float | None
    line: int
    text: str


@dataclass
class Failure:
    """A message (or an end) with what it means. In ``warnings`` its kind is the
    catalogue's ``warn`` kind (the boot got past it)."""

    kind: str
    line: int
    text: str
    hint: str
    seconds: float | None = None
    code: str | None = None
    link: str | None = None
    severity: str = ERROR


@dataclass
class Attempt:
    """One boot option the firmware tried (OVMF's PXEv4/PXEv6/HTTP, SeaBIOS' ROM...)."""

    name: str
    line: int
    seconds: float | None
    end_line: int | None = None
    duration_s: float | None = None
    outcome: str = "unfinished"  # booted | failed | unfinished


@dataclass
class _Hit:
    failure: Failure
    entry: Entry | None  # None for loops
    level_at: int  # the highest milestone rank reached when it was seen
    attempt: int = -1  # the firmware attempt it happened in (-1: before any)
    raw: bytes = b""  # the line, until its text is needed (feed_stream cleans only what is kept)


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
    counts: dict[str, Any] = field(default_factory=dict)
    warnings: list[Failure] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def first_failure(self) -> Failure | None:
        """The cause of the end the boot reached (None for PASS)."""
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
            "failures": [asdict(f) for f in self.failures[:MAX_LISTED]],
            "warnings": [asdict(w) for w in self.warnings[:MAX_LISTED]],
            "attempts": [asdict(a) for a in self.attempts[:MAX_LISTED]],
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
        if self.warnings:
            head += f"; {len(self.warnings)} warning(s)"
        return head


class BootLogAnalyzer:
    """Feed lines (or whole chunks) in order, then :meth:`finish`."""

    def __init__(self, success_pattern: str = DEFAULT_SUCCESS, prefilter: bool = True,
                 loop_limit: int = LOOP_LIMIT) -> None:
        """`prefilter=False` hands every line to every regex (slow; for cross-checks)."""
        self._success = re.compile(success_pattern.encode(), re.MULTILINE)
        self._prefilter = prefilter
        # the default prompt has an anchor; a custom success regex is searched on its own
        self._success_scan = success_pattern != DEFAULT_SUCCESS
        self.loop_limit = max(2, loop_limit)
        self.milestones: dict[str, Milestone] = {}
        self.level = -1  # highest milestone rank reached so far
        self._hits: list[_Hit] = []
        self._lazy = False  # set by feed_stream: nobody reads the events, texts wait for finish()
        self._benign_kept = 0
        self.hit_counts: dict[str, int] = {}
        self.lines = 0
        self.bytes = 0
        self.ipxe_starts = 0
        self.success_line: int | None = None
        self.last_seconds: float | None = None
        self.last_fetch_ok = 0  # line of the last download that worked
        self._fetches: dict[str, int] = {}
        self._banners: dict[str, int] = {}
        self._menus = 0
        self._loops: set[str] = set()
        self._attempts: list[Attempt] = []
        self._attempt_open = False  # the last attempt came from a BdsDxe/ROM line, detail pending
        # how far each firmware attempt got: 0 nothing, 1 an address, 2 a boot file, 3 iPXE, 4 a kernel
        self._depth: list[int] = []
        self._dhcp_ok: list[tuple[str, int]] = []  # iPXE: (netN, line) of each DHCP that worked
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
        if b"\r" in chunk:  # one C pass; a bare \r (progress redraws) joins its two parts
            chunk = chunk.translate(None, b"\r")
        if self.wrapped or b"SeaBIOS (version" in chunk:
            chunk = self._unwrap(chunk)
        if self.wrapped and not final and chunk.endswith(b"\n"):
            prev = chunk.rfind(b"\n", 0, len(chunk) - 1) + 1
            st = STAMP_RE.match(chunk[prev:prev + 24])
            if len(chunk) - 1 - prev - (st.end() if st else 0) == WRAP_COLUMNS:
                self._held, chunk = chunk[prev:], chunk[:prev]
        events: list[Milestone | Failure] = []
        if self.lines == 0 and "firmware_start" not in self.milestones and chunk.strip():
            first = chunk.split(b"\n", 1)[0]
            st = STAMP_RE.match(first)
            ms = Milestone("firmware_start", "firmware started",
                           float(st.group(1)) if st else None, 1,
                           clean_text(first[st.end():] if st else first).strip()[:300])
            self.milestones["firmware_start"] = ms
            self.level = max(self.level, RANK["firmware_start"])
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
        st = STAMP_RE.match(chunk[tail_start:tail_start + 24])  # (^ does not anchor at a pos)
        if st:
            self.last_seconds = float(st.group(1))
        return events

    def _unwrap(self, chunk: bytes) -> bytes:
        """Join SeaBIOS' 80-column rows, from its banner to the kernel's first line (the
        kernel writes to the UART itself and never wraps), so the rest costs nothing."""
        out: list[bytes] = []
        pos = 0
        while pos < len(chunk):
            if not self.wrapped:
                i = chunk.find(b"SeaBIOS (version", pos)
                if i < 0:
                    out.append(chunk[pos:])
                    break
                start = max(pos, chunk.rfind(b"\n", 0, i) + 1)
                out.append(chunk[pos:start])
                pos, self.wrapped = start, True
            else:
                j = chunk.find(b"Linux version ", pos)
                end = len(chunk) if j < 0 else max(pos, chunk.rfind(b"\n", 0, j) + 1)
                out.append(_WRAPPED.sub(rb"\1\2\3\n\n", chunk[pos:end]))
                if j < 0:
                    break
                pos, self.wrapped = end, False
        return b"".join(out)

    def _candidate_lines(self, chunk: bytes) -> list[tuple[int, frozenset[str]]]:
        """(start offset, pattern names worth trying) of the lines that contain an anchor.

        Anchors whose patterns are all milestones already found are not searched any more,
        so after the boot only the catalogue, the loop detectors (and the prompt) cost anything.
        """
        if not self._prefilter:
            return [(0, _ALL_NAMES)] + [(i + 1, _ALL_NAMES) for i in range(len(chunk))
                                        if chunk[i] == 10 and i + 1 < len(chunk)]
        starts: dict[int, set[str]] = {}
        rx = _finder(frozenset(self.milestones), self.success_line is None)
        rfind = chunk.rfind
        for m in rx.finditer(chunk):
            a, b = m.span()
            start = rfind(b"\n", 0, a) + 1
            names = _ANCHOR_CLOSURE[chunk[a:b]]
            got = starts.get(start)
            if got is None:
                starts[start] = set(names)
            else:
                got.update(names)
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

        plan = _PLANS.get(names) or _plan(names)
        # one line can match several milestones; each is recorded once (its first line)
        for name, label, rx in plan[0]:
            if name in self.milestones or not rx.search(body):
                continue
            ms = Milestone(name, label, seconds, line_no, line_text())
            self.milestones[name] = ms
            self.level = max(self.level, RANK[name])
            events.append(ms)
        if plan[2]:
            self._detect(body, line_no, seconds, names, line_text, events)
        # the first catalogue entry that matches classifies the line
        for entry in plan[1]:
            if entry.rx.search(body):
                if entry.severity == BENIGN and self._benign_kept >= MAX_BENIGN:
                    self.hit_counts[entry.kind] = self.hit_counts.get(entry.kind, 0) + 1
                else:
                    self._benign_kept += entry.severity == BENIGN
                    kind = entry.unaddressed if entry.unaddressed and self._depth and not self._depth[-1] \
                        else entry.kind
                    hint = _HINT_OF.get(kind, entry.hint) if kind != entry.kind else entry.hint
                    self._record(Failure(kind, line_no, "" if self._lazy else line_text(), hint, seconds,
                                         severity=entry.severity), entry, events, body)
                break
        if self.success_line is None and (self._success_scan or b" login:" in body) \
                and self._success.search(body):
            self.success_line = line_no

    def _detect(self, body: bytes, line_no: int, seconds: float | None, names: frozenset[str],
                line_text: Callable[[], str], events: list[Milestone | Failure]) -> None:
        """Loops by repetition, and the firmware's boot attempts."""
        if "@kernel" in names and _KERNEL_START.search(body):
            self._deepen(4)
            self._fetches.clear()
            self._banners.clear()
            self._menus = 0
        if "@attempt" in names:
            self._attempt(body, line_no, seconds)
        loop: str | None = None
        if "@fetch" in names:
            fetched = _FETCH_OK.search(body)
            m = fetched or _NBP_NAME.search(body)
            if m:
                key = m.group(1).rsplit(b"/", 1)[-1].decode("utf-8", "replace")
                if fetched:  # (an NBP name is printed before its download: not proof it worked)
                    self.last_fetch_ok = line_no
                self._fetches[key] = n = self._fetches.get(key, 0) + 1
                if n >= self.loop_limit:
                    loop = "chain_loop"
        if "@banner" in names:
            m = _BANNER.search(body)
            if m:
                key = (m.group(2) or m.group(1)[:4]).decode("utf-8", "replace")
                if key in ("iPXE", "carb", "Carb"):
                    key = "iPXE"
                    self._deepen(3)
                    self.ipxe_starts += 1
                self._banners[key] = n = self._banners.get(key, 0) + 1
                if n >= self.loop_limit:
                    # an iPXE that keeps loading the same file is a chain loop, not a reboot loop
                    again = max(self._fetches.values(), default=0) >= self.loop_limit - 1
                    loop = "chain_loop" if again else "banner_loop"
        if "@dhcp" in names:
            m = _DHCP_OK.search(body)
            if m:
                self._dhcp_ok.append((m.group(1).decode(), line_no))
        if "@menu" in names and _MENU.search(body):
            self._menus += 1
            if self._menus >= self.loop_limit:
                loop = "carbide_menu_loop"
        if loop and loop not in self._loops:
            self._loops.add(loop)
            self._record(Failure(loop, line_no, line_text(), LOOP_HINTS[loop], seconds, severity=FATAL),
                         None, events)

    def _attempt(self, body: bytes, line_no: int, seconds: float | None) -> None:
        """OVMF prints `>>Start PXE over IPv4` first and names the option (`BdsDxe: loading` or
        `failed to load Boot0001 "UEFI PXEv4 ..."`) after it; SeaBIOS prints `Booting from ROM`
        and the NIC ROM then names itself. A naming line within a few lines joins its attempt."""
        if b"Station IP address is " in body:
            self._deepen(1)
            return
        if _NBP_LOADED.search(body):
            self._deepen(2)
        m = _ATTEMPT.search(body)
        if not m:
            return
        cur = self._attempts[-1] if self._attempts else None
        naming = m.group("bds") is not None or m.group("pci") is not None
        if m.group("bds") is not None and cur is not None and cur.name == m.group("bds").decode("utf-8", "replace"):
            return  # the same option again: loaded, then "failed to start" when its program returned
        if naming and cur is not None and self._attempt_open and line_no - cur.line <= 40:
            cur.name = (m.group("bds").decode("utf-8", "replace") if m.group("bds")
                        else f"iPXE ROM (PCI {m.group('pci').decode()})")
            self._attempt_open = False
            return
        if m.group("start"):
            name = f"{m.group('start').decode()} {m.group('ip').decode()}"
        elif m.group("sea"):
            name = f"SeaBIOS: {m.group('sea').decode()}"
        elif m.group("bds"):
            name = m.group("bds").decode("utf-8", "replace")
        else:
            name = f"iPXE ROM (PCI {m.group('pci').decode()})"
        self._attempts.append(Attempt(name, line_no, seconds))
        self._depth.append(0)
        self._attempt_open = not naming

    def _deepen(self, depth: int) -> None:
        if self._depth and self._depth[-1] < depth:
            self._depth[-1] = depth

    def _record(self, f: Failure, entry: Entry | None, events: list[Milestone | Failure],
                body: bytes = b"") -> None:
        self.hit_counts[f.kind] = self.hit_counts.get(f.kind, 0) + 1
        if len(self._hits) >= MAX_HITS:
            self._compact()
        link = _IPXE_LINK.search(body or f.text.encode())
        if link:
            f.code, f.link = link.group(2).decode(), link.group(1).decode()
            f.hint += f" (see {f.link})"
        self._hits.append(_Hit(f, entry, self.level, len(self._attempts) - 1, body if not f.text else b""))
        events.append(f)

    def _compact(self) -> None:
        """Keep the messages that can still be the cause (the boot has not got past them: that
        only changes one way) and the first warnings; the rest stay counted."""
        past = [h for h in self._hits if self.got_past(h)]
        open_ = [h for h in self._hits if not self.got_past(h)]
        if len(open_) > MAX_HITS // 2:  # a storm of errors with no progress: first and latest
            open_ = open_[:MAX_HITS // 4] + open_[-MAX_HITS // 4:]
        self._hits = sorted(past[:MAX_HITS // 4] + open_, key=lambda h: h.failure.line)

    def feed_stream(self, fh: BinaryIO, chunk_size: int = 4 << 20,
                    max_line: int = 1 << 20) -> None:
        """Read `fh` in chunks; a line longer than `max_line` is analyzed in pieces."""
        carry = b""
        self._lazy = True
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

    # ---- judging -------------------------------------------------------------
    def got_past(self, hit: _Hit) -> bool:
        """Did the boot get past this message (so far)?"""
        if self.success_line is not None and hit.failure.line < self.success_line:
            return True
        recovery = hit.entry.recovery if hit.entry is not None else "progress"
        if recovery == "success":
            return False
        if self.level > hit.level_at:
            return True
        return recovery == "fetch" and self.last_fetch_ok > hit.failure.line

    def finish(self, ended: str = "eof", timeout_s: float | None = None,
               duration_s: float | None = None, verdict: str | None = None) -> Analysis:
        """`ended`: success | timeout | exit | stalled | eof (a saved log).

        The verdict comes from how the boot ended: the success pattern → PASS, anything
        else → FAIL. The first failure is the cause of that end: the earliest message
        (not benign) that the boot never got past, else the end itself. Everything the
        boot got past is a warning.
        """
        if self._held:
            held, self._held = self._held, b""
            self.bytes -= len(held)  # counted when it first arrived
            self.feed_chunk(held, final=True)
        ms = sorted(self.milestones.values(), key=lambda m: m.line)
        last = ms[-1].name if ms else None
        success = self.success_line is not None
        causes: list[Failure] = []
        warnings: list[Failure] = []
        for h in self._hits:
            if h.raw:
                h.failure.text, h.raw = clean_text(h.raw).strip()[:300], b""
            f = h.failure
            if not success and f.severity != BENIGN and not self.got_past(h):
                causes.append(f)
            else:
                warn_kind = self._warn_kind(h)
                warnings.append(Failure(warn_kind, f.line, f.text, f.hint, f.seconds, f.code, f.link,
                                        f.severity))
        failures = self._cause_first(causes)
        if not success:
            end = self._end(ended, last, timeout_s, duration_s,
                            explained=any(c.severity == FATAL for c in causes), any_cause=bool(causes))
            if end is not None:
                failures.append(end)
        if verdict is None:
            verdict = "PASS" if success else "FAIL"
        counts: dict[str, Any] = {"ipxe_starts": self.ipxe_starts, "failures_seen": sum(self.hit_counts.values()),
                                  "by_kind": dict(sorted(self.hit_counts.items()))}
        return Analysis(verdict, ms, failures, self.lines, self.bytes, last, ended,
                        self.success_line, duration_s, counts, warnings, self._finish_attempts())

    def _cause_first(self, causes: list[Failure]) -> list[Failure]:
        """The causal chain with its cause first. When the firmware tried several boot options
        and all failed, the cause is in the attempt that got furthest (the last of equals: its
        final try); within it, the earliest message it never got past."""
        if len(causes) < 2 or not self._attempts:
            return causes
        attempt_of = {id(h.failure): h.attempt for h in self._hits}
        # an attempt with only an end in it (the shell the firmware fell back to) explains nothing
        explaining = {attempt_of.get(id(c), -1) for c in causes if c.severity != FATAL}
        groups = sorted(explaining or {attempt_of.get(id(c), -1) for c in causes},
                        key=lambda a: (self._depth[a] if a >= 0 else -1, a))
        best = groups[-1]
        first = next(c for c in causes if attempt_of.get(id(c), -1) == best)
        return [first] + [c for c in causes if c is not first]

    def _warn_kind(self, h: _Hit) -> str:
        """How a message the boot got past is listed: iPXE's DHCP failure on a NIC is a retry when
        the same NIC then got an address, else a NIC that is not the boot NIC."""
        if h.entry is None:
            return h.failure.kind
        kind = h.entry.warn_kind
        if kind == "nic_not_configured":
            net = _NET.search(h.failure.text)
            if net and any(n == net.group(1) and line > h.failure.line for n, line in self._dhcp_ok):
                return "dhcp_retry"
        return kind

    def _end(self, ended: str, last: str | None, timeout_s: float | None, duration_s: float | None,
             explained: bool, any_cause: bool) -> Failure | None:
        """The way the boot ended, as a failure (None when a fatal message already says it)."""
        fmt = {"last": last or "none"}
        if self.lines == 0:
            return Failure("no_output", 0, "no serial output at all", END_HINTS["no_output"], None,
                           severity=FATAL)
        if ended in ("timeout", "stalled"):
            silence = ""
            if self.last_seconds is not None and duration_s is not None:
                silence = f"; the console was silent for the last {duration_s - self.last_seconds:.0f}s"
            what = ("the console stalled after a stall report" if ended == "stalled"
                    else f"no login prompt within {timeout_s or duration_s or 0:.0f}s")
            return Failure("timeout", self.lines, f"{what}{silence}",
                           END_HINTS["timeout"].format(**fmt), self.last_seconds, severity=FATAL)
        if ended == "exit" and not explained:
            return Failure("vm_exited", self.lines, "the VM exited before a login prompt",
                           END_HINTS["vm_exited"].format(**fmt), self.last_seconds, severity=FATAL)
        if ended == "eof" and not any_cause:
            hint = END_HINTS["no_login"].format(**fmt)
            again = [k for k, n in self._fetches.items() if n >= 2]
            if again:
                hint += (f"; {again[0]} was loaded {self._fetches[again[0]]} times: a chain loop "
                         "in the making (see chain_loop)")
            return Failure("no_login", self.lines, "the log ends without a login prompt", hint,
                           self.last_seconds, severity=FATAL)
        return None

    def _finish_attempts(self) -> list[Attempt]:
        out = [Attempt(a.name, a.line, a.seconds) for a in self._attempts]
        kernel = [m.line for n in ("efi_stub", "linux_version") if (m := self.milestones.get(n))]
        for i, a in enumerate(out):
            nxt = out[i + 1] if i + 1 < len(out) else None
            a.end_line = nxt.line - 1 if nxt else self.lines
            end_s = nxt.seconds if nxt else self.last_seconds
            if a.seconds is not None and end_s is not None:
                a.duration_s = round(end_s - a.seconds, 3)
            if any(a.line <= k <= a.end_line for k in kernel) or (
                    self.success_line is not None and a.line <= self.success_line <= a.end_line):
                a.outcome = "booted"
            elif nxt is not None:
                a.outcome = "failed"
        return out


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
