"""dnsmasq's ``--log-dhcp`` output as events: who asked, what was offered, what TFTP sent.

dnsmasq logs one DHCP transaction as several lines keyed by the transaction id (xid):
the client's classes (``vendor class:``, ``user class:``) come *before* the
``DHCPDISCOVER(iface) ...`` line, the matched ``tags:`` right after it, and what the
reply carried (``bootfile name:``, ``next server:``, ``sent size: .. option: ..``) after
the ``DHCPOFFER``/``DHCPACK`` line. :func:`parse_dnsmasq_log` folds those lines into one
:class:`DhcpEvent` per message; TFTP lines (``sent``, ``not found``, ``error``) become
events of kind ``tftp``.

Lines may carry our ``[  12.345] `` stamp (seconds; :func:`shell.spawn`'s ``stamp=True``,
or the test network's own); a ``runbook-testnet: VM started`` marker line moves the
origin of those seconds to the VM's start, so a saved log parses to the same times as
the live one. Plain dnsmasq prefixes (``dnsmasq-dhcp:``, ``dnsmasq-dhcp[123]:``, syslog's
``Jan  2 03:04:05 host dnsmasq-dhcp[123]:``) are all accepted.

dnsmasq shows at most the first bytes of a long option (``46:24:36:61:...``): option 43's
sub-option 70 (carbide's machine UUID) is decoded from what is visible and marked
incomplete; :func:`parse_dnsmasq_log` completes it from ``known_uuids`` (the UUID the
test network handed out) when the visible prefix and the length agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterable

CLOCK_MARKER = "runbook-testnet: VM started"

_STAMP = re.compile(r"^\[\s*(-?\d+(?:\.\d+)?)\]\s?")
_SYSLOG_DATE = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?:\S+ )?")
_PREFIX = re.compile(r"^dnsmasq(-dhcp|-tftp)?(?:\[\d+\])?: ?(.*)$")
_XID = re.compile(r"^(\d+) (.*)$")
_MESSAGE = re.compile(r"^DHCP(DISCOVER|OFFER|REQUEST|ACK|NAK|INFORM|RELEASE|DECLINE)"
                      r"(?:\(([^)]*)\))?\s*(.*)$")
_SENT = re.compile(r"^sent size:\s*(\d+) option:\s*(\d+) (\S+)?\s+(.*)$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5,19}$")
_ARCH = re.compile(r"Arch:(\d{5})")
_TFTP_SENT = re.compile(r"^sent (\S+) to (\S+)$")
_TFTP_NOT_FOUND = re.compile(r"^file (\S+) not found(?: for (\S+))?$")
_TFTP_ERROR = re.compile(r"^error (\d+) (.*?) received from (\S+)$")
_TFTP_FAILED = re.compile(r"^failed sending (\S+) to (\S+)$")

REQUESTS = frozenset({"DHCPDISCOVER", "DHCPREQUEST", "DHCPINFORM", "DHCPRELEASE", "DHCPDECLINE"})
REPLIES = frozenset({"DHCPOFFER", "DHCPACK", "DHCPNAK"})
SUBOPT_MACHINE_UUID = 70  # carbide's option 43 sub-option: the machine (interface) UUID
MAX_TEXT = 300

# DHCP option 93 (client system architecture, RFC 4578 + IANA registry): the ones that matter here.
ARCH_NAMES = {0: "BIOS", 6: "UEFI x86", 7: "x86-64 UEFI", 9: "x86-64 UEFI", 10: "ARM32 UEFI",
              11: "ARM64 UEFI", 15: "x86 UEFI HTTP", 16: "x86-64 UEFI HTTP", 19: "ARM64 UEFI HTTP"}


@dataclass
class DhcpEvent:
    """One DHCP message (``DHCPDISCOVER`` ... ``DHCPNAK``) or one TFTP outcome (``tftp``).

    For a request the client's fields are filled (MAC, vendor/user class, arch); a reply
    also carries the client's classes (from the same transaction) and what it was given:
    ``ip``, ``bootfile``, ``next_server`` and ``opt43_70`` (None = not sent).
    ``arch`` is option 93 as a decimal string ("0", "7", "16"; "" unknown), read from the
    vendor class (``PXEClient:Arch:00007``). A ``tftp`` event has ``bootfile`` = the file,
    ``ip`` = the client and ``detail`` = ``sent`` / ``not found`` / ``error N message`` /
    ``failed``.
    """

    seconds: float | None
    xid: str
    kind: str
    mac: str = ""
    ip: str = ""
    vendor_class: str = ""
    user_class: str = ""
    arch: str = ""
    bootfile: str = ""
    next_server: str = ""
    opt43_70: str | None = None
    text: str = ""
    interface: str = ""
    tags: tuple[str, ...] = ()
    opt43_70_complete: bool = True  # False: dnsmasq showed only the first bytes (see module doc)
    sent_vendor_class: str = ""  # option 60 in a reply (HTTP boot needs "HTTPClient")
    detail: str = ""

    @property
    def is_reply(self) -> bool:
        return self.kind in REPLIES

    @property
    def ipxe(self) -> bool:
        """The client is iPXE (user class iPXE, or dnsmasq matched our ``ipxe`` tag)."""
        return self.user_class == "iPXE" or "ipxe" in self.tags

    @property
    def arch_name(self) -> str:
        if not self.arch:
            return ""
        return ARCH_NAMES.get(int(self.arch), f"arch {self.arch}")

    def client(self) -> str:
        """`iPXE, PXEClient:Arch:00007` (vendor class without its UNDI version)."""
        vc = self.vendor_class.split(":UNDI", 1)[0]
        return ", ".join(x for x in (self.user_class, vc) if x)

    def summary(self) -> str:
        """One line for a timeline."""
        if self.kind == "tftp":
            name = self.bootfile.rsplit("/", 1)[-1] or self.bootfile
            who = f" to {self.ip}" if self.detail == "sent" else (f" for {self.ip}" if self.ip else "")
            if self.detail == "sent":
                return f"TFTP sent {name}{who}"
            if not name:
                return f"TFTP {self.detail}" + (f" from {self.ip}" if self.ip else "")
            return f"TFTP {self.detail}: {name}{who}"
        client = self.client()
        cls = f" ({client})" if client else ""
        if not self.is_reply:
            addr = f" {self.ip}" if self.ip else ""
            return f"{self.kind}{addr} from {self.mac or '?'}{cls}"
        out = f"{self.kind} {self.ip or '-'} to {self.mac or '?'}{cls}"
        if self.kind == "DHCPNAK":
            return out + (f": {self.detail}" if self.detail else "")
        if self.bootfile:
            out += f" bootfile {self.bootfile}"
        else:
            out += " no bootfile"
        if self.sent_vendor_class:
            out += f", option 60 {self.sent_vendor_class}"
        if self.opt43_70 is None:
            out += ", 43.70 not sent"
        else:
            out += f", 43.70 = {self.opt43_70}" + ("" if self.opt43_70_complete else "...")
        return out

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["tags"] = list(self.tags)
        d["summary"] = self.summary()
        return d


@dataclass
class _Txn:
    """What dnsmasq said about a transaction's client before and around its request line."""

    vendor_class: str = ""
    user_class: str = ""
    client: DhcpEvent | None = None
    pending: dict[str, str] = field(default_factory=dict)


