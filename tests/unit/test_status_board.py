"""Notebook 00's status board, from real run-history records and real-format summary JSONs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runbook_lib import history, status
from runbook_lib.params import STEP2, STEP3
from runbook_lib.paths import artifacts_dir
from runbook_lib.report.export import Summary
from runbook_lib.result import Status


def write_summary(directory: Path, stamp: str, notebook: str, verdict: str, cause: str | None = None,
                  fix: str | None = None, summary: str = "done") -> Path:
    """A summary as `runbook run` writes it (report.export.Summary), with its .html beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    step = {"step": f"{notebook}: run", "status": verdict, "summary": summary, "cause": cause, "fix": fix}
    data = Summary(notebook, Status(verdict), [step]).to_dict()
    path = directory / f"{stamp}-{notebook}.json"
    path.write_text(json.dumps(data, indent=2))
    path.with_suffix(".html").write_text("<html></html>")
    return path


def write_record(kind: str, tree: Path, verdict: str, finished: str, first_failure: str | None = None,
                 log_dir: str | None = None) -> history.Record:
    spec = STEP2 if kind == "build" else STEP3
    rec = history.new_record(kind, tree_root=tree, tree_kind="sandbox", params=spec.defaults(), spec=spec,
                             verdict=verdict, summary=f"{kind} {verdict.lower()}",
                             first_failure={"kind": "step", "text": first_failure} if first_failure else None,
                             report={"log_dir": log_dir} if log_dir else None)
    rec.finished = finished
    history.write(rec)
    return rec


@pytest.fixture
def tree(tmp_path: Path, run_history) -> Path:
    t = tmp_path / "sandbox"
    t.mkdir()
    return t


def make_artifacts(tree: Path) -> None:
    d = artifacts_dir(tree)
    d.mkdir(parents=True)
    for name in ("ipxe.efi", "carbide.efi", "carbide.root"):
        (d / name).write_bytes(b"x")


def test_never_run_everywhere(tree, tmp_path):
    b = status.board(workdir=str(tree), report_dirs=[tmp_path / "reports"])
    assert [r.state for r in b.rows] == ["never run"] * 4
    assert [r.key for r in b.rows] == ["01", "02", "03", "04"]
    assert b.tree == str(tree.resolve()) and b.tree_kind == "sandbox" and b.artifacts == []
    assert b.next_step.startswith("Run step 1")


def test_step1_from_its_newest_report_and_builds_from_history(tree, tmp_path):
    reports = tmp_path / "reports"
    write_summary(reports, "20250101T100000Z", "01_install_build_tools", "FAIL", "mkosi missing", "apt install mkosi")
    write_summary(reports, "20250102T100000Z", "01_install_build_tools", "PASS", summary="all 22 tools ok")
    write_record("build", tree, "FAIL", "2025-01-02T11:00:00.000000Z", "ipxe.efi was not produced")
    b = status.board(workdir=str(tree), report_dirs=[reports])
    s1, s2 = b.row("01"), b.row("02")
    assert (s1.state, s1.source, s1.summary) == ("PASS", "report", "all 22 tools ok")
    assert s1.when == "2025-01-02T10:00:00Z" and s1.report and s1.report.endswith(".html")
    assert (s2.state, s2.source, s2.cause) == ("FAIL", "run history", "ipxe.efi was not produced")
    assert b.row("03").state == "never run"


def test_a_fail_report_gives_its_first_cause_and_fix(tree, tmp_path):
    reports = tmp_path / "reports"
    write_summary(reports, "20250103T100000Z", "03_pxe_boot_vm", "FAIL", "no DHCP offer", "check the bridge")
    b = status.board(workdir=str(tree), report_dirs=[reports])
    s3 = b.row("03")
    assert (s3.state, s3.cause, s3.fix) == ("FAIL", "no DHCP offer", "check the bridge")
    assert "no DHCP offer" in b.html() and "check the bridge" in b.html()


