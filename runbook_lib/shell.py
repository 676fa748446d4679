"""The one way this project runs a process.

Every child gets an argv list (never a shell string), its own process group, a
timeout, a log file that receives every line, and an optional per-line callback
for live progress. On timeout, error or interrupt the child's whole process group
is terminated, then killed. Long-lived helpers (qemu, swtpm, dnsmasq, servers)
use :func:`spawn`, whose handle is a context manager with the same guarantee.

Elevation (sudo or doas when not root) is probed once per process with a real
``sudo -n true``; a refusal raises :class:`ElevationUnavailable` naming the fix.

When ``$RUNBOOK_PROC_REGISTRY`` names a directory, every child :func:`spawn` starts
is recorded there (one small JSON file: pid, process group, program, start time)
until it is stopped, so a test run can find and stop exactly the processes it
started, and nothing else on the machine (``python -m runbook_lib.shell leftovers``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

log = logging.getLogger(__name__)

LineCallback = Callable[[str], None]

REGISTRY_ENV = "RUNBOOK_PROC_REGISTRY"
ELEVATION_PROBE_TIMEOUT_S = 15.0
# SIGTERM -> SIGKILL grace of a stopped child, by default.
STOP_GRACE_S = 3.0
# A command that must undo what it set up when stopped (mkosi: mounts, its workspace) gets this
# long between SIGTERM and SIGKILL (the sandbox builder's runner uses it for every command).
COMMAND_CLEANUP_GRACE_S = 30.0
# A builder that runs such commands (the sandbox builder) needs, after its own SIGTERM, the
# command's grace and then time to remove its staging directory: what the build driver gives it.
BUILDER_CLEANUP_GRACE_S = COMMAND_CLEANUP_GRACE_S + 30.0

_LIVE: set["Proc"] = set()
_LIVE_LOCK = threading.Lock()


class ShellError(Exception):
    """Base for runner errors that are the environment's fault (ERROR)."""


class CommandNotFound(ShellError):
    def __init__(self, program: str) -> None:
        super().__init__(f"command not found: {program}")
        self.program = program


class ElevationUnavailable(ShellError):
    """Root is needed, and neither we are root nor does sudo/doas work without a password."""

    def __init__(self, cause: str, fix: str = "") -> None:
        super().__init__(f"{cause}; fix: {fix}" if fix else cause)
        self.cause = cause
        self.fix = fix


def quote(argv: Sequence[str]) -> str:
    """The exact command, copy-pasteable into a POSIX shell."""
    return shlex.join([str(a) for a in argv])


_ELEVATION_LOCK = threading.Lock()
_ELEVATION: dict[int, list[str] | ElevationUnavailable] = {}  # by effective uid


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _probe(argv: list[str]) -> tuple[bool, str]:
    """Run a non-interactive elevation probe (`sudo -n true`); (worked, first output line)."""
    try:
        rr = capture(argv, timeout=ELEVATION_PROBE_TIMEOUT_S)
    except CommandNotFound:
        return False, f"{argv[0]} is not installed"
    first = next((ln.strip() for ln in rr.tail if ln.strip()), "")
    if rr.timed_out:
        return False, f"{quote(argv)} did not answer within {ELEVATION_PROBE_TIMEOUT_S:.0f} s"
    return rr.ok, first or f"exit code {rr.returncode}"


def _find_elevation() -> list[str] | ElevationUnavailable:
    user = _user_name()
    tried: list[str] = []
    if shutil.which("sudo"):
        ok, why = _probe(["sudo", "-n", "true"])
        if ok:
            return ["sudo", "-n", "--"]
        tried.append(f"sudo refused to run without a password ({why})")
    if shutil.which("doas"):
        ok, why = _probe(["doas", "-n", "true"])
        if ok:
            return ["doas", "-n"]
        tried.append(f"doas refused to run without a password ({why})")
    if not tried:
        return ElevationUnavailable(
            f"this step needs root, the user {user} is not root, and neither sudo nor doas is installed",
            f"run it as root, or install sudo (apt-get install sudo) and allow passwordless sudo for "
            f"{user}: echo '{user} ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/{user} && "
            f"chmod 0440 /etc/sudoers.d/{user}")
    fix = (f"run as root, or allow passwordless sudo for {user}: as root, "
           f"echo '{user} ALL=(root) NOPASSWD: ALL' > /etc/sudoers.d/{user} && "
           f"chmod 0440 /etc/sudoers.d/{user} (check with: sudo -n true)")
    if shutil.which("doas") and not shutil.which("sudo"):
        fix = (f"run as root, or allow passwordless doas for {user}: add "
               f"'permit nopass {user} as root' to /etc/doas.conf (check with: doas -n true)")
    return ElevationUnavailable(f"this step needs root and the user {user} is not root; "
                                + "; ".join(tried), fix)


