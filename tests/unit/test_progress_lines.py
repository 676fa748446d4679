"""Headless progress (step 2 under papermill / `runbook build`): plain lines on stderr, throttled,
with a heartbeat while a long task runs."""

from __future__ import annotations

import io
import time

from runbook_lib.live import ProgressLines


def test_lines_are_throttled_and_held_lines_are_not_lost():
    out = io.StringIO()
    p = ProgressLines(min_interval=0.3, heartbeat=60, stream=out)
    p.line("[1/3] Running Task: a", status="[1/3] a")
    p.line("[2/3] Running Task: b", status="[2/3] b")  # too soon: held
    assert out.getvalue().splitlines() == ["[1/3] Running Task: a"]
    time.sleep(0.35)
    p.output("some build output")  # the held line goes out with the next output once due
    assert out.getvalue().splitlines()[-1] == "[2/3] Running Task: b"
    p.line("[3/3] Running Task: c")
    p.flush()
    assert out.getvalue().splitlines()[-1] == "[3/3] Running Task: c"


def test_heartbeat_names_the_running_task_and_its_last_output():
    out = io.StringIO()
    p = ProgressLines(min_interval=0.0, heartbeat=0.2, stream=out)
    p.line("[1/1] Running Task: mkosi-build", status="[1/1] mkosi-build")
    p.output("I: Retrieving libc6 2.36")
    assert len(out.getvalue().splitlines()) == 1  # not due yet
    time.sleep(0.25)
    p.output("I: Validating \x1b[1mlibc6\x1b[0m 2.36")
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("[1/1] mkosi-build: still running (") and "last output: I: Validating libc6" in last
