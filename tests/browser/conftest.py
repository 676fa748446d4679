"""A real browser for the browser tests: Debian's chromium + chromium-driver, driven by selenium.

Nothing is downloaded: the driver is /usr/bin/chromedriver (selenium's Service) and the
browser /usr/bin/chromium (options.binary_location), so selenium-manager has nothing to look
up, and SE_OFFLINE=true forbids it the network anyway. Headless; --no-sandbox as root.
Browser console messages are collected through goog:loggingPrefs.

Screenshots and page sources go to $RUNBOOK_BROWSER_ARTIFACTS (default: reports/browser/ in the
checkout, which git ignores), one directory per test.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS_ENV = "RUNBOOK_BROWSER_ARTIFACTS"
# A handler planted in console output: if it ever runs, it leaves this global behind.
PWNED = "runbookPwned"
PLANTED = f"<img src=x onerror={PWNED}=1>"


def artifacts_root() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or REPO / "reports" / "browser")


class Browser:
    """One headless chromium; the helpers the browser tests share."""

    def __init__(self, driver: Any, out: Path) -> None:
        self.driver = driver
        self.out = out
        self.shots: list[Path] = []

    def open(self, target: str | Path) -> None:
        url = target if isinstance(target, str) else Path(target).absolute().as_uri()
        self.driver.get(url)
        self.wait(lambda: self.js("return document.readyState") == "complete", 30, "page load")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, cond: Callable[[], Any], timeout: float, what: str, poll: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = cond()
                if value:
                    return value
            except Exception as exc:  # the element is not there yet
                last_exc = exc
            time.sleep(poll)
        self.shot(f"timeout-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
        raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                             + (f" (last error: {last_exc})" if last_exc else ""))

    def console(self) -> list[dict[str, Any]]:
        """Browser console messages since the last call (goog:loggingPrefs)."""
        return list(self.driver.get_log("browser"))

    def console_errors(self) -> list[str]:
        return [f"{m.get('level')}: {m.get('message')}" for m in self.console() if m.get("level") == "SEVERE"]

    def shot(self, name: str) -> Path:
        path = self.out / f"{len(self.shots) + 1:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        self.shots.append(path)
        return path

    def save_source(self, name: str) -> Path:
        path = self.out / f"{name}.html"
        path.write_text(self.driver.page_source, encoding="utf-8")
        return path

    def pwned(self) -> bool:
        return bool(self.js(f"return window.{PWNED} !== undefined || document.title === '1'"))

    def in_first_screen(self, selector: str) -> dict[str, Any]:
        """Where the element is, and whether it is wholly inside the viewport at scroll 0."""
        return dict(self.js(
            "window.scrollTo(0, 0);"
            "const el = document.querySelector(arguments[0]);"
            "if (!el) return {found: false};"
            "const r = el.getBoundingClientRect();"
            "const s = getComputedStyle(el);"
            "return {found: true, top: r.top, bottom: r.bottom, height: r.height,"
            " viewport: window.innerHeight, scrollY: window.scrollY,"
            " visible: s.display !== 'none' && s.visibility !== 'hidden' && r.height > 0,"
            " inside: r.top >= 0 && r.bottom <= window.innerHeight};", selector))


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Any:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            msg = f"needs {path} (Debian packages chromium, chromium-driver)"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(msg + " (CI=true: scripts/test.sh installs them)", pytrace=False)
            pytest.skip(msg)
    pytest.importorskip("selenium", reason="pip install -e '.[test]' (selenium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never download a browser or driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:100]
    out = artifacts_root() / name
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        if old.is_file():
            old.unlink()
    service = Service(executable_path=CHROMEDRIVER, log_output=str(out / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    pid = service.process.pid if service.process is not None else None
    b = Browser(driver, out)
    try:
        yield b
    finally:
        try:
            b.shot("end")
        except Exception:
            pass
        driver.quit()
        if pid is not None:  # quit() stops chromedriver (and with it the browser)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid), "chromedriver still running"
        (out / "shots.json").write_text(json.dumps([str(p) for p in b.shots], indent=1))


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "gone"