def elevation_prefix() -> list[str]:
    """Empty when root; otherwise sudo or doas, non-interactive, probed once per process.

    Raises :class:`ElevationUnavailable` (the environment's fault: ERROR) when neither
    works without a password, with the fix in the message.
    """
    euid = os.geteuid()
    if euid == 0:
        return []
    with _ELEVATION_LOCK:
        found = _ELEVATION.get(euid)
        if found is None:
            found = _find_elevation()
            _ELEVATION[euid] = found
            if isinstance(found, ElevationUnavailable):
                log.info("elevation unavailable: %s", found)
            else:
                log.info("elevation works: %s", " ".join(found))
    if isinstance(found, ElevationUnavailable):
        raise ElevationUnavailable(found.cause, found.fix)
    return list(found)


def reset_elevation_cache() -> None:
    """Forget the probed answer (after changing sudoers in the same process)."""
    with _ELEVATION_LOCK:
        _ELEVATION.clear()


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
        self._callback_failures = 0
        self._registry_entry = _register(self)
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
                        self._callback_failures += 1
                        if self._callback_failures == 1:
                            log.exception("the line callback of %s failed; the output still goes to "
                                          "%s (further failures of this callback are counted, not "
                                          "logged)", quote(self.argv[:3]), self.log_path or "the tail")
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
        if self._callback_failures > 1:
            log.warning("the line callback of %s failed %d times", quote(self.argv[:3]),
                        self._callback_failures)
            self._callback_failures = 1
        if not _group_alive(self.pgid):
            _unregister(self._registry_entry)
            self._registry_entry = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self.popen.returncode

    def __enter__(self) -> "Proc":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat from field 3 (state) on; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _register(proc: "Proc") -> Path | None:
    """Record a started child in $RUNBOOK_PROC_REGISTRY (if set); the entry's path, or None."""
    registry = os.environ.get(REGISTRY_ENV)
    if not registry:
        return None
    ticks = start_ticks(proc.pid)
    entry = {"pid": proc.pid, "pgid": proc.pgid, "argv0": proc.argv[0],
             "start_ticks": ticks, "registered_by": os.getpid(), "time": time.time()}
    path = Path(registry) / f"{proc.pid}-{ticks if ticks is not None else 'gone'}.json"
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(entry) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot record %s (pid %d) in the process registry %s: %s",
                    proc.argv[0], proc.pid, registry, exc)
        return None
    return path


def _unregister(path: Path | None) -> None:
    if path is None:
        return
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove the process registry entry %s: %s", path, exc)


@dataclass
class Leftover:
    """A registered process group that is still running (pid reuse excluded by start time)."""

    entry: Path
    pid: int
    pgid: int
    argv0: str
    members: list[tuple[int, str]]  # (pid, command line)

    def describe(self) -> str:
        lines = [f"process group {self.pgid} (started as {self.argv0}, registry entry {self.entry.name}):"]
        lines += [f"  {pid} {cmd}" for pid, cmd in self.members]
        return "\n".join(lines)


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return quote([a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]) if raw else "?"


def registry_leftovers(registry: str | os.PathLike[str],
                       entries: Iterable[Path] | None = None) -> list[Leftover]:
    """Registered groups (all, or only `entries`) with live members that really are ours.

    A group counts only if its leader is gone or is still the very process that was
    registered (same start time), and only members started no earlier than the leader.
    """
    reg = Path(registry)
    paths = sorted(entries) if entries is not None else sorted(reg.glob("*.json"))
    out: list[Leftover] = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
            pid, pgid, ticks = int(data["pid"]), int(data["pgid"]), data.get("start_ticks")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if ticks is None:
            continue  # it had exited before it could be recorded
        leader = start_ticks(pid)
        if leader is not None and leader != ticks:
            continue  # the pid (and so the group id) now belongs to someone else
        members = []
        for other in _group_members(pgid):
            st = start_ticks(other)
            if st is not None and st >= ticks:
                members.append((other, _cmdline(other)))
        if members:
            out.append(Leftover(path, pid, pgid, str(data.get("argv0", "?")), members))
    return out


