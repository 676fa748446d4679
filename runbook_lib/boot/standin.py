"""A stand-in for carbide-pxe: the two URLs a PXE-booting machine asks for.

``GET /api/v0/pxe/boot?uuid=..&buildarch=..`` answers an iPXE script rendered from a
template (a UKI ``chain``, or ``kernel`` + ``initrd`` + command line);
``GET /public/blobs/internal/<arch>/<file>`` streams an artifact (Content-Length,
single ``Range`` -> 206, never the whole file in memory, nothing outside the
artifact directory). Every request is logged: time, client, method, path, status,
bytes sent, duration, and for the API routes the query parameters carbide's embedded
script sends (``uuid``, ``buildarch``, ``platform``, ``manufacturer``, ``product``,
``serial``; bounded, sanitised). The server runs in a thread of the calling process and
:meth:`StandIn.stop` closes its socket, so nothing is left behind.

As carbide-pxe (the test network): ``netns`` creates the listening socket inside that
network namespace (bound to ``host``, the bridge address), ``known_uuids`` makes
``/api/v0/pxe/boot`` answer only for those machines (an unknown one gets what carbide-pxe
answers when its API knows no such machine interface: a script that prints the error and
``exit 101``, HTTP 200), and ``GET /api/v0/pxe/whoami?uuid=..`` answers a script that
prints what the stand-in knows of the machine.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import parse_qs, unquote, urlsplit

from ..requirements import port_free  # noqa: F401  (re-exported: callers know it here)
from ..sandbox.scripts import KERNEL_CMDLINE
from ..sandbox.scripts import boot_script as sandbox_boot_script

log = logging.getLogger(__name__)

BOOT_PATH = "/api/v0/pxe/boot"
WHOAMI_PATH = "/api/v0/pxe/whoami"
# What carbide's embedded iPXE script sends to /api/v0/pxe/boot (in this order).
CARBIDE_QUERY = ("uuid", "buildarch", "platform", "manufacturer", "product", "serial")
UNKNOWN_UUID_LINE = "carbide-pxe stand-in: unknown machine uuid"
UNKNOWN_UUID_EXIT = 101  # carbide-pxe's exit code when it could not fetch a machine's instructions
MAX_QUERY_KEYS = 16
MAX_QUERY_KEY = 32
MAX_QUERY_VALUE = 128
BLOB_PREFIX = "/public/blobs/internal/"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024

UKI_TEMPLATE = """#!ipxe
echo carbide-pxe stand-in: uuid {uuid} buildarch {buildarch}: chain {uki}
chain {base}/public/blobs/internal/{arch}/{uki} {cmdline}
"""

AUTO_TEMPLATE = """#!ipxe
echo carbide-pxe stand-in: uuid {uuid} buildarch {buildarch} platform ${{platform}}
iseq ${{platform}} efi && goto uefi ||
echo carbide-pxe stand-in: BIOS: kernel {kernel} + initrd {initrd}
kernel {base}/public/blobs/internal/{arch}/{kernel} initrd={initrd} {cmdline} || goto failed
initrd --name {initrd} {base}/public/blobs/internal/{arch}/{initrd} || goto failed
boot || goto failed
:uefi
echo carbide-pxe stand-in: UEFI: chain the UKI {uki}
chain {base}/public/blobs/internal/{arch}/{uki} {cmdline} || goto failed
:failed
echo carbide-pxe stand-in: boot failed, the error is printed above
exit 1
"""

KERNEL_TEMPLATE = """#!ipxe
echo carbide-pxe stand-in: uuid {uuid} buildarch {buildarch}: kernel {kernel} initrd {initrd}
kernel {base}/public/blobs/internal/{arch}/{kernel} {initrd_arg}{cmdline}
{initrd_line}boot
"""


class PortBusy(OSError):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use")
        self.host = host
        self.port = port


_QUERY_VALUE = re.compile(r"[^A-Za-z0-9_.:-]")
_QUERY_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
# What may be echoed inside an iPXE script line: no `$` (expansion), no quotes or `#`.
_ECHO_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:/@()+=-]")


def sanitize_query(query: str) -> dict[str, str]:
    """The query string as {name: first value}: bounded, printable ASCII only.

    At most MAX_QUERY_KEYS names (carbide's six first, then others in order), names of
    [A-Za-z0-9_.-] up to MAX_QUERY_KEY characters, values cut to MAX_QUERY_VALUE with
    control and non-ASCII characters replaced by '?'.
    """
    parsed = parse_qs("&".join(query[:8192].split("&")[:256]), keep_blank_values=True)
    keys = [k for k in CARBIDE_QUERY if k in parsed] + [k for k in parsed if k not in CARBIDE_QUERY]
    out: dict[str, str] = {}
    for k in keys:
        if len(out) >= MAX_QUERY_KEYS:
            break
        if len(k) > MAX_QUERY_KEY or not _QUERY_KEY.match(k):
            continue
        out[k] = _UNPRINTABLE.sub("?", parsed[k][0][:MAX_QUERY_VALUE])
    return out


def echo_safe(value: str, limit: int = 80) -> str:
    """`value` made safe for an iPXE `echo` line (no expansion, no line break)."""
    return _ECHO_UNSAFE.sub("?", value[:limit]) or "-"


@dataclass
class BootScript:
    """What the boot script boots.

    ``mode``: ``auto`` picks by iPXE's ``${platform}``: UEFI chains the UKI with
    :attr:`cmdline` (iPXE passes load options to the UKI, and systemd-stub then uses
    them instead of its embedded command line, so the console must be named),
    BIOS loads kernel + initrd; ``sandbox`` is the sandbox tree's own template;
    ``uki`` chains :attr:`uki`; ``kernel`` loads :attr:`kernel` with :attr:`initrd`
    (None = no initrd).
    """

    mode: str = "auto"
    uki: str = "carbide.efi"
    kernel: str = "carbide.vmlinuz"
    initrd: str | None = "carbide.root"
    cmdline: str = KERNEL_CMDLINE
    arch: str = "x86_64"

    def render(self, base: str, uuid: str, buildarch: str) -> str:
        uuid = _QUERY_VALUE.sub("", uuid)[:64]
        buildarch = _QUERY_VALUE.sub("", buildarch)[:32]
        if self.mode == "sandbox":
            return sandbox_boot_script(f"{base}/public/blobs/internal/{self.arch}",
                                       uuid or "-", buildarch or "-", self.cmdline)
        common = {"base": base, "uuid": uuid or "-", "buildarch": buildarch or "-",
                  "arch": self.arch, "cmdline": self.cmdline}
        if self.mode == "auto":
            return AUTO_TEMPLATE.format(uki=self.uki, kernel=self.kernel,
                                        initrd=self.initrd or "carbide.root", **common)
        if self.mode == "uki":
            return UKI_TEMPLATE.format(uki=self.uki, **common)
        initrd_line = (f"initrd --name {self.initrd} {base}/public/blobs/internal/{self.arch}/"
                       f"{self.initrd}\n" if self.initrd else "")
        return KERNEL_TEMPLATE.format(
            kernel=self.kernel, initrd=self.initrd or "(none)", initrd_line=initrd_line,
            initrd_arg=f"initrd={self.initrd} " if self.initrd else "", **common)


@dataclass
class Request:
    time: str
    seconds: float
    client: str
    method: str
    path: str
    status: int
    bytes: int
    duration_s: float
    range: str | None = None
    query: dict[str, str] | None = None  # the API routes' query parameters (sanitize_query)
    note: str | None = None  # what the stand-in decided, e.g. "unknown machine uuid X"


def _read_request(data: dict) -> Request:
    known = Request.__dataclass_fields__
    return Request(**{k: v for k, v in data.items() if k in known})


@dataclass
class StandIn:
    """Start with :meth:`start` (or ``with``); ``requests`` is the request log."""

    artifacts: Path
    script: BootScript = field(default_factory=BootScript)
    host: str = "127.0.0.1"
    port: int = 8080
    log_path: Path | None = None
    on_request: Callable[[Request], None] | None = None
    requests: list[Request] = field(default_factory=list)
    netns: str | None = None  # listen inside this network namespace (root; the test network)
    known_uuids: frozenset[str] | None = None  # None: every uuid is served (user networking)

    def __post_init__(self) -> None:
        self.artifacts = Path(self.artifacts).resolve()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._lock = threading.Lock()  # guards requests and _log_fh (handler threads, stop())
        self._log_fh: TextIO | None = None
        self._callback_failures = 0
        if self.known_uuids is not None:
            self.known_uuids = frozenset(u.lower() for u in self.known_uuids)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def knows(self, uuid: str) -> bool:
        return self.known_uuids is None or uuid.lower() in self.known_uuids

    def _bind(self, handler: type[BaseHTTPRequestHandler]) -> "_Server":
        if self.netns is None:
            return _Server((self.host, self.port), handler)
        # A socket belongs to the namespace of the thread that created it: create the server
        # in a short-lived thread that first enters the namespace (setns affects only it).
        from .testnet import enter_netns

        box: dict[str, object] = {}

        def create() -> None:
            try:
                enter_netns(str(self.netns))
                box["server"] = _Server((self.host, self.port), handler)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc

        t = threading.Thread(target=create, name=f"standin-bind-{self.netns}", daemon=True)
        t.start()
        t.join(timeout=10)
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        if "server" not in box:
            raise OSError(errno.ETIMEDOUT, f"could not create the stand-in's socket in {self.netns}")
        return box["server"]  # type: ignore[return-value]

    def start(self) -> "StandIn":
        handler = _make_handler(self)
        try:
            server = self._bind(handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortBusy(self.host, self.port) from exc
            if self.netns is not None:
                raise OSError(exc.errno, f"the carbide-pxe stand-in cannot listen on {self.host}:"
                                         f"{self.port} in network namespace {self.netns}: "
                                         f"{exc.strerror or exc}") from exc
            raise
        self.port = server.server_address[1]
        self._server = server
        self._t0 = time.monotonic()
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_fh = open(self.log_path, "a", encoding="utf-8")
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"standin-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        # Handler threads (daemons, not joined) may still be recording: close under their lock.
        with self._lock:
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)
            if self._log_fh is not None:
                self._log_fh.write(json.dumps(asdict(req)) + "\n")
                self._log_fh.flush()
        if self.on_request:
            try:
                self.on_request(req)
            except Exception:  # a display problem must not break serving
                with self._lock:
                    self._callback_failures += 1
                    first = self._callback_failures == 1
                if first:
                    log.exception("the request callback of the carbide-pxe stand-in failed; requests "
                                  "are still served and logged (further failures are not logged)")

    def reset_clock(self, t0: float) -> None:
        """Make request times relative to `t0` (time.monotonic() when the VM started)."""
        self._t0 = t0

    def since_start(self) -> float:
        return time.monotonic() - self._t0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a busy port must fail, not be shared

    def server_bind(self) -> None:
        # SO_REUSEADDR only lets us rebind a port in TIME_WAIT; it never shares a listening port.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        super().server_bind()

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver prints the traceback to stderr; send it to the log instead. A client that
        # drops an idle keep-alive connection (iPXE resets it when it chains on) is no failure.
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            log.debug("a client of the carbide-pxe stand-in reset its connection: %s", client_address)
            return
        log.exception("the carbide-pxe stand-in failed on a request from %s", client_address)


def _make_handler(owner: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "carbide-pxe-standin/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # every request is recorded by _finish instead

        query: dict[str, str] | None = None
        note: str | None = None

        def _finish(self, t0: float, status: int, sent: int, rng: str | None = None) -> None:
            owner.record(Request(
                time=time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}",
                seconds=round(owner.since_start(), 3), client=self.client_address[0],
                method=self.command, path=self.path[:300], status=status, bytes=sent,
                duration_s=round(time.monotonic() - t0, 4), range=rng, query=self.query,
                note=self.note))

        def _simple(self, t0: float, status: int, body: str, ctype: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self._finish(t0, status, len(data) if self.command != "HEAD" else 0)

        def _boot(self, t0: float, q: dict[str, str]) -> None:
            uuid = q.get("uuid", "")
            if owner.known_uuids is not None and not uuid:
                self.note = "no uuid in the query"
                self._simple(t0, 400, "carbide-pxe stand-in: missing uuid (the machine id) in the query\n")
                return
            if not owner.knows(uuid):
                self.note = f"unknown machine uuid {uuid[:64]}"
                log.warning("carbide-pxe stand-in: %s asked to boot unknown machine uuid %r (known: %s)",
                            self.client_address[0], uuid[:64], ", ".join(sorted(owner.known_uuids or ())))
                self._simple(t0, 200, unknown_uuid_script(uuid))
                return
            host = self.headers.get("Host") or f"{owner.host}:{owner.port}"
            self._simple(t0, 200, owner.script.render(f"http://{host}", uuid, q.get("buildarch", "")))

        def _whoami(self, t0: float, q: dict[str, str]) -> None:
            self._simple(t0, 200, whoami_script(owner, q.get("uuid", ""), self.client_address[0]))

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            t0 = time.monotonic()
            self.query = self.note = None  # one handler serves every request of a keep-alive connection
            try:
                parts = urlsplit(self.path)
                if parts.path in (BOOT_PATH, WHOAMI_PATH):
                    self.query = sanitize_query(parts.query)
                    if parts.path == BOOT_PATH:
                        self._boot(t0, self.query)
                    else:
                        self._whoami(t0, self.query)
                elif parts.path.startswith(BLOB_PREFIX):
                    self._blob(t0, unquote(parts.path[len(BLOB_PREFIX):]))
                else:
                    self._simple(t0, 404, f"not found: {parts.path}\n")
            except (BrokenPipeError, ConnectionResetError):
                self._finish(t0, 499, 0)

        def _blob(self, t0: float, rel: str) -> None:
            pieces = rel.split("/")
            if (len(pieces) != 2 or pieces[0] != owner.script.arch
                    or not _SAFE_NAME.match(pieces[1])):
                self._simple(t0, 403 if ".." in rel or rel.startswith("/") else 404,
                             f"refused: {rel}\n")
                return
            path = (owner.artifacts / pieces[1]).resolve()
            if path.parent != owner.artifacts or not path.is_file():
                self._simple(t0, 404, f"not found: {rel}\n")
                return
            size = path.stat().st_size
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            if rng:
                m = _RANGE.match(rng.strip())
                if m and (m.group(1) or m.group(2)):
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    else:
                        start = max(0, size - int(m.group(2)))
                    if start > end or start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        self._finish(t0, 416, 0, rng)
                        return
                    status = 206
            length = end - start + 1 if size else 0
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            sent = 0
            if self.command != "HEAD":
                with open(path, "rb") as fh:
                    fh.seek(start)
                    remaining = length
                    try:
                        while remaining > 0:
                            buf = fh.read(min(CHUNK, remaining))
                            if not buf:
                                break
                            self.wfile.write(buf)
                            sent += len(buf)
                            remaining -= len(buf)
                    except (BrokenPipeError, ConnectionResetError):
                        self._finish(t0, 499, sent, rng)
                        return
            self._finish(t0, status, sent, rng)

    return Handler


def unknown_uuid_script(uuid: str) -> str:
    """What the stand-in answers for a machine it does not know (as carbide-pxe: 200, exit 101)."""
    return ("#!ipxe\n"
            f"echo {UNKNOWN_UUID_LINE} {echo_safe(uuid, 64)}: no machine interface with this id "
            "is known here (the UUID in DHCP option 43.70 must be one carbide knows) ||\n"
            f"exit {UNKNOWN_UUID_EXIT} ||\n")


def whoami_script(owner: StandIn, uuid: str, client: str) -> str:
    """An iPXE script printing what the stand-in knows of machine `uuid`."""
    with owner._lock:
        boots = [r for r in owner.requests
                 if r.query and r.query.get("uuid", "").lower() == uuid.lower() and r.path.startswith(BOOT_PATH)]
    known = ("yes" if owner.known_uuids is not None and owner.knows(uuid) else
             "no (boot requests are refused)" if owner.known_uuids is not None else
             "not checked (every uuid is served)")
    lines = ["#!ipxe", "echo carbide-pxe stand-in: whoami",
             f"echo UUID......... {echo_safe(uuid, 64)}",
             f"echo Known........ {known}",
             f"echo Client IP.... {echo_safe(client)}",
             f"echo Boot requests {len(boots)}"]
    if boots:
        last = boots[-1].query or {}
        for k in CARBIDE_QUERY[1:]:
            lines.append(f"echo {k.capitalize():.<12} {echo_safe(last.get(k, ''))}")
    return "\n".join(lines) + "\n"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def read_request_log(path: str | os.PathLike[str]) -> list[Request]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(_read_request(json.loads(line)))
    return out