def test_the_newer_of_history_and_report_wins(tree, tmp_path):
    reports = tmp_path / "reports"
    write_summary(reports, "20250105T100000Z", "02_build_ipxe_image", "PASS")
    write_record("build", tree, "FAIL", "2025-01-04T10:00:00.000000Z", "older failure")
    assert status.board(workdir=str(tree), report_dirs=[reports]).row("02").state == "PASS"
    write_record("build", tree, "FAIL", "2025-01-06T10:00:00.000000Z", "newer failure")
    row = status.board(workdir=str(tree), report_dirs=[reports]).row("02")
    assert (row.state, row.cause) == ("FAIL", "newer failure")


def test_a_history_record_links_the_report_of_its_run(tree, tmp_path):
    reports = tmp_path / "reports"
    write_summary(reports, "20250105T100000Z", "03_pxe_boot_vm", "PASS")
    write_record("boot", tree, "PASS", "2025-01-05T10:01:00.000000Z",
                 log_dir=str(reports / "20250105T100000Z-03_pxe_boot_vm.logs"))
    row = status.board(workdir=str(tree), report_dirs=[reports]).row("03")
    assert row.source == "run history" and row.report == str(reports / "20250105T100000Z-03_pxe_boot_vm.html")


def test_newest_readable_report_is_used_and_a_broken_one_is_skipped_with_a_note(tree, tmp_path):
    reports = tmp_path / "reports"
    write_summary(reports, "20250101T000000Z", "01_install_build_tools", "PASS")
    (reports / "20250109T000000Z-01_install_build_tools.json").write_text("{not json")
    b = status.board(workdir=str(tree), report_dirs=[reports])
    assert b.row("01").state == "PASS" and b.row("01").when == "2025-01-01T00:00:00Z"
    assert any("20250109T000000Z" in n for n in b.notes)


def test_reports_of_other_notebooks_and_other_files_are_ignored(tree, tmp_path):
    reports = tmp_path / "reports"
    write_summary(reports, "20250101T000000Z", "00_start_here", "PASS")
    (reports / "notes.json").write_text("{}")
    (reports / "20250101T000000Z-01_install_build_tools.ipynb").write_text("{}")
    assert [r.state for r in status.board(workdir=str(tree), report_dirs=[reports]).rows] == ["never run"] * 4


@pytest.mark.parametrize("states,arts,expected", [
    (("PASS", "never run", "never run", "never run"), False, "Run step 2: no artifacts yet."),
    (("PASS", "PASS", "never run", "never run"), True, "Boot them: step 3."),
    (("PASS", "never run", "never run", "never run"), True, "Boot them: step 3."),
    (("PASS", "PASS", "PASS", "never run"), True, "All three passed: use 04_validate after each change."),
    (("never run", "never run", "never run", "never run"), False, "Run step 1: it has never run here"),
    (("FAIL", "PASS", "PASS", "PASS"), True, "Run step 1 again once this is fixed: the cause."),
    (("PASS", "FAIL", "never run", "never run"), True, "Run step 2 again once this is fixed: the cause."),
    (("PASS", "PASS", "ERROR", "never run"), True, "Run step 3 again once this is fixed: the cause."),
    (("PASS", "PASS", "PASS", "FAIL"), True, "Steps 1-3 passed, the last validate did not: the cause."),
])
def test_the_next_step_sentence(states, arts, expected):
    rows = {}
    for i, (key, state) in enumerate(zip(("01", "02", "03", "04"), states)):
        rows[key] = status.StepState(key, "nb", "t", state, when=None if state == "never run" else
                                     f"2025-01-0{i + 1}T00:00:00Z", cause="the cause")
    sentence = status.next_step(rows, [], ["ipxe.efi"] if arts else [], Path("/a"))
    assert sentence.startswith(expected)
    assert sentence.count(". ") == 0  # one sentence


def test_missing_tools_come_first_in_the_sentence():
    rows = {k: status.StepState(k, "nb", "t", "PASS", when="2025-01-01T00:00:00Z") for k in ("01", "02", "03", "04")}
    s = status.next_step(rows, ["mkosi", "debootstrap", "qemu-system-x86_64", "swtpm"], ["x"], Path("/a"))
    assert s == ("Run step 1: 4 required tools are missing: mkosi, debootstrap, qemu-system-x86_64 and 1 more "
                 "(it installs them with install_missing).")


