"""Every way a `runbook run` can end maps to one exit code and one report status.

As papermill's own tests do (broken.ipynb, sysexit0.ipynb, ...), each ending has a tiny notebook
in tests/fixtures/run_endings/; each runs through the real CLI (papermill, a real kernel) and
must leave all three report files. A report never says PASS for a run that did not finish.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from runbook_lib.cli import main

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "run_endings"

ENDINGS = [  # notebook, exit code, status in the JSON summary
    ("pass", 0, "PASS"),
    ("pass_then_kernel_death", 2, "ERROR"),
    ("pass_then_value_error", 2, "ERROR"),
    ("pass_then_sysexit0", 2, "ERROR"),
    ("pass_then_sysexit0_at_end", 0, "PASS"),
    ("pass_then_sysexit1", 2, "ERROR"),
    ("pass_then_keyboard_interrupt", 2, "ERROR"),
    ("fail_then_exception", 1, "FAIL"),
    ("no_result", 2, "ERROR"),
]


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str) -> tuple[int, Path]:
    monkeypatch.setenv("RUNBOOK_NOTEBOOKS_DIR", str(FIXTURES))
    reports = tmp_path / "reports"
    code = main(["run", target, "--report-dir", str(reports), "--quiet"])
    return code, reports


def _summary(reports: Path) -> tuple[dict, Path]:
    found = sorted(reports.glob("*.json"))
    assert len(found) == 1, sorted(p.name for p in reports.iterdir())
    return json.loads(found[0].read_text()), found[0]


@pytest.mark.parametrize("name,exit_code,status", ENDINGS, ids=[e[0] for e in ENDINGS])
def test_run_ending(name, exit_code, status, tmp_path, monkeypatch, capsys):
    code, reports = _run(tmp_path, monkeypatch, name)
    out = capsys.readouterr().out
    summary, json_path = _summary(reports)
    assert (code, summary["status"], summary["exit_code"]) == (exit_code, status, exit_code), out
    assert json_path.with_suffix(".ipynb").is_file() and json_path.with_suffix(".html").is_file()
    assert f"== {status} {name}" in out
    if status != "PASS" and name != "fail_then_exception":
        assert summary["error"] and summary["error"]["ename"], summary


def test_a_dead_kernel_is_named_in_the_output_and_the_summary(tmp_path, monkeypatch, capsys):
    code, reports = _run(tmp_path, monkeypatch, "pass_then_kernel_death")
    out = capsys.readouterr().out
    summary, json_path = _summary(reports)
    assert code == 2 and "kernel died" in out
    assert summary["error"]["ename"] == "DeadKernelError" and "kernel died" in summary["error"]["evalue"]
    assert summary["run_failure"]["kind"] == "kernel died"
    assert "The run did not finish: kernel died" in json_path.with_suffix(".html").read_text()


def test_a_notebook_file_outside_the_registry_runs_by_path(tmp_path, capsys):
    reports = tmp_path / "reports"
    code = main(["run", str(FIXTURES / "fail_then_exception.ipynb"), "--report-dir", str(reports),
                 "--quiet"])
    assert code == 1 and _summary(reports)[0]["status"] == "FAIL"


def test_a_report_that_cannot_be_written_leaves_nothing_unredacted(tmp_path, monkeypatch, capsys):
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))  # where papermill's output goes first
    code, reports = _run(tmp_path, monkeypatch, "report_write_fails")
    err = capsys.readouterr().err
    assert code == 2 and "could not be written" in err and "IsADirectoryError" in err
    left = [p for p in reports.rglob("*") if p.is_file()]
    assert not [p for p in left if p.suffix in (".ipynb", ".json")], left
    assert not [p for p in left + list(private.rglob("*")) if "Hunter2-xyz" in p.read_text()]
    assert not list(private.iterdir())  # the private copy of the executed notebook is gone
