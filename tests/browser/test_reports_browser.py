"""Reports opened in a real browser (headless chromium): each opens without console errors, its
summary card is on the first screen above the first code cell, the card's verdict is the summary
JSON's, its links land on something, and markup planted in a serial console stays text.

The reports are made here, by the real `runbook` command: step 1 (PASS), step 3 stopped by its
pre-flight (no artifacts), a saved console whose failing line carries an ``<img onerror>``
replayed through step 3's views (`runbook report --embed-logs`: the log decoded in the page),
and a real PXE boot (e2e) whose chain script echoes the markup on the serial console.
A positive control first shows that the planted handler does fire in this browser when the
markup is not escaped, so "not pwned" means something.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from runbook_lib.boot.standin import free_port
from runbook_lib.report.replay import write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.integration,
              pytest.mark.needs_tool("chromium", "the browser the reports are opened in"),
              pytest.mark.needs_tool("chromedriver", "selenium drives chromium through it")]

REPO = Path(__file__).resolve().parents[2]
BOOTLOGS = REPO / "tests" / "fixtures" / "bootlogs"
PWNED = "runbookPwned"
PLANTED = f"<img src=x onerror={PWNED}=1>"


def runbook(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(os.environ))


def only_report(report_dir: Path) -> tuple[Path, dict]:
    (js,) = sorted(report_dir.glob("*.json"))
    return js.with_suffix(".html"), json.loads(js.read_text())


def check_report(browser, html: Path, data: dict, name: str) -> None:
    """Everything every report must do in the browser."""
    browser.console()  # drop what an earlier page logged
    browser.open(html)
    browser.shot(f"{name}-first-screen")
    errors = browser.console_errors()
    assert not errors, f"{html.name}: console errors: {errors}"
    where = browser.in_first_screen("#runbook-summary-card .runbook-card-head")
    assert where["found"], f"{html.name}: no summary card"
    assert where["visible"] and where["inside"], f"{html.name}: card head not on the first screen: {where}"
    card = browser.in_first_screen("#runbook-summary-card")
    assert card["top"] < 200, f"{html.name}: the card does not open the page: {card}"
    verdict = browser.js("return document.querySelector('#runbook-summary-card .runbook-card-verdict').innerText")
    assert verdict.strip() == data["status"], (verdict, data["status"])
    assert browser.js("return document.querySelector('#runbook-summary-card').dataset.verdict") == data["status"]
    before_code = browser.js(
        "const card = document.querySelector('#runbook-summary-card');"
        "const code = document.querySelector('.jp-CodeCell');"
        "return !code || !!(card.compareDocumentPosition(code) & Node.DOCUMENT_POSITION_FOLLOWING);")
    assert before_code, "the card is not above the first code cell"
    broken = browser.js(
        "return [...document.querySelectorAll('#runbook-summary-card a[href^=\"#\"]')]"
        ".map(a => decodeURIComponent(a.getAttribute('href').slice(1)))"
        ".filter(id => !document.getElementById(id));")
    assert broken == [], f"card links to nothing: {broken}"
    facts = browser.js("return document.querySelector('#runbook-summary-card .runbook-card-facts').innerText")
    assert data["notebook"] in facts and (data["host"] or {}).get("hostname", "") in facts
    ff = data.get("first_failure")
    if ff and ff.get("cause"):
        cause = browser.js("return document.querySelector('#runbook-summary-card .runbook-card-cause').innerText")
        assert ff["cause"][:200] in cause, (ff["cause"], cause)
    assert not browser.pwned(), f"{html.name}: a planted onerror handler ran"


def test_the_planted_handler_fires_when_not_escaped(browser):
    """The positive control: the detector sees the handler run when the markup is live HTML."""
    browser.open("data:text/html;charset=utf-8," + urllib.parse.quote(f"<p>serial</p>{PLANTED}"))
    browser.wait(browser.pwned, 10, "the planted handler to run")


def test_step1_pass_report(browser, tmp_path):
    res = runbook("run", "01", "--report-dir", str(tmp_path), "--quiet")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    html, data = only_report(tmp_path)
    assert data["status"] == "PASS"
    check_report(browser, html, data, "step1")
    assert browser.js("return getComputedStyle(document.querySelector('.runbook-card-verdict'))"
                      ".backgroundColor") == "rgb(26, 127, 55)"  # PASS is green
    # nothing fetched from elsewhere: the page works offline, attached to a bug report
    external = browser.js("return [...document.querySelectorAll('script[src], link[href]')]"
                          ".map(e => e.src || e.href).filter(u => /^https?:/.test(u));")
    assert external == []


def test_step3_stopped_by_its_preflight(browser, tmp_path):
    res = runbook("run", "03", "-p", "artifacts_dir", str(tmp_path / "no-such-dir"), "-p", "port",
                  str(free_port()), "--report-dir", str(tmp_path / "r"), "--quiet")
    html, data = only_report(tmp_path / "r")
    assert res.returncode == data["exit_code"] != 0, res.stdout[-2000:]
    assert data["first_failure"]["fix"]
    check_report(browser, html, data, "step3-preflight")
    fix = browser.js("return document.querySelector('#runbook-summary-card .runbook-card-fix').innerText")
    assert data["first_failure"]["fix"][:100] in fix


def test_replayed_console_with_planted_markup_stays_text(browser, tmp_path):
    log = tmp_path / "serial.log"
    text = (BOOTLOGS / "uefi_ipxe_efi_dnsmasq_uki_404_shell.log").read_text()
    assert "carbide-missing.efi" in text
    log.write_text(text.replace("carbide-missing.efi", f"carbide-{PLANTED}.efi"))
    nb = write_notebook(tmp_path / "replayed_console.ipynb", log)
    res = runbook("run", str(nb), "--report-dir", str(tmp_path / "r"), "--quiet")
    html, data = only_report(tmp_path / "r")
    assert data["status"] == "FAIL", res.stdout[-3000:] + res.stderr[-3000:]
    assert PLANTED in data["first_failure"]["cause"]  # the markup reached the cause, card and tables
    res = runbook("report", str(html.with_suffix(".ipynb")), "--embed-logs")
    assert res.returncode == 1, res.stdout + res.stderr
    data = json.loads(html.with_suffix(".json").read_text())
    check_report(browser, html, data, "replayed")
    # the markup is on the page as text (the card's cause, the result, the excerpts)
    shown = browser.js("return document.body.innerText")
    assert shown.count(PLANTED) >= 3, shown.count(PLANTED)
    assert browser.js("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    # the embedded serial log, decoded in the page by DecompressionStream, is text too
    browser.js("document.querySelector('#runbook-embedded-logs').scrollIntoView()")
    browser.js("document.querySelector('.runbook-embedded-log[data-log=\"serial console\"] button').click()")
    pre = ".runbook-embedded-log[data-log=\"serial console\"] pre"
    browser.wait(lambda: browser.js(f"return document.querySelector('{pre}').dataset.loaded"), 20,
                 "the embedded serial log to decode")
    decoded = browser.js(f"return document.querySelector('{pre}').textContent")
    assert PLANTED in decoded and "Start PXE over IPv4" in decoded
    assert decoded.count("\n") >= text.count("\n") - 1  # the whole (small) log
    browser.shot("replayed-embedded-log")
    assert not browser.console_errors() and not browser.pwned()
    assert browser.js("return document.querySelectorAll('img[src=\"x\"]').length") == 0


@pytest.mark.e2e
def test_a_real_boot_whose_console_prints_markup(browser, tmp_path, no_leftover_processes):
    """A real PXE boot under TCG: the chain script (autoexec.ipxe) echoes the markup, iPXE prints
    it on the serial console, the boot goes on to the login prompt."""
    from runbook_lib.paths import artifacts_dir, sandbox_workdir
    from runbook_lib.result import Status

    art = artifacts_dir(sandbox_workdir())
    needed = ("ipxe.efi", "autoexec.ipxe", "carbide.efi", "carbide.vmlinuz", "carbide.root")
    if any(not (art / n).is_file() for n in needed):
        from runbook_lib.sandbox import build

        assert build().status is Status.PASS, "the sandbox build the boot needs failed"
    mine = tmp_path / "artifacts"
    shutil.copytree(art, mine)
    auto = mine / "autoexec.ipxe"
    lines = auto.read_text().splitlines(keepends=True)
    assert lines[0].startswith("#!ipxe")
    auto.write_text(lines[0] + f"echo carbide-sandbox: planted {PLANTED}\n" + "".join(lines[1:]))
    res = runbook("run", "03", "-p", "artifacts_dir", str(mine), "-p", "port", str(free_port()),
                  "-p", "accel", "tcg", "--report-dir", str(tmp_path / "r"), "--quiet")
    html, data = only_report(tmp_path / "r")
    assert data["status"] == "PASS", res.stdout[-3000:] + res.stderr[-3000:]
    serial = Path(data["paths"]["log_dir"]) / "boot" / "serial.log"
    assert PLANTED in serial.read_text(errors="replace"), "iPXE did not print the planted line"
    check_report(browser, html, data, "real-boot")
    res = runbook("report", str(html.with_suffix(".ipynb")), "--embed-logs")
    assert res.returncode == 0, res.stdout + res.stderr
    check_report(browser, html, data, "real-boot-embedded")
    browser.js("document.querySelector('.runbook-embedded-log[data-log=\"serial console\"] button').click()")
    pre = ".runbook-embedded-log[data-log=\"serial console\"] pre"
    browser.wait(lambda: browser.js(f"return document.querySelector('{pre}').dataset.loaded"), 30,
                 "the embedded serial log to decode")
    assert PLANTED in browser.js(f"return document.querySelector('{pre}').textContent")
    page = html.read_text()
    assert PLANTED not in page  # only ever escaped (or compressed) in the file
    assert not browser.console_errors() and not browser.pwned()