def test_a_passed_build_whose_artifacts_are_gone(tree):
    rows = {k: status.StepState(k, "nb", "t", "PASS" if k in ("01", "02") else "never run",
                                when="2025-01-01T00:00:00Z") for k in ("01", "02", "03", "04")}
    assert status.next_step(rows, [], [], Path("/x/y")) == "Run step 2: the artifacts it built are gone from /x/y."


def test_missing_tools_are_found_for_real_without_a_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: every required command is missing
    missing = status.missing_tools("sandbox")
    assert "mkosi" in missing and "debootstrap" in missing and "qemu-system-x86_64" in missing
    assert "cargo" not in missing  # carbide mode only


def test_artifacts_present_are_listed(tree, tmp_path):
    make_artifacts(tree)
    b = status.board(workdir=str(tree), report_dirs=[tmp_path / "r"])
    assert b.artifacts == ["carbide.efi", "carbide.root", "ipxe.efi"]


def test_renders_as_html_text_dict_and_a_pass_result(tree, tmp_path):
    reports = tmp_path / "reports"
    write_summary(reports, "20250103T100000Z", "02_build_ipxe_image", "FAIL",
                  "<img src=x onerror=alert(1)> in the log", "fix <b>it</b>")
    b = status.board(workdir=str(tree), report_dirs=[reports])
    page = b.html(link_base=tmp_path)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'class="runbook-status-board-table"' in page and 'data-step="02" data-state="FAIL"' in page
    assert 'href="reports/20250103T100000Z-02_build_ipxe_image.html"' in page  # relative to the notebook
    assert 'class="runbook-next-step"' in page
    text = str(b)
    assert "Step 2: build the image" in text and "FAIL" in text and f"next: {b.next_step}" in text
    d = b.to_dict()
    assert json.loads(json.dumps(d))["rows"][1]["state"] == "FAIL" and d["next_step"] == b.next_step
    res = b.result()
    assert res.status is Status.PASS and res.summary == b.next_step
    bundle = b._repr_mimebundle_()
    assert bundle["application/vnd.carbide-runbook.result+json"]["status"] == "PASS"


def test_default_report_dirs_include_the_run_report_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dirs = status.default_report_dirs("", str(tmp_path / "ci-reports" / "20250101T000000Z-00_start_here.logs"))
    assert dirs[-1] == tmp_path / "ci-reports" and tmp_path / "reports" in dirs
    assert status.default_report_dirs("/x/y") == [Path("/x/y")]


def test_from_namespace_reads_notebook_00s_parameters(tree, tmp_path):
    reports = tmp_path / "rr"
    write_summary(reports, "20250101T000000Z", "01_install_build_tools", "PASS")
    b = status.from_namespace({"carbide_root_dir": "", "report_dir": str(reports), "workdir": str(tree),
                               "log_dir": "", "unrelated": 1})
    assert b.row("01").state == "PASS" and b.tree == str(tree.resolve())


def test_a_thousand_reports_read_fast_and_newest_first(tree, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    names = ["01_install_build_tools", "02_build_ipxe_image", "03_pxe_boot_vm", "04_validate"]
    for i in range(1000):
        nb = names[i % 4]
        data = Summary(nb, Status.PASS if i % 3 else Status.FAIL, []).to_dict()
        (reports / f"2025{1 + i // 500:02d}{1 + (i // 20) % 28:02d}T{i % 24:02d}0000Z-{nb}.json").write_text(json.dumps(data))
    opened: list[str] = []
    real_open = Path.read_text

    def counting(self, *a, **kw):
        opened.append(self.name)
        return real_open(self, *a, **kw)

    try:
        Path.read_text = counting  # type: ignore[method-assign]
        b = status.board(workdir=str(tree), report_dirs=[reports])
    finally:
        Path.read_text = real_open  # type: ignore[method-assign]
    assert len([o for o in opened if o.endswith(".json")]) == 4  # one per notebook: the newest
    newest = max(os.listdir(reports))
    assert any(r.when and newest.startswith(r.when[:4]) for r in b.rows)
    assert b.elapsed_s < 1.0
