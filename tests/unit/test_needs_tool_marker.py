"""needs_tool: a missing test dependency skips locally but fails under CI=true (never a silent skip)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # runs pytest itself in a subprocess: seconds

TESTS = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        f"exec(compile(open({str(TESTS / 'conftest.py')!r}).read(), 'tests/conftest.py', 'exec'))\n")
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.needs_tool('definitely-not-a-tool-xyz', 'the fixture runs it')\n"
        "def test_needs_it():\n    pass\n\n"
        "@pytest.mark.needs_tool('sh')\n"
        "def test_has_it():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "--strict-markers", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_missing_tool_skips_locally(tmp_path: Path) -> None:
    out = _run(tmp_path, None)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 skipped" in out.stdout and "needs definitely-not-a-tool-xyz on PATH" in out.stdout


def test_missing_tool_fails_under_ci(tmp_path: Path) -> None:
    out = _run(tmp_path, "true")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 passed, 1 error" in out.stdout and "CI=true: a missing test dependency is a failure" in out.stdout
