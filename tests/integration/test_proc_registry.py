"""The process registry: a test run checks and stops only what it started, never by name.

A process named like qemu started outside the registry (the developer's own VM, libvirt's
dnsmasq) must be neither reported nor stopped; a child started through shell.spawn and left
running must be reported and stopped, with its command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runbook_lib import shell

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent.parent


def _alive(pid: int) -> bool:
    fields = shell._stat_fields(pid)
    return fields is not None and fields[0] != b"Z"


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    reg = tmp_path / "registry"
    reg.mkdir()
    monkeypatch.setenv(shell.REGISTRY_ENV, str(reg))
    return reg


@pytest.fixture
def outsider():
    """A `sleep` that calls itself qemu-system-x86_64, started without shell.spawn."""
    p = subprocess.Popen(["bash", "-c", "exec -a qemu-system-x86_64 sleep 120"], start_new_session=True)
    deadline = time.monotonic() + 5
    while shell._cmdline(p.pid).split(" ")[0] != "qemu-system-x86_64" and time.monotonic() < deadline:
        time.sleep(0.02)
    yield p
    p.kill()
    p.wait()


def test_a_spawned_child_left_running_is_reported_and_stopped_an_outsider_is_not(registry, outsider):
    mine = shell.spawn(["sleep", "121"])
    try:
        entries = list(registry.glob("*.json"))
        assert len(entries) == 1 and entries[0].name.startswith(f"{mine.pid}-")
        left = shell.registry_leftovers(registry)
        assert [lo.pid for lo in left] == [mine.pid]
        assert left[0].members == [(mine.pid, "sleep 121")]
        # .ci/run's check, as it runs it
        out = subprocess.run([sys.executable, "-m", "runbook_lib.shell", "leftovers", "--kill", str(registry)],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
        assert out.returncode == 1, out
        assert f"{mine.pid} sleep 121" in out.stdout
        assert "qemu-system" not in out.stdout and str(outsider.pid) not in out.stdout
        time.sleep(0.2)
        assert not _alive(mine.pid)
        assert outsider.poll() is None and _alive(outsider.pid)  # the look-alike lives on
        assert not list(registry.glob("*.json"))
        again = subprocess.run([sys.executable, "-m", "runbook_lib.shell", "leftovers", str(registry)],
                               capture_output=True, text=True, timeout=60, cwd=REPO)
        assert again.returncode == 0 and "no registered process" in again.stdout
    finally:
        mine.stop(grace=1)


def test_stopped_children_leave_no_entry_and_grandchildren_count(registry, outsider):
    with shell.spawn(["sleep", "60"]):
        assert len(list(registry.glob("*.json"))) == 1
    assert not list(registry.glob("*.json"))
    res = shell.run(["true"], timeout=10)
    assert res.ok and not list(registry.glob("*.json"))
    # the leader exits, its grandchild stays in the group: still ours, still reported
    p = shell.spawn(["bash", "-c", "sleep 122 & echo started"])
    p.wait(timeout=10)
    left = shell.registry_leftovers(registry)
    assert len(left) == 1 and left[0].pgid == p.pgid
    assert [cmd for _, cmd in left[0].members] == ["sleep 122"]
    shell.stop_leftovers(left)
    assert not shell.registry_leftovers(registry) and not list(registry.glob("*.json"))
    assert outsider.poll() is None
    p.stop(grace=1)


def test_a_reused_pid_is_not_ours(registry, outsider):
    """An entry whose pid now belongs to another process (other start time) is ignored."""
    fake = registry / f"{outsider.pid}-1.json"
    fake.write_text(f'{{"pid": {outsider.pid}, "pgid": {outsider.pid}, "argv0": "qemu-system-x86_64", '
                    f'"start_ticks": 1}}\n')
    assert shell.registry_leftovers(registry) == []
    shell.stop_leftovers([shell.Leftover(fake, outsider.pid, outsider.pid, "x", [])])
    time.sleep(0.2)
    assert outsider.poll() is None


def test_the_test_fixture_and_ci_use_the_registry_not_names():
    conftest = (REPO / "tests" / "conftest.py").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "registry_leftovers" in conftest and "qemu-system" not in conftest
    assert "runbook_lib.shell leftovers" in ci and shell.REGISTRY_ENV in ci
    for text in (conftest, ci):
        assert "pgrep" not in text and "kill" + "all" not in text and "p" + "kill" not in text


def test_no_leftover_processes_fixture_sees_only_this_tests_children(no_leftover_processes, outsider):
    # The outsider (not registered) stays running through teardown; the fixture must not fail.
    assert os.environ[shell.REGISTRY_ENV]
    with shell.spawn(["sleep", "30"]) as p:
        assert p.running()
