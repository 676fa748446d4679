"""Issue 11's acceptance for notebook 00: a first-time user runs steps 1 to 3 from the form without
typing code. The form is driven as JupyterLab would (values set, Run pressed) but without a browser;
each step is a real background `runbook run` (papermill, a real sandbox build in a fresh work
directory, a real PXE boot under TCG), and the board ends on "All three passed"."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="mkosi needs root"),
              pytest.mark.usefixtures("no_leftover_processes", "run_history")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_steps_1_to_3_from_the_form(tmp_path, monkeypatch):
    from runbook_lib import history, status, widgets

    monkeypatch.chdir(tmp_path)  # the notebook's directory: report links are relative to it
    work, reports = tmp_path / "work", tmp_path / "reports"
    board = status.board(workdir=str(work), report_dirs=[reports])
    assert [r.state for r in board.rows] == ["never run"] * 4
    form = widgets.StartForm(workdir=str(work), report_dir=str(reports), board=board, paint_interval=0.0)
    form.panel("03").inputs["accel"].value = "tcg"
    form.panel("03").inputs["port"].value = _free_port()  # another run's stand-in may hold 8080
    for key in ("01", "02", "03"):
        panel = form.panel(key)
        panel.run_button.click()
        assert panel.run is not None, panel.verdict.value
        p = panel.run.wait(timeout=1800)
        deadline = time.monotonic() + 10
        while "runbook-run-result" not in panel.result.value and time.monotonic() < deadline:
            time.sleep(0.1)
        assert p.verdict == "PASS", (key, p.tail, panel.result.value)
        assert panel.progress.value == 100 and 'data-verdict="PASS"' in panel.verdict.value
        href = panel.result.value.split('class="runbook-report-link" href="', 1)[1].split('"', 1)[0]
        assert (tmp_path / href).is_file()
        assert form.board.row(key).state == "PASS", str(form.board)
    for kind in ("build", "boot"):  # the steps recorded their runs; the board read the newest of both sources
        assert history.scan(work, kind, limit=1)[0][0].verdict == "PASS"
    assert form.board.next_step == "All three passed: use 04_validate after each change."
    assert (Path(form.board.artifacts_dir) / "carbide.efi").is_file()
