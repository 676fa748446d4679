from __future__ import annotations

import os
import sys
import time

import pytest

from runbook_lib import shell


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def test_run_streams_lines_to_callback_and_log(tmp_path):
    seen: list[str] = []
    log = tmp_path / "out.log"
    res = shell.run([sys.executable, "-c", "print('a'); print('b', flush=True)"], timeout=20,
                    log_path=log, on_line=seen.append)
    assert res.ok and seen == ["a", "b"]
    text = log.read_text()
    assert text.startswith("$ ") and "a\nb\n" in text


def test_nonzero_exit_is_reported_not_raised():
    res = shell.run([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], timeout=20)
    assert res.returncode == 3 and not res.ok and res.tail == ["boom"]


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(f'{{os.getpid()}} {{c.pid}}')\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    res = shell.run([sys.executable, "-c", code], timeout=2, log_path=tmp_path / "log")
    assert res.timed_out and not res.ok
    assert time.monotonic() - t0 < 15
    parent, child = map(int, pidfile.read_text().split())
    time.sleep(0.2)
    assert not _alive(parent) and not _alive(child)
    assert "timed out" in (tmp_path / "log").read_text()


def test_spawn_context_manager_stops_group():
    with shell.spawn([sys.executable, "-c", "import time; print('x', flush=True); time.sleep(60)"]) as p:
        pid = p.pid
        assert p.running()
    assert not _alive(pid)


def test_dry_run_returns_exact_command_without_running(tmp_path):
    marker = tmp_path / "m"
    lines: list[str] = []
    res = shell.run(["touch", str(marker)], timeout=5, dry_run=True, on_line=lines.append)
    assert res.dry_run and not marker.exists()
    assert lines == [f"[dry-run] touch {marker}"]


def test_argv_is_never_interpreted_by_a_shell(tmp_path):
    target = tmp_path / "should-not-exist"
    res = shell.run(["echo", f"x; touch {target}"], timeout=5)
    assert res.tail == [f"x; touch {target}"] and not target.exists()


def test_missing_program_raises_command_not_found():
    with pytest.raises(shell.CommandNotFound):
        shell.run(["definitely-not-a-program-xyz"], timeout=5)


def test_elevation(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert shell.build_argv(["mkosi"], elevate=True) == ["mkosi"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(shell.shutil, "which", lambda name: "/usr/bin/sudo" if name == "sudo" else None)
    assert shell.build_argv(["mkosi"], elevate=True) == ["sudo", "-n", "--", "mkosi"]
    monkeypatch.setattr(shell.shutil, "which", lambda name: None)
    with pytest.raises(shell.ElevationUnavailable):
        shell.build_argv(["mkosi"], elevate=True)


def test_timeout_required():
    with pytest.raises(ValueError):
        shell.run(["true"], timeout=0)


def test_interrupt_kills_the_group_and_propagates(tmp_path):
    import signal as sig

    pidfile = tmp_path / "pid"
    code = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    old = sig.signal(sig.SIGALRM, raise_interrupt)
    sig.setitimer(sig.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            shell.run([sys.executable, "-c", code], timeout=60)
    finally:
        sig.setitimer(sig.ITIMER_REAL, 0)
        sig.signal(sig.SIGALRM, old)
    time.sleep(0.2)
    assert not _alive(int(pidfile.read_text()))
