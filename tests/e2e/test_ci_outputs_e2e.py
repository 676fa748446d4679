"""A real boot through `runbook run 03 --junit-xml`: the summary JSON carries the artifacts that were
booted (size, sha256 as on disk), the boot milestones with their times, accel used and why; the JUnit
file is valid junit-10.xsd and times the boot's run check."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from runbook_lib.boot.standin import free_port
from runbook_lib.report.export import summary_schema

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def test_a_real_boot_fills_the_record_and_the_junit(session_build, run_history, tmp_path, no_leftover_processes,
                                                     junit_schema):
    schema = junit_schema
    art: Path = session_build["dir"]
    xml = tmp_path / "boot.xml"
    reports = tmp_path / "reports"
    res = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "03", "-p", "artifacts_dir", str(art),
                          "-p", "port", str(free_port()), "--report-dir", str(reports), "--quiet",
                          "--junit-xml", str(xml)],
                         capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    (js,) = sorted(reports.glob("*.json"))
    data = json.loads(js.read_text())
    jsonschema.Draft202012Validator(summary_schema()).validate(data)
    # artifacts: what was booted, with the sizes and hashes on disk
    on_disk = {p.name: p for p in art.iterdir() if p.is_file() and not p.name.startswith(".")}
    listed = {a["name"]: a for a in data["artifacts"]}
    assert set(on_disk) <= set(listed), (sorted(on_disk), sorted(listed))
    for name in ("ipxe.efi", "carbide.efi"):
        assert listed[name]["size"] == on_disk[name].stat().st_size
        assert listed[name]["sha256"] == _sha256(on_disk[name])
    # boot milestones with times, accel used and why, versions
    boot = data["boot"]
    names = [m["name"] for m in boot["milestones"]]
    assert names[-1] == "login_prompt" and boot["reached"] == "login_prompt"
    assert all(m["seconds"] is not None for m in boot["milestones"])
    accel = data["host"]["accel"]
    assert accel["requested"] == "auto" and accel["used"] in ("kvm", "tcg")
    assert accel["why"].startswith("kvm: " if accel["used"] == "kvm" else "KVM unusable, falling back to TCG")
    assert data["host"]["versions"]["qemu"] and data["host"]["versions"]["ipxe"]
    assert any(log["name"] == "boot/serial.log" and log["size"] > 0 for log in data["logs"])
    assert data["history_records"] and Path(data["history_records"][0]).is_file()

    doc = etree.parse(str(xml))
    assert schema.validate(doc), schema.error_log
    names = doc.xpath("//testcase/@name")
    assert names == [s["step"] for s in data["steps"]]
    (run_case,) = doc.xpath("//testcase[@name='step 3: boot: run']")
    assert float(run_case.get("time")) == pytest.approx(boot["boot_s"], abs=0.001)
    assert not doc.xpath("//failure | //error")