def decode_vendor_encap(value: str) -> dict[int, tuple[bytes, int]]:
    """Option 43 as dnsmasq logs it (``46:24:36:61...``): {sub-option: (visible bytes, length)}.

    ``length`` is the sub-option's declared length; fewer visible bytes mean dnsmasq cut
    the option short. Unparseable input gives {}.
    """
    hexpart = value.strip()
    if hexpart.endswith("..."):
        hexpart = hexpart[:-3]
    try:
        data = bytes(int(b, 16) for b in hexpart.split(":") if b)
    except ValueError:
        return {}
    out: dict[int, tuple[bytes, int]] = {}
    i = 0
    while i + 1 < len(data):
        code, length = data[i], data[i + 1]
        if code == 255:
            break
        out[code] = (data[i + 2:i + 2 + length], length)
        i += 2 + length
    if i < len(data) and i + 1 >= len(data) and data[i] not in (0, 255):
        out.setdefault(data[i], (b"", -1))  # a code whose length byte was cut off
    return out


def _machine_uuid(value: str) -> tuple[str, bool] | None:
    sub = decode_vendor_encap(value).get(SUBOPT_MACHINE_UUID)
    if sub is None:
        return None
    visible, length = sub
    text = visible.decode("ascii", "replace")
    return text, length >= 0 and len(visible) >= length


