"""A carbide-like test network on one machine: a network namespace, bridge ``carbide0``, a tap
for QEMU, and dnsmasq inside it playing carbide-dhcp.

carbide's iPXE chains to carbide-pxe only when DHCP hands it the machine UUID in option 43
sub-option 70 (``${43.70}``); QEMU's user networking cannot, so this network can. What each
client gets (dnsmasq tags, :func:`dnsmasq_argv`):

- BIOS (option 93 arch 0): ``ipxe.kpxe`` over TFTP, whatever its user class (QEMU's NIC ROM is
  itself iPXE: handing it an HTTP URL would skip ``ipxe.kpxe`` altogether);
- x86-64 UEFI PXE (arch 7/9; ``uefi_boot="pxe"``): ``ipxe.efi`` over TFTP; with
  ``uefi_boot="http"`` no boot file, so only the firmware's HTTP boot can load iPXE;
- UEFI HTTP boot (vendor class ``HTTPClient``, arch 16): option 60 ``HTTPClient`` and the URL
  ``http://<bridge ip>:<port>/public/blobs/internal/<arch>/ipxe.efi``;
- iPXE (option 175 present, or user class ``iPXE``): option 43 sub-option 70 = the machine
  UUID (unless withheld), next-server = the bridge address.

When several ``dhcp-boot`` lines match, dnsmasq uses the one given *last* (measured with
dnsmasq 2.90); the lines are ordered so the most specific (HTTP boot) comes last, and the
tags are disjoint by architecture anyway.

Everything lives in the namespace ``crbtn-<pid>-<4 hex>``: deleting it removes bridge and tap.
A namespace whose owner pid is gone is removed (with whatever still runs in it: only our
dnsmasq or qemu can) by the next :meth:`TestNet.start`. Needs root.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .. import shell
from .dhcplog import CLOCK_MARKER, DhcpEvent, parse_dnsmasq_log

__all__ = ["PREFIX", "BRIDGE", "TAP", "TestNetConfig", "TestNet", "TestNetError", "DhcpEvent",
           "parse_dnsmasq_log", "privileges_problem", "cleanup_stale", "dnsmasq_argv",
           "option43_hex", "namespace_exists", "list_namespaces", "enter_netns"]

log = logging.getLogger(__name__)

PREFIX = "crbtn"
BRIDGE, TAP = "carbide0", "tap0"
NETNS_DIR = Path("/run/netns")
IP_TIMEOUT_S = 15.0
DNSMASQ_READY_S = 10.0
_NAME = re.compile(r"^(?P<prefix>[a-z0-9]+)-(?P<pid>\d+)-[0-9a-f]{4}$")
BLOB_PATH = "/public/blobs/internal"

# Option 93 codes per iPXE architecture: (UEFI PXE, UEFI HTTP boot), RFC 4578 / IANA.
ARCH_CODES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "x86_64": ((7, 9), (16,)),
    "aarch64": ((11,), (19,)),
}
BIOS_CODE = 0


class TestNetError(RuntimeError):
    """The test network could not be set up (the environment's fault: ERROR)."""

    __test__ = False  # not a pytest class

    def __init__(self, cause: str, fix: str = "", tail: list[str] | None = None) -> None:
        super().__init__(cause + (f"; fix: {fix}" if fix else ""))
        self.cause = cause
        self.fix = fix
        self.tail = list(tail or [])


@dataclass
class TestNetConfig:
    """What the test network serves. ``machine_uuid=None`` withholds option 43.70."""

    __test__ = False

    artifacts: Path
    log_dir: Path
    arch: str = "x86_64"
    bridge_ip: str = "192.168.240.1"
    prefix_len: int = 24
    dhcp_range: tuple[str, str] = ("192.168.240.10", "192.168.240.100")
    port: int = 8080
    machine_uuid: str | None = None
    uefi_boot: str = "pxe"  # "pxe" | "http"
    lease_time: str = "1h"

    def __post_init__(self) -> None:
        self.artifacts = Path(self.artifacts)
        self.log_dir = Path(self.log_dir)
        if self.uefi_boot not in ("pxe", "http"):
            raise ValueError(f"uefi_boot must be 'pxe' or 'http', not {self.uefi_boot!r}")
        if self.arch not in ARCH_CODES:
            raise ValueError(f"arch must be one of {', '.join(ARCH_CODES)}, not {self.arch!r}")
        net = self.network
        for a in (self.bridge_ip, *self.dhcp_range):
            if ipaddress.ip_address(a) not in net:
                raise ValueError(f"{a} is not in {net}")
        if self.machine_uuid is not None and not re.fullmatch(r"[\x21-\x7e]{1,255}", self.machine_uuid):
            raise ValueError("machine_uuid must be 1-255 printable ASCII characters without spaces")
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_interface(f"{self.bridge_ip}/{self.prefix_len}").network  # type: ignore[return-value]

    @property
    def http_boot_url(self) -> str:
        return f"http://{self.bridge_ip}:{self.port}{BLOB_PATH}/{self.arch}/ipxe.efi"

    @property
    def standin_url(self) -> str:
        return f"http://{self.bridge_ip}:{self.port}"


def option43_hex(value: str, sub_option: int = 70) -> str:
    """Option 43 carrying one sub-option, in dnsmasq's hex form: ``46:24:36:61:...``."""
    data = value.encode("ascii")
    if len(data) > 255:
        raise ValueError("a sub-option holds at most 255 bytes")
    return ":".join(f"{b:02x}" for b in (sub_option, len(data), *data))


def dnsmasq_argv(cfg: TestNetConfig, log_dir: Path) -> list[str]:
    """dnsmasq as carbide-dhcp for `cfg` (pure). Runs in the foreground, logs to stderr."""
    log_dir = Path(log_dir)
    efi_codes, http_codes = ARCH_CODES[cfg.arch]
    argv = [
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
        f"--interface={BRIDGE}", "--bind-interfaces", "--except-interface=lo",
        "--user=root", "--group=root",  # TFTP reads the artifacts as root (they may be in /root)
        "--log-dhcp", "--log-facility=-",
        f"--dhcp-range={cfg.dhcp_range[0]},{cfg.dhcp_range[1]},{cfg.network.netmask},{cfg.lease_time}",
        "--dhcp-authoritative",
        # No ICMP probe of an address before offering it: that probe holds the first OFFER back
        # ~3 s; nothing else lives on this private bridge (carbide-dhcp does not probe either).
        "--no-ping",
        f"--dhcp-leasefile={log_dir / 'dnsmasq.leases'}",
        f"--pid-file={log_dir / 'dnsmasq.pid'}",
        "--enable-tftp", f"--tftp-root={Path(cfg.artifacts)}",
        # Who is who (tags).
        "--dhcp-match=set:ipxe,175", "--dhcp-userclass=set:ipxe,iPXE",
        f"--dhcp-match=set:bios,option:client-arch,{BIOS_CODE}",
        *[f"--dhcp-match=set:efi,option:client-arch,{c}" for c in efi_codes],
        "--dhcp-vendorclass=set:httpclient,HTTPClient",
        *[f"--dhcp-match=set:httpclient,option:client-arch,{c}" for c in http_codes],
        # First stage. dnsmasq uses the LAST matching dhcp-boot: most specific last.
        f"--dhcp-boot=tag:bios,ipxe.kpxe,,{cfg.bridge_ip}",
    ]
    if cfg.uefi_boot == "pxe":
        argv.append(f"--dhcp-boot=tag:efi,tag:!httpclient,ipxe.efi,,{cfg.bridge_ip}")
    argv += [
        f"--dhcp-boot=tag:httpclient,{cfg.http_boot_url}",
        "--dhcp-option-force=tag:httpclient,60,HTTPClient",
    ]
    if cfg.machine_uuid is not None:
        argv.append(f"--dhcp-option-force=tag:ipxe,43,{option43_hex(cfg.machine_uuid)}")
    return argv


def privileges_problem() -> tuple[str, str] | None:
    """(cause, fix) when this machine cannot run a test network; None when it can."""
    if os.geteuid() != 0:
        return ("the test network needs root (a network namespace, a bridge and a tap), and this "
                f"process runs as uid {os.geteuid()}",
                "run as root: sudo .venv/bin/runbook boot -p network testnet")
    missing = [(tool, pkg) for tool, pkg in (("ip", "iproute2"), ("dnsmasq", "dnsmasq-base"))
               if shutil.which(tool) is None]
    if missing:
        return (f"the test network needs {' and '.join(t for t, _ in missing)}, not installed",
                f"apt-get install {' '.join(p for _, p in missing)}")
    return None


def _ip(argv: list[str], what: str, input: str | None = None) -> shell.RunResult:  # noqa: A002
    rr = shell.run(["ip", *argv], timeout=IP_TIMEOUT_S, tail_lines=50, input=input)
    if not rr.ok:
        raise TestNetError(f"{what} failed: {shell.quote(rr.argv)}: "
                           f"{rr.tail_text(5).strip() or f'exit code {rr.returncode}'}",
                           "check that this kernel has network namespaces, bridges and tun/tap "
                           "(modprobe tun bridge) and that /run/netns is writable", rr.tail)
    return rr


def list_namespaces() -> list[str]:
    """Named network namespaces (``ip netns add``)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def namespace_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_pids(name: str) -> list[int]:
    rr = shell.run(["ip", "netns", "pids", name], timeout=IP_TIMEOUT_S, tail_lines=10000)
    return [int(x) for x in rr.tail if x.strip().isdigit()] if rr.ok else []


def _kill_pids(pids: Iterable[int], grace: float = 3.0) -> None:
    pids = [p for p in pids if p != os.getpid()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            pids = [p for p in pids if _pid_alive(p) and not _zombie(p)]
            if not pids:
                return
            time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] == b"Z"


def _remove_namespace(name: str) -> list[str]:
    """Kill what runs inside `name`, then delete it; what could not be removed (described)."""
    left: list[str] = []
    pids = _netns_pids(name)
    if pids:
        _kill_pids(pids)
        still = [p for p in _netns_pids(name) if not _zombie(p)]
        left += [f"pid {p} ({shell._cmdline(p)}) still runs in namespace {name}" for p in still]
    rr = shell.run(["ip", "netns", "del", name], timeout=IP_TIMEOUT_S, tail_lines=20)
    if not rr.ok and namespace_exists(name):
        left.append(f"namespace {name} could not be deleted: {rr.tail_text(3).strip()}")
    elif namespace_exists(name):
        left.append(f"namespace {name} is still listed after ip netns del")
    return left


def cleanup_stale(prefix: str = PREFIX) -> list[str]:
    """Remove namespaces ``<prefix>-<pid>-<hex>`` whose owner pid is gone; the names removed.

    What still runs inside such a namespace (a dnsmasq or qemu of a killed run: nothing
    else joins our namespaces) is killed first.
    """
    removed = []
    for name in list_namespaces():
        m = _NAME.match(name)
        if not m or m.group("prefix") != prefix or _pid_alive(int(m.group("pid"))):
            continue
        left = _remove_namespace(name)
        if left:
            log.warning("stale test network %s not fully removed: %s", name, "; ".join(left))
        else:
            log.info("removed the stale test network %s (its run, pid %s, is gone)", name, m.group("pid"))
            removed.append(name)
    return removed


CLONE_NEWNET = 0x40000000


def enter_netns(name: str) -> None:
    """Move the *calling thread* into network namespace `name` (setns(2); root only).

    Sockets created afterwards by this thread belong to that namespace, and stay there
    when used from any thread. Use it in a short-lived thread of its own.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({NETNS_DIR / name}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class TestNet:
    """One run's test network. ``with TestNet(cfg) as tn:`` or start()/stop()."""

    __test__ = False

    cfg: TestNetConfig
    name: str = ""
    leftovers: list[str] = field(default_factory=list)
    stale_removed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(2)}"
        self._proc: shell.Proc | None = None
        self._lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._t0 = time.monotonic()
        self._created = False
        self.setup_s: float | None = None

    @property
    def log_path(self) -> Path:
        return self.cfg.log_dir / "dnsmasq.log"

    def exec_argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def _on_line(self, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._lines.append((now, text))
        if "TFTP root is" in text:
            self._ready.set()

    def start(self) -> "TestNet":
        problem = privileges_problem()
        if problem:
            raise TestNetError(*problem)
        t_start = time.monotonic()
        try:
            self.stale_removed = cleanup_stale()
            if not self.cfg.artifacts.is_dir():
                raise TestNetError(f"the TFTP root {self.cfg.artifacts} is not a directory",
                                   "build the artifacts first (step 2) or set artifacts_dir")
            self.cfg.log_dir.mkdir(parents=True, exist_ok=True)
            _ip(["netns", "add", self.name], f"creating the network namespace {self.name}")
            self._created = True
            batch = "\n".join([
                "link set lo up",
                f"link add {BRIDGE} type bridge",
                f"addr add {self.cfg.bridge_ip}/{self.cfg.prefix_len} dev {BRIDGE}",
                f"link set {BRIDGE} up",
                f"tuntap add dev {TAP} mode tap",
                f"link set {TAP} master {BRIDGE}",
                f"link set {TAP} up",
            ]) + "\n"
            _ip(["-n", self.name, "-batch", "-"], f"creating bridge {BRIDGE} and tap {TAP} in {self.name}",
                input=batch)
            self._start_dnsmasq()
        except BaseException:
            self.stop()
            raise
        self.setup_s = round(time.monotonic() - t_start, 3)
        return self

    def _start_dnsmasq(self) -> None:
        self._ready.clear()
        for stale in ("dnsmasq.pid",):
            (self.cfg.log_dir / stale).unlink(missing_ok=True)
        self._proc = shell.spawn(self.exec_argv(dnsmasq_argv(self.cfg, self.cfg.log_dir)),
                                 log_path=self.log_path, on_line=self._on_line, stamp=True)
        deadline = time.monotonic() + DNSMASQ_READY_S
        while not self._ready.wait(0.02):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                died = self._proc.poll() is not None
                tail = list(self._proc.tail)[-15:]
                self._proc.stop(grace=1.0)
                last = next((ln for ln in reversed(tail) if ln.strip()), "no output")
                raise TestNetError(
                    (f"dnsmasq exited (code {self._proc.popen.returncode}) before it was ready: {last}"
                     if died else f"dnsmasq was not ready within {DNSMASQ_READY_S:.0f} s: {last}"),
                    f"see {self.log_path}; another DHCP server or a wrong TFTP root is the usual cause",
                    tail)

    @property
    def dhcp_running(self) -> bool:
        return self._proc is not None and self._proc.running()

    @property
    def dnsmasq_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop_dhcp(self) -> None:
        """Stop dnsmasq only (the network stays): a VM started now gets no DHCP offer."""
        if self._proc is not None:
            self._proc.stop(grace=2.0)
            if self._proc.running():
                self.leftovers.append(f"dnsmasq pid {self._proc.pid} did not stop")

    def stop(self) -> None:
        """dnsmasq, then the namespace (bridge and tap with it). Idempotent."""
        self.stop_dhcp()
        self._proc = None
        if self._created or namespace_exists(self.name):
            if namespace_exists(self.name):
                pids = _netns_pids(self.name)
                if pids:  # the caller's qemu should be gone by now; whatever is left is ours
                    self.leftovers += [f"pid {p} ({shell._cmdline(p)}) was still running in "
                                       f"{self.name} at stop (killed)" for p in pids]
                self.leftovers += _remove_namespace(self.name)
            self._created = False

    def __enter__(self) -> "TestNet":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_clock(self, t0: float) -> None:
        """Event seconds become relative to `t0` (time.monotonic() when the VM started)."""
        self._t0 = t0
        proc = self._proc
        if proc is not None and self.log_path.exists():
            try:
                with open(self.log_path, "a", encoding="utf-8") as fh:
                    fh.write(f"[{t0 - proc.started:9.3f}] {CLOCK_MARKER} "
                             "(event times are relative to this line)\n")
            except OSError as exc:
                log.warning("cannot mark the VM start in %s: %s", self.log_path, exc)

    def dhcp_events(self) -> list[DhcpEvent]:
        """DHCP/TFTP events so far, seconds relative to :meth:`reset_clock`'s t0 (thread-safe)."""
        with self._lock:
            lines = list(self._lines)
        t0 = self._t0
        known = [self.cfg.machine_uuid] if self.cfg.machine_uuid else []
        return parse_dnsmasq_log((f"[{t - t0:9.3f}] {text}" for t, text in lines), known_uuids=known)

    def describe(self) -> list[tuple[str, str]]:
        c = self.cfg
        _efi_codes, _http = ARCH_CODES[c.arch]
        if c.uefi_boot == "pxe":
            uefi = "UEFI PXE (option 93 = 7/9) -> ipxe.efi over TFTP"
        else:
            uefi = "UEFI PXE: no boot file (only HTTP boot loads iPXE)"
        return [
            ("namespace", self.name),
            ("bridge", f"{BRIDGE} {c.bridge_ip}/{c.prefix_len}, tap {TAP} for the VM"),
            ("DHCP range", f"{c.dhcp_range[0]} - {c.dhcp_range[1]} (dnsmasq as carbide-dhcp)"),
            ("option 43.70", c.machine_uuid if c.machine_uuid is not None
             else "withheld (iPXE clients get no machine UUID: carbide's chain never fires)"),
            ("first stage", f"BIOS (option 93 = 0) -> ipxe.kpxe over TFTP; {uefi}; "
                            f"UEFI HTTP boot (HTTPClient) -> {c.http_boot_url}"),
            ("TFTP root", f"{c.artifacts} (read-only)"),
            ("stand-in", f"{c.standin_url} inside {self.name}"),
        ]
