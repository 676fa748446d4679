"""A 100 MB serial console still gives a report of at most 2 MB, with and without the logs embedded.

The console is generated from a recorded boot (tests/fixtures/big_serial_log.py, ~1 s), replayed
through step 3's report views by a real `runbook run` (papermill), then `runbook report
--embed-logs` rebuilds the page with the serial log inside: head and tail kept, the cut said.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.report.replay import write_notebook

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
LIMIT = 2 * 1024 * 1024


def _runbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env=dict(os.environ))


def test_a_100_mb_console_gives_a_report_of_at_most_2_mb(tmp_path, fixture_module):
    log = tmp_path / "serial.log"
    size = fixture_module("big_serial_log.py").make(log, 100, planted="<b>planted</b> tail marker")
    assert size >= 100 * 1024 * 1024 - 4096
    nb = write_notebook(tmp_path / "replayed_100mb.ipynb", log)
    res = _runbook("run", str(nb), "--report-dir", str(tmp_path / "r"), "--quiet")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (js,) = (tmp_path / "r").glob("*.json")
    html = js.with_suffix(".html")
    data = json.loads(js.read_text())
    assert data["status"] == "PASS" and data["boot"]["reached"] == "login_prompt"
    assert any(lg["name"] == "boot/serial.log" and lg["size"] == size for lg in data["logs"])
    plain = html.stat().st_size
    assert plain <= LIMIT, f"report {plain} bytes for a {size} byte console"
    assert "runbook-summary-card" in html.read_text()

    res = _runbook("report", str(html.with_suffix(".ipynb")), "--embed-logs")
    assert res.returncode == 0, res.stdout + res.stderr
    page = html.read_text()
    embedded = html.stat().st_size
    assert embedded <= LIMIT, f"report with the log embedded: {embedded} bytes"
    assert embedded > plain + 300_000  # the log really is in there
    note = re.search(r"runbook-embedded-note['\"]>([^<]*)<", page)
    assert note and "cut from the middle" in note.group(1) and str(size) in note.group(1), note
    b64 = re.search(r"download=['\"]serial.log.gz['\"] href=['\"]data:application/gzip;base64,([^'\"]+)", page)
    assert b64 is not None
    text = gzip.decompress(base64.b64decode(b64.group(1))).decode()
    head = log.open("rb").read(2000).decode(errors="replace")
    assert text.startswith(head.split("\x1b")[0][:200])  # the head of the console (ANSI removed)
    assert text.rstrip().endswith("carbide-sandbox login: [   44.615927] scsi host2: ahci")  # and its tail
    assert "<b>planted</b> tail marker" in text and "bytes (" in text and "lines) cut here" in text
