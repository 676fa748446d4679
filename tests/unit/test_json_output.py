"""Every `--json` flag prints JSON alone on stdout; progress lines and notes go to stderr.

Each test parses the WHOLE of stdout, so one stray line (such as boot's `qemu: <command>`
note) fails it.
"""

from __future__ import annotations

import json
from pathlib import Path

from runbook_lib.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _stdout_json(capsys):
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_params_json(capsys):
    assert main(["params", "03", "--json"]) == 0
    data, _ = _stdout_json(capsys)
    assert {p["name"] for p in data} >= {"firmware", "network"}


def test_plan_json_for_the_sandbox_and_a_carbide_tree(capsys):
    assert main(["plan", "--json"]) == 0
    data, _ = _stdout_json(capsys)
    assert data["plan"]
    tree = FIXTURES / "carbide_tree" / "docs_era"
    assert main(["plan", "--json", "--tree", str(tree), "--variant", "package-only"]) == 0
    data, _ = _stdout_json(capsys)
    assert data["target"] and data["plan"]


def test_analyze_bootlog_json(capsys):
    log = FIXTURES / "bootlogs" / "uefi_uki_login.log"
    assert main(["analyze-bootlog", str(log), "--json"]) == 0
    data, _ = _stdout_json(capsys)
    assert data["verdict"] == "PASS"


def test_boot_json_on_a_preflight_failure(tmp_path, capsys):
    code = main(["boot", "--json", "-p", "artifacts_dir", str(tmp_path / "nonexistent"),
                 "-p", "accel", "tcg", "-p", "log_dir", str(tmp_path / "logs")])
    data, _ = _stdout_json(capsys)
    assert code == 1 and data["status"] == "FAIL" and "does not exist" in data["cause"]


def test_notes_printed_while_a_json_step_runs_go_to_stderr(capsys):
    """What `runbook boot --json` does around the boot: its `qemu: ...` note must not reach stdout."""
    from runbook_lib.boot.cli import report_step
    from runbook_lib.live import note
    from runbook_lib.result import Status, StepResult

    def booting() -> StepResult:
        note("qemu: qemu-system-x86_64 -machine q35 -m 4096 -serial file:serial.raw")
        print("a stray progress line")
        return StepResult("step 3: boot: run", Status.PASS, "login prompt")

    assert report_step(booting, as_json=True) == 0
    data, err = _stdout_json(capsys)
    assert data["status"] == "PASS" and "qemu: qemu-system-x86_64" in err and "stray" in err
    assert report_step(booting, as_json=False) == 0  # without --json, notes stay on stdout
    out = capsys.readouterr().out
    assert "qemu: qemu-system-x86_64" in out and "PASS: step 3: boot: run" in out


def test_analyze_bootlog_rejects_a_bad_success_pattern_before_reading(tmp_path, capsys):
    from runbook_lib.cli import main

    rc = main(["analyze-bootlog", str(tmp_path / "never-read.log"), "--success-pattern", "login:("])
    err = capsys.readouterr().err
    assert rc == 2 and "--success-pattern" in err and "not a valid regular expression" in err
    assert "cannot read" not in err  # rejected before the file was opened
