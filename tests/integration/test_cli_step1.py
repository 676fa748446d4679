"""`runbook` end to end for step 1: real papermill kernels, real tool checks, real reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.integration

RUNBOOK = [sys.executable, "-m", "runbook_lib.cli"]


def runbook(*args: str, env: dict[str, str] | None = None, timeout: int = 300):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([*RUNBOOK, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def reports(d: Path, suffix: str) -> list[Path]:
    return sorted(d.glob(f"*{suffix}"))


def test_run_step1_passes_and_writes_three_reports(tmp_path):
    res = runbook("run", "01_install_build_tools", "--report-dir", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    (nb,), (html,), (js,) = reports(tmp_path, ".ipynb"), reports(tmp_path, ".html"), reports(tmp_path, ".json")
    assert nb.name.endswith("-01_install_build_tools.ipynb")
    text = html.read_text()
    assert ">mkosi<" in text and ">debootstrap<" in text
    data = json.loads(js.read_text())
    assert data["status"] == "PASS"
    assert [s["step"] for s in data["steps"]] == ["step 1: tools: pre-flight", "step 1: tools: run", "step 1: tools"]


def test_bad_choice_exits_2_and_names_parameter(tmp_path):
    res = runbook("run", "01_install_build_tools", "-p", "mode", "nonsense", "--report-dir", str(tmp_path))
    assert res.returncode == 2
    assert "'mode'" in res.stderr and "'sandbox'" in res.stderr and "'carbide'" in res.stderr
    assert not list(tmp_path.iterdir())  # nothing ran


def test_unknown_parameter_and_notebook_exit_2(tmp_path):
    res = runbook("run", "01", "-p", "instal_missing", "true", "--report-dir", str(tmp_path))
    assert res.returncode == 2 and "install_missing" in res.stderr
    res = runbook("run", "09_nope", "--report-dir", str(tmp_path))
    assert res.returncode == 2 and "unknown notebook" in res.stderr


def test_unwritable_report_dir_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = runbook("run", "01", "--report-dir", str(blocker / "reports"))
    assert res.returncode == 2 and "not writable" in res.stderr


def test_environment_error_exits_2_with_report(tmp_path):
    res = runbook("run", "01", "-p", "min_free_gb", "1e9", "--report-dir", str(tmp_path))
    assert res.returncode == 2, res.stdout
    assert "free disk" in res.stdout
    data = json.loads(reports(tmp_path, ".json")[0].read_text())
    assert data["status"] == "ERROR" and "free disk" in data["steps"][1]["cause"]


def test_failing_cell_still_writes_report_with_error_visible(tmp_path, repo):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nb = nbformat.read(repo / "notebooks" / "01_install_build_tools.ipynb", as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell("raise RuntimeError('injected failure')"))
    nbformat.write(nb, nbdir / "01_install_build_tools.ipynb")
    out = tmp_path / "out"
    res = runbook("run", "01", "--report-dir", str(out), env={"RUNBOOK_NOTEBOOKS_DIR": str(nbdir)})
    assert res.returncode == 2
    executed = nbformat.read(reports(out, ".ipynb")[0], as_version=4)
    assert any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in executed.cells)
    assert "injected failure" in reports(out, ".html")[0].read_text()
    data = json.loads(reports(out, ".json")[0].read_text())
    assert data["error"]["ename"] == "RuntimeError"


def test_params_and_list_commands():
    res = runbook("params", "01")
    assert res.returncode == 0 and "install_missing" in res.stdout and "bool" in res.stdout
    res = runbook("list")
    assert res.returncode == 0 and "01_install_build_tools" in res.stdout


def test_report_rebuilds_from_a_shared_notebook(tmp_path):
    assert runbook("run", "01", "--report-dir", str(tmp_path), "--quiet").returncode == 0
    nb = reports(tmp_path, ".ipynb")[0]
    copy = tmp_path / "shared" / "from-a-teammate.ipynb"
    copy.parent.mkdir()
    copy.write_bytes(nb.read_bytes())
    res = runbook("report", str(copy), "--hide-code")
    assert res.returncode == 0
    html = copy.with_suffix(".html").read_text()
    assert "ToolsStep(ctx" not in html and ">mkosi<" in html


def test_secret_parameter_is_redacted_but_its_public_default_is_not(tmp_path, repo):
    """Step 2's root_password: a real value is scrubbed everywhere; the documented default is not."""
    from runbook_lib.report.export import write_reports

    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"parameters": {"root_password": "Hunter2-xyz"}}
    nb.cells = [nbformat.v4.new_code_cell(
        "print('x')", outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="pw Hunter2-xyz in /root/.local/share/carbide-runbooks\n")])]
    path = tmp_path / "r.ipynb"
    nbformat.write(nb, path)
    write_reports(path, "02_build_ipxe_image", {"root_password": "Hunter2-xyz"})
    text = path.read_text() + path.with_suffix(".html").read_text() + path.with_suffix(".json").read_text()
    assert "Hunter2-xyz" not in text and "carbide-runbooks" in text