def stop_leftovers(leftovers: Iterable[Leftover], grace: float = 2.0) -> None:
    """Stop exactly these groups (re-checked just before), and drop their registry entries."""
    for lo in leftovers:
        if registry_leftovers(lo.entry.parent, [lo.entry]):
            kill_group(lo.pgid, grace=grace)
        _unregister(lo.entry)


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live (non-zombie) process, from /proc.
    Zombies wait for a reaper, not for us."""
    out: dict[int, tuple[int, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and fields[0] != b"Z":
            out[int(entry)] = (int(fields[1]), int(fields[2]))
    return out


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a group."""
    return [pid for pid, (_, group) in process_table().items() if group == pgid]


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
    stderr_path: str | os.PathLike[str] | None = None,
) -> Proc:
    """Start a child in its own process group; stdout+stderr are pumped line by line
    (stderr goes to `stderr_path` instead when given: for output that must stay apart)."""
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
    err_fh = open(stderr_path, "wb") if stderr_path else None
    try:
        popen = subprocess.Popen(
            full,
            cwd=cwd,
            env=merged_env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=err_fh if err_fh else subprocess.STDOUT,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    finally:
        if err_fh:
            err_fh.close()
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
    stop_grace: float = STOP_GRACE_S,
    input: str | bytes | None = None,  # noqa: A002 (as in subprocess.run)
    stderr_path: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Run to completion (or timeout) and return what happened.

    With ``dry_run`` nothing runs; the exact command is returned (and echoed to
    ``on_line``) so the user sees what would have been executed. On timeout or
    interrupt the child's group gets SIGTERM, then SIGKILL after ``stop_grace``
    seconds. ``input`` is written to the child's stdin (then closed): the way to
    hand a command a secret, which must never be on its command line.
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
                 on_line=on_line, tail_lines=tail_lines,
                 stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                 stderr_path=stderr_path)
    if input is not None:
        _feed_stdin(proc, input.encode() if isinstance(input, str) else input)
    timed_out = interrupted = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    except BaseException:
        interrupted = True
        proc.stop(grace=stop_grace)
        raise
    finally:
        # Reap stragglers the child left in its group (daemons, grandchildren).
        proc.stop(grace=stop_grace if timed_out else 1.0)
    rr = RunResult(full, proc.popen.returncode, time.monotonic() - t0, list(proc.tail),
                   proc.log_path, timed_out=timed_out, interrupted=interrupted)
    if timed_out and proc.log_path:
        with open(proc.log_path, "ab") as fh:
            fh.write(f"[runbook] timed out after {timeout:.0f}s; process group killed\n".encode())
    if check and not rr.ok:
        raise subprocess.CalledProcessError(rr.returncode or -1, full, "\n".join(rr.tail))
    return rr


def _feed_stdin(proc: Proc, data: bytes) -> None:
    """Write `data` to the child's stdin from a thread (a child that does not read never blocks us)."""
    pipe = proc.popen.stdin
    assert pipe is not None

    def feed() -> None:
        try:
            pipe.write(data)
            pipe.close()
        except (BrokenPipeError, ValueError):
            pass  # the child exited (or closed stdin) without reading everything: its exit code says why

    threading.Thread(target=feed, name=f"stdin-{proc.pid}", daemon=True).start()


def capture(argv: Sequence[str | os.PathLike[str]], *, timeout: float = 30.0,
            cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
            stderr_path: str | os.PathLike[str] | None = None) -> RunResult:
    """Short query commands (versions, probes): output kept in memory only (stderr merged, or
    written to `stderr_path`)."""
    return run(argv, timeout=timeout, cwd=cwd, env=env, tail_lines=2000, stderr_path=stderr_path)


import atexit  # noqa: E402

atexit.register(stop_all)


def main(argv: list[str] | None = None) -> int:
    """`python -m runbook_lib.shell leftovers REGISTRY [--kill]`: what a run left running.

    Exit 0 when no registered process group is still alive, 1 when some are (each is
    listed with its command lines and, with --kill, stopped: only those groups).
    """
    ap = argparse.ArgumentParser(prog="python -m runbook_lib.shell")
    sub = ap.add_subparsers(dest="command", required=True)
    lo = sub.add_parser("leftovers", help="registered processes still running")
    lo.add_argument("registry", help=f"the directory that was ${REGISTRY_ENV}")
    lo.add_argument("--kill", action="store_true", help="stop the groups found (SIGTERM, then SIGKILL)")
    args = ap.parse_args(argv)
    left = registry_leftovers(args.registry)
    if not left:
        print(f"no registered process is still running ({args.registry})")
        return 0
    print(f"{len(left)} registered process group(s) still running:")
    for item in left:
        print(item.describe())
    if args.kill:
        stop_leftovers(left)
        print("stopped them (only these groups)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
