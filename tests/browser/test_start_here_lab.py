"""notebooks/00_start_here.ipynb in a real JupyterLab, in a real browser.

`jupyter lab` (the venv's) starts on a free loopback port with a token, in its own process group
(runbook_lib.shell.spawn), serving a temporary directory that holds a COPY of the notebook (its
parameters point the reports and the sandbox work directory into the test's tmp dir; the run
history is the test's own). Chromium opens the copy, runs all cells from the Run menu, and sees
the status board and the form render; then it presses Run for step 1 and waits for the live
verdict, the result table and the report link, as a first-time user would. Screenshots of each
stage are kept (tests/browser/conftest.py says where).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from runbook_lib import shell
from runbook_lib.boot.standin import free_port
from runbook_lib.live import HEADLESS_ENV

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.needs_tool("chromium", "the browser JupyterLab is opened in"),
              pytest.mark.needs_tool("chromedriver", "selenium drives chromium through it"),
              pytest.mark.usefixtures("no_leftover_processes", "run_history")]

REPO = Path(__file__).resolve().parents[2]
JUPYTER = Path(sys.executable).parent / "jupyter"


def _api(base: str, token: str, path: str, method: str = "GET") -> object:
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def _copy_notebook(dest: Path, tmp: Path) -> Path:
    nb = nbformat.read(REPO / "notebooks" / "00_start_here.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = (f"carbide_root_dir = \"\"\nreport_dir = {str(tmp / 'reports')!r}\n"
                     f"workdir = {str(tmp / 'work')!r}\n")
    for cell in nb.cells:  # a fresh clone's view: no outputs saved from another machine
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    path = dest / "00_start_here.ipynb"
    nbformat.write(nb, path)
    return path


def test_start_here_in_jupyterlab(browser, tmp_path):
    nbdir = tmp_path / "lab"
    nbdir.mkdir()
    _copy_notebook(nbdir, tmp_path)
    token, port = secrets.token_hex(16), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "jupyter-workspaces"),
           # an in-process `runbook run` of an earlier test leaves RUNBOOK_HEADLESS=1 in this
           # process: the kernels must see a widget frontend, as a user's do
           HEADLESS_ENV: ""}
    argv = [str(JUPYTER), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={nbdir}",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    lab = shell.spawn(argv, env=env, log_path=browser.out / "jupyter-lab.log")
    try:
        browser.wait(lambda: _api(base, token, "/api/status"), 90, "jupyter lab to answer")
        browser.open(f"{base}/lab/tree/00_start_here.ipynb?token={token}")
        b = browser
        b.wait(lambda: b.driver.find_elements("css selector", ".jp-Notebook .jp-Cell"), 90,
               "the notebook to open")
        # the kernel must be there before Run All (else the run waits for "Select Kernel")
        b.wait(lambda: _api(base, token, "/api/kernels"), 90, "the notebook's kernel to start")
        b.shot("opened")
        b.driver.find_element("xpath", "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']").click()
        b.wait(lambda: b.driver.find_element(
            "xpath", "//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']"), 10,
            "the Run menu").click()
        # widgets re-render their DOM while they update: every read finds its elements afresh
        # (inside b.wait, which retries on a stale element)
        css = "css selector"
        b.wait(lambda: b.driver.find_element(css, "div.runbook-status-board"), 180, "the status board")

        def board_rows() -> list[tuple[str | None, str | None]] | None:
            rows = b.driver.find_elements(css, "tr.runbook-board-row")
            got = [(r.get_attribute("data-step"), r.get_attribute("data-state")) for r in rows]
            return got if len(got) >= 3 else None

        rows = b.wait(board_rows, 30, "the board's rows")
        assert [step for step, _ in rows][:3] == ["01", "02", "03"], rows
        assert all(state == "never run" for _, state in rows), rows
        nxt = b.wait(lambda: b.driver.find_element(css, "p.runbook-next-step").text, 30, "the next step")
        assert "01_install_build_tools" in nxt or "step 1" in nxt.lower() or "Run" in nxt, nxt
        b.js("document.querySelector('div.runbook-status-board').scrollIntoView()")
        b.shot("status-board")
        b.wait(lambda: b.driver.find_element(css, ".runbook-start-form").is_displayed(), 120, "the form")

        def press_run() -> bool:
            button = b.driver.find_element(css, "button.runbook-run-01")
            b.js("arguments[0].scrollIntoView({block: 'center'})", button)
            if not button.is_displayed():
                return False
            b.shot("form")
            button.click()
            return True

        b.wait(press_run, 30, "step 1's Run button")
        b.wait(lambda: b.driver.find_elements(
            css, ".runbook-verdict-01 .runbook-verdict[data-verdict='PASS']"), 240, "step 1's verdict PASS")
        table_text = b.wait(lambda: b.driver.find_element(
            css, ".runbook-result-01 table.runbook-run-result").text, 60, "step 1's result table")
        href = b.wait(lambda: b.driver.find_element(
            css, ".runbook-result-01 a.runbook-report-link").get_attribute("href"), 30, "the report link")
        b.js("var t = document.querySelector('.runbook-result-01 table.runbook-run-result');"
             " if (t) t.scrollIntoView({block: 'center'});")
        for no in b.driver.find_elements("xpath", "//div[contains(@class,'Toastify')]//button[normalize-space()='No']"):
            try:
                no.click()  # JupyterLab's "get notified about news?" toast would cover the table
            except Exception:  # noqa: BLE001 - gone already
                pass
        b.shot("step1-passed")
        assert "PASS" in table_text, table_text
        assert href.endswith(".html"), href
        reports = sorted((tmp_path / "reports").glob("*-01_install_build_tools.html"))
        assert reports and reports[-1].name in href, (href, reports)
        assert json.loads(reports[-1].with_suffix(".json").read_text())["status"] == "PASS"
        # the board above is refreshed in place: step 1's row now says PASS
        b.wait(lambda: b.driver.find_elements(
            "css selector", "tr.runbook-board-row[data-step='01'][data-state='PASS']"), 30,
            "the board's step 1 row to say PASS")
        b.js("document.querySelector('div.runbook-status-board').scrollIntoView()")
        b.shot("board-after-step1")
    finally:
        try:  # the kernels first (they run in their own sessions), then the server's group
            for k in _api(base, token, "/api/kernels") or []:  # type: ignore[union-attr]
                _api(base, token, f"/api/kernels/{k['id']}", method="DELETE")
        except Exception:
            pass
        lab.stop(grace=15)
        deadline = time.monotonic() + 5
        while lab.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not lab.running()