_HEX_BYTES = re.compile(r"^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})+(?:\.\.\.)?$")


def _maybe_hex_text(value: str) -> str:
    """dnsmasq logs a forced string option as hex bytes (``48:54:54:50...``): show it as text."""
    if not _HEX_BYTES.match(value):
        return value
    cut = value.endswith("...")
    raw = bytes(int(b, 16) for b in value.rstrip(".").split(":"))
    if not all(0x20 <= b < 0x7f for b in raw):
        return value
    return raw.decode("ascii") + ("..." if cut else "")


def _split_line(line: str) -> tuple[float | None, str, str] | None:
    """(stamp seconds, facility ('', '-dhcp', '-tftp'), message), or None for other lines."""
    line = line.rstrip("\r\n")
    seconds = None
    m = _STAMP.match(line)
    if m:
        seconds = float(m.group(1))
        line = line[m.end():]
    if line.startswith(CLOCK_MARKER):
        return seconds, "marker", ""
    m = _SYSLOG_DATE.match(line)
    if m and line[m.end():].startswith("dnsmasq"):
        line = line[m.end():]
    m = _PREFIX.match(line)
    if not m:
        return None
    return seconds, m.group(1) or "", m.group(2).strip()


def _complete_uuid(ev: DhcpEvent, known: list[str]) -> None:
    if ev.opt43_70 is None or ev.opt43_70_complete:
        return
    for u in known:
        if u.lower().startswith(ev.opt43_70.lower()) and len(ev.opt43_70) <= len(u):
            ev.opt43_70, ev.opt43_70_complete = u, True
            return


