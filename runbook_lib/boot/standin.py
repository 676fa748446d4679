"""A stand-in for carbide-pxe: the two URLs a PXE-booting machine asks for.

``GET /api/v0/pxe/boot?uuid=..&buildarch=..`` answers an iPXE script rendered from a
template (a UKI ``chain``, or ``kernel`` + ``initrd`` + command line);
``GET /public/blobs/internal/<arch>/<file>`` streams an artifact (Content-Length,
single ``Range`` -> 206, never the whole file in memory, nothing outside the
artifact directory). Every request is logged: time, client, method, path, status,
bytes sent and duration. The server runs in a thread of the calling process and
:meth:`StandIn.stop` closes its socket, so nothing is left behind.
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

    def __post_init__(self) -> None:
        self.artifacts = Path(self.artifacts).resolve()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self._lock = threading.Lock()  # guards requests and _log_fh (handler threads, stop())
        self._log_fh: TextIO | None = None
        self._callback_failures = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "StandIn":
        handler = _make_handler(self)
        try:
            server = _Server((self.host, self.port), handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortBusy(self.host, self.port) from exc
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
        # socketserver prints the traceback to stderr; send it to the log instead.
        log.exception("the carbide-pxe stand-in failed on a request from %s", client_address)


def _make_handler(owner: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "carbide-pxe-standin/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # every request is recorded by _finish instead

        def _finish(self, t0: float, status: int, sent: int, rng: str | None = None) -> None:
            owner.record(Request(
                time=time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}",
                seconds=round(owner.since_start(), 3), client=self.client_address[0],
                method=self.command, path=self.path[:300], status=status, bytes=sent,
                duration_s=round(time.monotonic() - t0, 4), range=rng))

        def _simple(self, t0: float, status: int, body: str, ctype: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self._finish(t0, status, len(data) if self.command != "HEAD" else 0)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            t0 = time.monotonic()
            try:
                parts = urlsplit(self.path)
                if parts.path == BOOT_PATH:
                    q = parse_qs(parts.query)
                    host = self.headers.get("Host") or f"{owner.host}:{owner.port}"
                    script = owner.script.render(f"http://{host}", q.get("uuid", [""])[0],
                                                 q.get("buildarch", [""])[0])
                    self._simple(t0, 200, script)
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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def read_request_log(path: str | os.PathLike[str]) -> list[Request]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(Request(**json.loads(line)))
    return out
