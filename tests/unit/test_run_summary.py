"""The summary JSON is a versioned record with a JSON Schema (draft 2020-12) in the package; the run's
facts (host, accel and why, artifacts, milestones, logs) come from what the steps left behind."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from runbook_lib.report import run_facts
from runbook_lib.report.export import (SUMMARY_SCHEMA_VERSION, summary_schema, summary_schema_path,
                                       write_reports)
from runbook_lib.result import Status, StepResult

OLD_KEYS = {"notebook", "status", "exit_code", "steps", "error", "run_failure", "parameters"}


def validator() -> jsonschema.protocols.Validator:
    schema = summary_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _nb(results, params=None, start="2026-11-26T18:01:28.751062+00:00", end="2026-11-26T18:02:21.536485+00:00"):
    nb = new_notebook()
    nb.metadata["papermill"] = {"parameters": dict(params or {}), "start_time": start, "end_time": end,
                                "duration": 52.785423}
    nb.cells = [new_code_cell("r", execution_count=i + 1,
                              outputs=[new_output("display_data", data=r._repr_mimebundle_())])
                for i, r in enumerate(results)]
    return nb


def test_the_schema_is_draft_2020_12_and_ships_in_the_package():
    path = summary_schema_path()
    assert path.is_file() and path.parent.name == "schemas" and "runbook_lib" in path.parts
    schema = summary_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator
    validator()  # check_schema raises on a malformed schema


def test_a_written_summary_validates_and_keeps_the_old_keys(tmp_path):
    path = tmp_path / "20261126T180128Z-03_pxe_boot_vm.ipynb"
    bad = StepResult("step 3: boot: run", Status.FAIL, "kernel panic", cause="Kernel panic - not syncing",
                     fix="check the UKI's cmdline")
    nbformat.write(_nb([StepResult("step 3: boot: pre-flight", Status.PASS, "ready to boot"), bad],
                       params={"log_dir": str(tmp_path / "logs"), "root_password": "Hunter2-xyz"}), path)
    summary, paths = write_reports(path, "03_pxe_boot_vm", {"root_password": "Hunter2-xyz"})
    data = json.loads(paths["json"].read_text())
    validator().validate(data)
    assert OLD_KEYS <= set(data) and data["schema_version"] == SUMMARY_SCHEMA_VERSION
    assert data["status"] == "FAIL" and data["exit_code"] == 1
    assert data["started"] == "2026-11-26T18:01:28.751062Z" and data["duration_s"] == pytest.approx(52.785)
    assert data["first_failure"]["step"] == "step 3: boot: run"
    assert data["first_failure"]["cause"] == "Kernel panic - not syncing"
    # effective parameters: the registered notebook's defaults plus what was given, secrets masked
    eff = data["effective_parameters"]
    assert eff["firmware"] == "uefi" and eff["network"] == "user" and eff["log_dir"].endswith("logs")
    assert "Hunter2-xyz" not in paths["json"].read_text()
    assert data["paths"]["html"] == str(paths["html"].absolute())
    assert data["host"] is None  # not gathered: `runbook report` of a notebook that carries no facts


@pytest.mark.parametrize("breakage", [
    lambda d: d.pop("schema_version"),
    lambda d: d.__setitem__("schema_version", "2.0"),
    lambda d: d.__setitem__("status", "OK"),
    lambda d: d["steps"][0].pop("cause"),
    lambda d: d.__setitem__("exit_code", 3),
    lambda d: d.__setitem__("artifacts", [{"name": "ipxe.efi", "size": 1, "sha256": "xyz"}]),
    lambda d: d.__setitem__("started", "yesterday"),
])
def test_the_schema_rejects_a_broken_record(tmp_path, breakage):
    path = tmp_path / "run.ipynb"
    nbformat.write(_nb([StepResult("step 1: tools", Status.PASS, "ok")]), path)
    _, paths = write_reports(path, "01_install_build_tools", {})
    good = json.loads(paths["json"].read_text())
    validator().validate(good)
    broken = copy.deepcopy(good)
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(broken)


def _boot_result(log_dir: Path) -> None:
    """What step 3's run part saves as boot/result.json (StepResult.to_dict of a real boot)."""
    (log_dir / "boot").mkdir(parents=True)
    (log_dir / "boot" / "serial.log").write_text("Welcome\n")
    data = {"step": "step 3: boot: run", "status": "PASS", "summary": "login prompt after 50.41s",
            "cause": None, "fix": None,
            "details": {"qemu_command": "qemu-system-x86_64 -name carbide-pxe-client -machine q35 "
                                        "-accel tcg,thread=multi -m 4096",
                        "timing": {"boot_s": 50.41, "login_prompt_s": 50.41},
                        "analysis": {"last_milestone": "login_prompt", "milestones": [
                            {"name": "firmware_start", "label": "firmware started", "seconds": 4.486, "line": 1},
                            {"name": "login_prompt", "label": "login prompt", "seconds": 50.411, "line": 654}]}}}
    (log_dir / "boot" / "result.json").write_text(json.dumps(data))