def parse_dnsmasq_log(lines: Iterable[str], known_uuids: Iterable[str] = ()) -> list[DhcpEvent]:
    """The DHCP and TFTP events in a dnsmasq ``--log-dhcp`` log, in order.

    Pure. Lines that are not dnsmasq's (a ``$ command`` header, blank lines) are skipped.
    With a ``runbook-testnet: VM started`` marker, stamped seconds are made relative to
    the (last) marker's stamp. ``known_uuids`` completes a cut-off 43.70 (see module doc).
    """
    split = [s for s in (_split_line(ln) for ln in lines) if s is not None]
    origin = 0.0
    for seconds, facility, _ in split:
        if facility == "marker" and seconds is not None:
            origin = seconds
    known = [u for u in known_uuids if u]
    events: list[DhcpEvent] = []
    txns: dict[str, _Txn] = {}
    last: dict[str, DhcpEvent] = {}  # the latest event of each xid (reply lines attach to it)

    def rel(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds - origin, 3)

    for seconds, facility, msg in split:
        if facility == "-tftp":
            ev = _tftp_event(rel(seconds), msg)
            if ev is not None:
                events.append(ev)
            continue
        if facility != "-dhcp":
            continue
        m = _XID.match(msg)
        if not m:
            continue
        xid, body = m.group(1), m.group(2).strip()
        txn = txns.setdefault(xid, _Txn())
        if body.startswith("available DHCP range"):
            txn.pending = {}
        elif body.startswith("vendor class:"):
            txn.pending["vendor_class"] = body.split(":", 1)[1].strip()
        elif body.startswith("user class:"):
            txn.pending["user_class"] = body.split(":", 1)[1].strip()
        elif body.startswith("tags:"):
            ev = last.get(xid)
            if ev is not None:
                ev.tags = tuple(t.strip() for t in body[5:].split(",") if t.strip())
        elif body.startswith("bootfile name:"):
            ev = last.get(xid)
            if ev is not None and ev.is_reply:
                ev.bootfile = body.split(":", 1)[1].strip()
        elif body.startswith("next server:"):
            ev = last.get(xid)
            if ev is not None and ev.is_reply:
                ev.next_server = body.split(":", 1)[1].strip()
        elif body.startswith("sent size:"):
            ev = last.get(xid)
            sm = _SENT.match(body)
            if ev is None or not ev.is_reply or not sm:
                continue
            code, value = int(sm.group(2)), sm.group(4).strip()
            if code == 67:
                ev.bootfile = value
            elif code == 66 and not ev.next_server:
                ev.next_server = value
            elif code == 60:
                ev.sent_vendor_class = _maybe_hex_text(value)
            elif code == 43:
                found = _machine_uuid(value)
                if found is not None:
                    ev.opt43_70, ev.opt43_70_complete = found
                    _complete_uuid(ev, known)
        else:
            mm = _MESSAGE.match(body)
            if not mm:
                continue
            kind = "DHCP" + mm.group(1)
            iface, rest = mm.group(2) or "", mm.group(3).strip()
            ip = mac = ""
            extra: list[str] = []
            for tok in rest.split():
                if not ip and _IPV4.match(tok):
                    ip = tok
                elif not mac and _MAC.match(tok):
                    mac = tok.lower()
                else:
                    extra.append(tok)
            ev = DhcpEvent(seconds=rel(seconds), xid=xid, kind=kind, mac=mac, ip=ip,
                           interface=iface, text=body[:MAX_TEXT], detail=" ".join(extra)[:MAX_TEXT])
            if kind in REQUESTS:
                txn.vendor_class = txn.pending.get("vendor_class", "")
                txn.user_class = txn.pending.get("user_class", "")
                txn.pending = {}
                txn.client = ev
            ev.vendor_class, ev.user_class = txn.vendor_class, txn.user_class
            am = _ARCH.search(ev.vendor_class)
            if am:
                ev.arch = str(int(am.group(1)))
            if kind in REPLIES and txn.client is not None:
                ev.tags = txn.client.tags
                if not ev.mac:
                    ev.mac = txn.client.mac
            events.append(ev)
            last[xid] = ev
    return events


def _tftp_event(seconds: float | None, msg: str) -> DhcpEvent | None:
    for rx, detail in ((_TFTP_SENT, "sent"), (_TFTP_NOT_FOUND, "not found"),
                       (_TFTP_FAILED, "failed")):
        m = rx.match(msg)
        if m:
            return DhcpEvent(seconds=seconds, xid="", kind="tftp", bootfile=m.group(1),
                             ip=m.group(2) or "", detail=detail, text=msg[:MAX_TEXT])
    m = _TFTP_ERROR.match(msg)
    if m:
        return DhcpEvent(seconds=seconds, xid="", kind="tftp", ip=m.group(3),
                         detail=f"error {m.group(1)} {m.group(2)}", text=msg[:MAX_TEXT])
    return None


def with_clock(events: list[DhcpEvent], offset: float) -> list[DhcpEvent]:
    """Copies of `events` with `offset` subtracted from their seconds."""
    return [replace(e, seconds=None if e.seconds is None else round(e.seconds - offset, 3))
            for e in events]
