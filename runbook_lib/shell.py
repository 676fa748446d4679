"""The one way this project runs a process.

Every child gets an argv list (never a shell string), its own process group, a
timeout, a log file that receives every line, and an optional per-line callback
for live progress. On timeout, error or interrupt the child's whole process group
is terminated, then killed. Long-lived helpers (qemu, swtpm, dnsmasq, servers)
use :func:`spawn`, whose handle is a context manager with the same guarantee.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

LineCallback = Callable[[str], None]

_LIVE: set["Proc"] = set()
_LIVE_LOCK = threading.Lock()


class ShellError(Exception):
    """Base for runner errors that are the environment's fault (ERROR)."""


class CommandNotFound(ShellError):
    def __init__(self, program: str) -> None:
        super().__init__(f"command not found: {program}")
        self.program = program


class ElevationUnavailable(ShellError):
    pass


def quote(argv: Sequence[str]) -> str:
    """The exact command, copy-pasteable into a POSIX shell."""
    return shlex.join([str(a) for a in argv])


def elevation_prefix() -> list[str]:
    """Empty when root; otherwise sudo or doas, non-interactive."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo", "-n", "--"]
    if shutil.which("doas"):
        return ["doas", "-n"]
    raise ElevationUnavailable(
        "this step needs root and neither sudo nor doas is installed; "
        "run it as root or install sudo"
    )


def build_argv(argv: Sequence[str | os.PathLike[str]], elevate: bool = False) -> list[str]:
    if not argv:
        raise ValueError("empty argv")
    out = [os.fspath(a) for a in argv]
    for a in out:
        if "\x00" in a:
            raise ValueError("argument contains a NUL byte")
    return (elevation_prefix() if elevate else []) + out


@dataclass
class RunResult:
    argv: list[str]
    returncode: int | None
    duration_s: float
    tail: list[str]
    log_path: Path | None
    timed_out: bool = False
    interrupted: bool = False
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.interrupted

    @property
    def command(self) -> str:
        return quote(self.argv)

    def tail_text(self, n: int = 40) -> str:
        return "\n".join(self.tail[-n:])

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "returncode": self.returncode,
            "duration_s": round(self.duration_s, 3),
            "timed_out": self.timed_out,
            "interrupted": self.interrupted,
            "dry_run": self.dry_run,
            "log_path": str(self.log_path) if self.log_path else None,
        }


class Proc:
    """A running child in its own process group; always stop() it (or use `with`)."""

    def __init__(
        self,
        argv: list[str],
        popen: subprocess.Popen[bytes],
        log_path: Path | None,
        on_line: LineCallback | None,
        tail_lines: int,
        stamp: bool,
    ) -> None:
        self.argv = argv
        self.popen = popen
        self.pid = popen.pid
        self.pgid = popen.pid
        self.log_path = log_path
        self.started = time.monotonic()
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self._on_line = on_line
        self._stamp = stamp
        self._log = open(log_path, "ab") if log_path else None
        self._reader = threading.Thread(target=self._pump, name=f"pump-{self.pid}", daemon=True)
        self._lines_lock = threading.Lock()
        self._reader.start()
        with _LIVE_LOCK:
            _LIVE.add(self)

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        try:
            for raw in iter(self.popen.stdout.readline, b""):
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                if self._log:
                    if self._stamp:
                        self._log.write(f"[{time.monotonic() - self.started:9.3f}] ".encode())
                    self._log.write(raw if raw.endswith(b"\n") else raw + b"\n")
                    self._log.flush()
                with self._lines_lock:
                    self.tail.append(text)
                if self._on_line:
                    try:
                        self._on_line(text)
                    except Exception:  # a display problem must never kill the pump
                        pass
        finally:
            if self._log:
                self._log.flush()

    def poll(self) -> int | None:
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        rc = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return rc

    def stop(self, grace: float = 5.0) -> int | None:
        """Terminate the whole process group: SIGTERM, then SIGKILL after `grace`."""
        kill_group(self.pgid, grace=grace, popen=self.popen)
        self._reader.join(timeout=5)
        if self._log and not self._log.closed:
            self._log.close()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self.popen.returncode

    def __enter__(self) -> "Proc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a group; zombies wait for a reaper, not for us."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if os.path.isdir("/proc/self"):
        return bool(_group_members(pgid))
    return True


def kill_group(pgid: int, grace: float = 5.0, popen: subprocess.Popen[bytes] | None = None) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            if popen is not None:
                popen.poll()
            if not _group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    if popen is not None:
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def stop_all() -> None:
    """Stop every child this process still has (used by atexit and tests)."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        p.stop(grace=2.0)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    elevate: bool = False,
    on_line: LineCallback | None = None,
    tail_lines: int = 200,
    stamp: bool = False,
    stdin: int | None = subprocess.DEVNULL,
    pass_fds: Iterable[int] = (),
) -> Proc:
    """Start a child in its own process group; stdout+stderr are pumped line by line."""
    full = build_argv(argv, elevate)
    if shutil.which(full[0]) is None and not os.path.exists(full[0]):
        raise CommandNotFound(full[0])
    lp = Path(log_path) if log_path else None
    if lp:
        lp.parent.mkdir(parents=True, exist_ok=True)
        with open(lp, "ab") as fh:
            fh.write(f"$ {quote(full)}\n".encode())
    merged_env = None
    if env is not None:
        merged_env = dict(os.environ)
        merged_env.update(env)
    popen = subprocess.Popen(
        full,
        cwd=cwd,
        env=merged_env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    return Proc(full, popen, lp, on_line, tail_lines, stamp)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    log_path: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    elevate: bool = False,
    dry_run: bool = False,
    on_line: LineCallback | None = None,
    tail_lines: int = 200,
    check: bool = False,
) -> RunResult:
    """Run to completion (or timeout) and return what happened.

    With ``dry_run`` nothing runs; the exact command is returned (and echoed to
    ``on_line``) so the user sees what would have been executed.
    """
    if timeout is None or timeout <= 0:
        raise ValueError("a positive timeout is required")
    full = build_argv(argv, elevate)
    if dry_run:
        if on_line:
            on_line(f"[dry-run] {quote(full)}")
        return RunResult(full, 0, 0.0, [], None, dry_run=True)
    t0 = time.monotonic()
    proc = spawn(argv, log_path=log_path, cwd=cwd, env=env, elevate=elevate,
                 on_line=on_line, tail_lines=tail_lines)
    timed_out = interrupted = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    except BaseException:
        interrupted = True
        proc.stop(grace=3.0)
        raise
    finally:
        # Reap stragglers the child left in its group (daemons, grandchildren).
        proc.stop(grace=3.0 if timed_out else 1.0)
    rr = RunResult(full, proc.popen.returncode, time.monotonic() - t0, list(proc.tail),
                   proc.log_path, timed_out=timed_out, interrupted=interrupted)
    if timed_out and proc.log_path:
        with open(proc.log_path, "ab") as fh:
            fh.write(f"[runbook] timed out after {timeout:.0f}s; process group killed\n".encode())
    if check and not rr.ok:
        raise subprocess.CalledProcessError(rr.returncode or -1, full, "\n".join(rr.tail))
    return rr


def capture(argv: Sequence[str | os.PathLike[str]], *, timeout: float = 30.0,
            cwd: str | os.PathLike[str] | None = None) -> RunResult:
    """Short query commands (versions, probes): output kept in memory only."""
    return run(argv, timeout=timeout, cwd=cwd, tail_lines=2000)


import atexit  # noqa: E402

atexit.register(stop_all)
