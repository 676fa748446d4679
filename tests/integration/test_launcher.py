"""Notebook 00's background runs for real: `runbook run` started through runbook_lib.launcher
(papermill, a real kernel), progress parsed from its lines, the verdict, the report link; Cancel
stops the run's process groups (Ctrl-C first, then the groups); one run per step at a time.
The form is driven without a browser (set values, press buttons)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from runbook_lib import launcher
from runbook_lib.result import Status

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "start_here"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_step1_runs_in_the_background_with_progress_verdict_and_report(tmp_path, no_leftover_processes):
    updates: list[launcher.Progress] = []
    run = launcher.launch("01", {}, report_dir=tmp_path / "reports", on_update=updates.append)
    assert run.running() and run.pid is not None
    assert run.argv()[1:5] == ["-m", "runbook_lib.launcher", "run", "01_install_build_tools"]
    p = run.wait(timeout=300)
    assert (p.state, p.exit_code) == ("finished", 0), p.tail
    assert p.verdict == "PASS"
    # progress: papermill's cell lines, every cell of the notebook (+ the injected parameters)
    assert p.cells_total == p.cells_done and p.cells_done >= 10, p
    assert p.fraction == 1.0
    seen = sorted({u.cells_done for u in updates})
    assert len(seen) > 5 and seen[0] == 0, seen  # it moved while running, not only at the end
    assert any(u.state == "running" and u.cell for u in updates)
    assert p.parts and all(s == "PASS" for s, _ in p.parts)
    html_report = Path(p.reports["html"])
    assert html_report.is_file() and html_report.parent == (tmp_path / "reports").resolve()
    summary = json.loads(Path(p.reports["json"]).read_text())
    assert summary["status"] == "PASS"
    assert not _alive(run.pid)


def test_a_failing_run_reports_fail_live_and_parses_build_progress(tmp_path, no_leftover_processes):
    updates: list[launcher.Progress] = []
    run = launcher.launch(str(FIXTURES / "progress_lines.ipynb"), report_dir=tmp_path / "r",
                          on_update=updates.append)
    p = run.wait(timeout=120)
    assert (p.verdict, p.exit_code) == ("FAIL", 1)
    assert p.task == "[3/3] Running Task: task-3"
    assert ("FAIL", "step x: build: artifact missing") in p.parts
    assert any(u.verdict == "FAIL" and not u.done for u in updates)  # the live verdict, before the end
    assert Path(p.reports["html"]).is_file()


def test_one_run_per_step_at_a_time(tmp_path, no_leftover_processes):
    first = launcher.launch(str(FIXTURES / "sleep_in_command.ipynb"), report_dir=tmp_path / "r")
    try:
        with pytest.raises(launcher.AlreadyRunning, match="already running"):
            launcher.launch(str(FIXTURES / "sleep_in_command.ipynb"), report_dir=tmp_path / "r")
        assert launcher.active(str(FIXTURES / "sleep_in_command.ipynb")) is first
    finally:
        first.cancel(grace=20)
    assert launcher.active(str(FIXTURES / "sleep_in_command.ipynb")) is None


def test_cancel_interrupts_the_cell_stops_its_command_and_leaves_an_error_report(tmp_path, no_leftover_processes):
    run = launcher.launch(str(FIXTURES / "sleep_in_command.ipynb"), report_dir=tmp_path / "r")
    _wait_for(lambda: any("sleeping: pid" in ln for ln in run.snapshot().tail), 120, "the sleep to start")
    line = next(ln for ln in run.snapshot().tail if "sleeping: pid" in ln)
    sleep_pid = int(line.rsplit(" ", 1)[1])
    assert _alive(sleep_pid)
    t0 = time.monotonic()
    p = run.cancel(grace=30)
    assert time.monotonic() - t0 < 30  # Ctrl-C was enough: no group had to be killed
    assert p.state == "cancelled" and p.verdict == "ERROR", p
    assert not _alive(sleep_pid) and not _alive(run.pid)
    assert all(not _alive(pg) for pg in run.groups), run.groups
    summary = json.loads(Path(p.reports["json"]).read_text())
    assert summary["status"] == "ERROR" and summary["error"]["ename"] == "KeyboardInterrupt"


def test_cancel_stops_the_process_groups_of_a_run_that_ignores_ctrl_c(tmp_path, no_leftover_processes):
    run = launcher.launch(str(FIXTURES / "ignores_interrupt.ipynb"), report_dir=tmp_path / "r")
    _wait_for(lambda: any("ignoring Ctrl-C" in ln for ln in run.snapshot().tail), 120, "the cell to start")
    line = next(ln for ln in run.snapshot().tail if "ignoring Ctrl-C" in ln)
    child = int(line.rsplit(" ", 1)[1])
    p = run.cancel(grace=3)
    assert p.state == "cancelled" and p.verdict == "ERROR"
    assert run.kernel_pgids and len(run.groups) >= 2, (run.kernel_pgids, run.groups)
    _wait_for(lambda: not _alive(child) and not _alive(run.pid), 10, "every process to be gone")
    assert all(not _alive(pg) for pg in run.groups)


def test_the_form_runs_step1_and_shows_the_report_link_and_its_table(tmp_path, monkeypatch,
                                                                      run_history, no_leftover_processes):
    from runbook_lib import status, widgets

    monkeypatch.chdir(tmp_path)
    reports = tmp_path / "reports"
    board = status.board(report_dirs=[reports])
    assert board.row("01").state == "never run"
    form = widgets.StartForm(report_dir=str(reports), board=board, paint_interval=0.0)
    panel = form.panel("01")
    panel.run_button.click()
    assert panel.run is not None
    assert form.panel("01").run_button.disabled or panel.run.snapshot().done
    p = panel.run.wait(timeout=300)
    _wait_for(lambda: "runbook-report-link" in panel.result.value, 10, "the result to be painted")
    assert p.verdict == "PASS" and panel.progress.value == 100 and panel.progress.bar_style == "success"
    assert 'data-verdict="PASS"' in panel.verdict.value
    href = panel.result.value.split('href="', 1)[1].split('"', 1)[0]
    assert not href.startswith("/") and (tmp_path / href).is_file()  # relative to the notebook's dir
    assert 'class="runbook-run-result"' in panel.result.value and "step 1: tools" in panel.result.value
    assert not panel.run_button.disabled and panel.cancel_button.disabled
    assert form.board.row("01").state == "PASS"  # the board was refreshed
    assert 'data-step="01" data-state="PASS"' in form.board_html.value


def test_a_secret_parameter_never_reaches_the_command_line(tmp_path):
    from runbook_lib.params import STEP2

    run = launcher.StepRun(STEP2.name, {"root_password": "Hunter2-xyz", "force": True}, report_dir=tmp_path)
    argv = run.argv()
    assert "Hunter2-xyz" not in " ".join(argv) and launcher.STDIN_FLAG in argv
    assert ["-p", "force", "true"] == argv[argv.index("-p"):argv.index("-p") + 3]
    assert run.secret_params() == {"root_password": "Hunter2-xyz"}


def test_the_child_takes_secrets_from_stdin(tmp_path):
    """The child's stdin JSON becomes -p pairs: a bad value is named like one on the command line."""
    from runbook_lib import shell

    env = {"PYTHONPATH": str(Path(launcher.__file__).resolve().parent.parent)}
    argv = [os.sys.executable, "-m", "runbook_lib.launcher", "run", "02", "--report-dir", str(tmp_path),
            launcher.STDIN_FLAG]
    res = shell.run(argv, timeout=60, env=env, input=json.dumps({"build_timeout_s": "soon"}))
    assert res.returncode == 2 and "build_timeout_s" in res.tail_text(), res.tail_text()
    assert Status.ERROR.exit_code == res.returncode
