"""The sandbox builder's runner gives a stopped command (mkosi) time to clean up."""

from __future__ import annotations

import time

import pytest

from runbook_lib import shell
from runbook_lib.sandbox.runner import BuildFailure, Runner

pytestmark = pytest.mark.integration


def test_a_timed_out_command_may_take_4_s_to_clean_up(tmp_path):
    marker = tmp_path / "cleaned-up"
    runner = Runner(lambda _line: None, tmp_path / "build.log")
    script = f"trap 'sleep 4; echo done > {marker}; exit 3' TERM; echo building; sleep 300 & wait"
    t0 = time.monotonic()
    with pytest.raises(BuildFailure, match="timed out"):
        runner.run(["bash", "-c", script], timeout=1, what="mkosi stand-in")
    assert marker.read_text() == "done\n", "SIGKILLed before its cleanup finished"
    assert time.monotonic() - t0 < 1 + shell.COMMAND_CLEANUP_GRACE_S
    assert shell.BUILDER_CLEANUP_GRACE_S >= shell.COMMAND_CLEANUP_GRACE_S + 10