def test_facts_come_from_the_log_dir_and_this_runs_history_records(tmp_path, run_history):
    from runbook_lib import history

    log_dir = tmp_path / "reports" / "x.logs"
    _boot_result(log_dir)
    art = tmp_path / "tree" / "pxe" / "static" / "blobs" / "internal" / "x86_64"
    art.mkdir(parents=True)
    (art / "carbide.root").write_bytes(b"root" * 1000)
    (art / "carbide.manifest").write_text('{"packages": []}')
    started = history.now()
    params = {"firmware": "uefi", "network": "user", "accel": "auto", "log_dir": str(log_dir)}
    rec = history.new_record("boot", tree_root=tmp_path / "tree", tree_kind="directory", params=params,
                             spec=None, verdict="PASS", summary="login", started=started, artifacts_dir=art,
                             boot={"accel": "tcg", "milestones": []}, report={"log_dir": str(log_dir)})
    history.write(rec)
    other = history.new_record("boot", tree_root=tmp_path / "tree", tree_kind="directory", params=params,
                               spec=None, verdict="PASS", summary="another run", artifacts_dir=art,
                               report={"log_dir": str(tmp_path / "elsewhere")})
    history.write(other)

    facts = run_facts.gather(new_notebook(), log_dir, started, params)
    assert facts["history_records"] == [str(rec.path)]  # the other run's record is not this run's
    arts = {a["name"]: a for a in facts["artifacts"]}
    assert arts["carbide.root"]["sha256"] == hashlib.sha256(b"root" * 1000).hexdigest()
    assert arts["carbide.root"]["size"] == 4000
    boot = facts["boot"]
    assert [m["name"] for m in boot["milestones"]] == ["firmware_start", "login_prompt"]
    assert boot["reached"] == "login_prompt" and boot["login_prompt_s"] == 50.41
    assert facts["host"]["accel"]["used"] == "tcg" and facts["host"]["accel"]["requested"] == "auto"
    assert facts["durations"] == {"step 3: boot: run": 50.41}
    assert {"name": "boot/serial.log", "size": 8} in facts["logs"]
    assert facts["host"]["distro"] and facts["host"]["kernel"]


def test_accel_why_is_step3s_own_preflight_reason(tmp_path):
    """The pre-flight table step 3 really renders carries why KVM was not used."""
    from runbook_lib.accel import KvmProbe
    from runbook_lib.boot.step import preflight, preflight_result
    from runbook_lib.params import STEP3

    params = STEP3.validate({"artifacts_dir": str(tmp_path)})
    plan = preflight(params, probe=lambda: KvmProbe(False, "planted: guest failed <emulation & co>"))
    nb = _nb([preflight_result(plan)])
    why = run_facts.accel_reason(nb)
    assert why == "KVM unusable, falling back to TCG (slower): planted: guest failed <emulation & co>"
    acc = run_facts.accel_facts(nb, None, [], params)
    assert acc == {"requested": "auto", "used": None, "why": why}


def test_a_notebook_without_a_vm_says_so():
    acc = run_facts.accel_facts(new_notebook(), None, [], {})
    assert acc["used"] is None and acc["why"] == "this run started no VM"


def test_tool_versions_are_parsed_not_raw():
    v = run_facts.tool_versions()
    assert set(v) == {"qemu", "mkosi", "ipxe_qemu_package"}
    if v["qemu"] is not None:
        assert v["qemu"][0].isdigit() and "QEMU" not in v["qemu"]


def test_a_shared_copy_rebuilds_the_same_record(tmp_path):
    """Facts gathered at run time travel in the notebook: `runbook report` on a renamed copy keeps
    the host, the effective parameters of the registered notebook and the timings."""
    path = tmp_path / "20261126T180128Z-03_pxe_boot_vm.ipynb"
    nbformat.write(_nb([StepResult("step 3: boot: pre-flight", Status.PASS, "ready to boot")],
                       params={"log_dir": str(tmp_path / "logs"), "firmware": "bios"}), path)
    _, paths = write_reports(path, "03_pxe_boot_vm", {}, gather=True)
    first = json.loads(paths["json"].read_text())
    assert first["host"]["kernel"] and first["effective_parameters"]["firmware"] == "bios"
    copy_ = tmp_path / "shared" / "from-a-teammate.ipynb"
    copy_.parent.mkdir()
    copy_.write_bytes(paths["ipynb"].read_bytes())
    _, again = write_reports(copy_, copy_.stem, {})
    second = json.loads(again["json"].read_text())
    validator().validate(second)
    for key in ("host", "effective_parameters", "started", "duration_s", "steps", "status", "title"):
        assert second[key] == first[key], key
