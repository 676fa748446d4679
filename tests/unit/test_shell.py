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


@pytest.mark.integration  # real process groups and grace periods: seconds of wall time
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


@pytest.mark.skipif(os.geteuid() != 0, reason="as root no elevation is needed; non-root cases: "
                    "tests/integration/test_elevation.py with a real user")
def test_root_needs_no_elevation():
    assert shell.build_argv(["mkosi"], elevate=True) == ["mkosi"]
    assert shell.elevation_prefix() == []


def test_elevation_unavailable_carries_cause_and_fix():
    exc = shell.ElevationUnavailable("needs root", "run as root")
    assert exc.cause == "needs root" and exc.fix == "run as root"
    assert str(exc) == "needs root; fix: run as root"
    assert isinstance(exc, shell.ShellError)


def test_input_reaches_stdin_and_never_the_command_line(tmp_path):
    log = tmp_path / "log"
    res = shell.run([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                    timeout=20, input="s3cret\n", log_path=log)
    assert res.ok and res.tail[0] == "S3CRET"
    assert "s3cret" not in res.command and "s3cret" not in log.read_text().splitlines()[0]
    # a child that never reads a large input does not block the runner
    big = shell.run(["true"], timeout=20, input=b"x" * (4 << 20))
    assert big.ok


def test_failing_line_callback_is_logged_once_not_per_line(caplog):
    def broken(line: str) -> None:
        raise RuntimeError(f"display broke on {line}")

    with caplog.at_level("WARNING", logger="runbook_lib.shell"):
        res = shell.run([sys.executable, "-c", "for i in range(50): print(i)"], timeout=20, on_line=broken)
    assert res.ok and len(res.tail) == 50  # the pump went on
    records = [r for r in caplog.records if r.name == "runbook_lib.shell"]
    assert len([r for r in records if r.exc_info]) == 1, records
    assert "display broke on 0" in caplog.text and "failed 50 times" in caplog.text


@pytest.mark.integration  # real process groups and grace periods: seconds of wall time
def test_timeout_grace_lets_a_child_finish_its_cleanup(tmp_path):
    """A child that needs 2 s after SIGTERM to clean up is not SIGKILLed before (grace 6 s)."""
    marker = tmp_path / "cleaned"
    script = (f"trap 'sleep 2; echo done > {marker}; exit 0' TERM; echo ready; "
              "sleep 300 & wait")
    t0 = time.monotonic()
    res = shell.run(["bash", "-c", script], timeout=1, stop_grace=6.0)
    assert res.timed_out and marker.read_text() == "done\n"
    assert time.monotonic() - t0 < 6
    short = tmp_path / "short"
    res = shell.run(["bash", "-c", script.replace(str(marker), str(short))], timeout=1, stop_grace=0.5)
    assert res.timed_out and not short.exists()  # the same child, killed before it could clean up


def test_timeout_required():
    with pytest.raises(ValueError):
        shell.run(["true"], timeout=0)


@pytest.mark.integration  # real process groups and grace periods: seconds of wall time
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
