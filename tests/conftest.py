"""Shared fixtures: the repo root, and a guard that no test leaves a child process behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WATCHED = ("qemu-system", "swtpm", "dnsmasq")


def _children_named(names: tuple[str, ...]) -> list[str]:
    """Processes whose command line starts with a watched program (all users; we are the only ones)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if any(os.path.basename(cmd).startswith(n) for n in names):
            found.append(f"{pid} {cmd}")
    return found


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def no_leftover_processes():
    """Fail the test if it leaves qemu, swtpm or dnsmasq running (that it started)."""
    before = set(_children_named(WATCHED))
    yield
    after = set(_children_named(WATCHED)) - before
    assert not after, f"processes left running: {sorted(after)}"
