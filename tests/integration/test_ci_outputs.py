"""`runbook run ... --junit-xml` and the summary JSON on real runs (real papermill kernels, real step
checks): the JUnit file is valid against Jenkins xUnit's junit-10.xsd with one testcase per step
check, a FAIL names its first cause, a run that did not finish is never green; every summary JSON
validates against the package's JSON Schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from runbook_lib.report.export import summary_schema

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIXTURE_BIN = REPO / "tests" / "fixtures" / "carbide_tree" / "bin"
TASK = "build-boot-artifacts-x86-host"


def cargo_make_stand_in_env() -> dict[str, str]:
    """`cargo make` reaches the fixture's cargo-make stand-in; no toolchain is ever downloaded."""
    return {"PATH": f"{FIXTURE_BIN}{os.pathsep}{os.environ['PATH']}", "FIXTURE_CARGO_MAKE_VERSION": "0.37.24",
            "RUSTUP_AUTO_INSTALL": "0"}


def runbook(*args: str, env: dict[str, str] | None = None, timeout: int = 600):
    return subprocess.run([sys.executable, "-m", "runbook_lib.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))


def valid_junit(schema: etree.XMLSchema, path: Path) -> etree._ElementTree:
    doc = etree.parse(str(path))
    assert schema.validate(doc), f"{path} is not valid junit-10.xsd: {schema.error_log}"
    return doc


def summaries(report_dir: Path) -> list[dict]:
    out = []
    validator = jsonschema.Draft202012Validator(summary_schema())
    for js in sorted(report_dir.glob("*.json")):
        data = json.loads(js.read_text())
        validator.validate(data)
        out.append(data)
    return out


def cases(doc: etree._ElementTree, suite: str | None = None) -> list[etree._Element]:
    xpath = f"//testsuite[@name='{suite}']/testcase" if suite else "//testcase"
    return doc.xpath(xpath)


def test_the_xsd_really_rejects_a_bad_file(junit_schema, tmp_path):
    """The schema is strict enough to mean something: a testcase without a name is refused."""
    bad = tmp_path / "bad.xml"
    bad.write_text('<testsuites><testsuite name="x" tests="1" failures="0" errors="0">'
                   '<testcase classname="c"/></testsuite></testsuites>')
    assert not junit_schema.validate(etree.parse(str(bad)))


def test_step1_pass_one_testcase_per_check(junit_schema, tmp_path):
    xml = tmp_path / "r.xml"
    res = runbook("run", "01", "--report-dir", str(tmp_path), "--quiet", "--junit-xml", str(xml))
    assert res.returncode == 0, res.stdout + res.stderr
    doc = valid_junit(junit_schema, xml)
    (summary,) = summaries(tmp_path)
    assert [c.get("name") for c in cases(doc)] == [s["step"] for s in summary["steps"]]
    assert len(summary["steps"]) >= 3  # pre-flight, run, the step
    assert not doc.xpath("//failure | //error")
    (suite,) = doc.xpath("//testsuite")
    assert suite.get("name") == "01_install_build_tools" and suite.get("tests") == str(len(summary["steps"]))
    assert summary["paths"]["html"] in suite.findtext("system-out")
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["status"] == "PASS"
    # the record: versioned, host facts, no VM in step 1
    assert summary["schema_version"].startswith("1.")
    assert summary["host"]["distro"] and summary["host"]["accel"]["why"] == "this run started no VM"
    assert summary["effective_parameters"]["mode"] == "sandbox"


@pytest.mark.needs_tool("git", "the fixture checkout is a real git repository")
@pytest.mark.needs_tool("cargo", "the tree's [env] script runs `cargo locate-project`")
def test_step1_fail_on_a_checkout_without_submodules_names_the_cause(junit_schema, carbide_checkout, tmp_path):
    root = carbide_checkout(submodules="missing")
    xml = tmp_path / "r.xml"
    env = cargo_make_stand_in_env()
    res = runbook("run", "01", "-p", "mode", "carbide", "-p", "carbide_root_dir", str(root), "-p", "task", TASK,
                  "--report-dir", str(tmp_path), "--quiet", "--junit-xml", str(xml), env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    doc = valid_junit(junit_schema, xml)
    (summary,) = summaries(tmp_path)
    assert summary["status"] == "FAIL"
    assert [c.get("name") for c in cases(doc)] == [s["step"] for s in summary["steps"]]
    failures = doc.xpath("//testcase/failure")
    assert failures, xml.read_text()
    assert all("submodule pxe/mkosi" in f.get("message") for f in failures)
    assert "fix: git submodule update --init pxe/mkosi pxe/ipxe/upstream" in failures[0].text
    assert doc.xpath("//testsuite")[0].get("failures") == str(len(failures))
    assert summary["first_failure"]["cause"] == failures[0].get("message")


@pytest.mark.needs_tool("git", "the fixture checkout is a real git repository")
@pytest.mark.needs_tool("cargo", "the tree's [env] script runs `cargo locate-project`")
def test_validate_on_an_unready_tree_is_an_error_in_junit(junit_schema, carbide_checkout, tmp_path):
    root = carbide_checkout(submodules="missing")
    xml = tmp_path / "v.xml"
    env = cargo_make_stand_in_env()
    res = runbook("validate", "-p", "carbide_root_dir", str(root), "-p", "task", TASK,
                  "--report-dir", str(tmp_path), "--quiet", "--junit-xml", str(xml), env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    doc = valid_junit(junit_schema, xml)
    (summary,) = summaries(tmp_path)
    assert summary["notebook"] == "04_validate" and summary["status"] == "ERROR"
    assert doc.xpath("//testsuite/@name") == ["04_validate"]
    errors = doc.xpath("//testcase/error")
    assert errors and any("submodule" in e.get("message") for e in errors)
    assert summary["boot"] is None and summary["host"]["accel"]["used"] is None


def test_step3_without_artifacts_stops_before_the_vm(junit_schema, tmp_path):
    empty = tmp_path / "no-artifacts"
    empty.mkdir()
    xml = tmp_path / "r.xml"
    res = runbook("run", "03", "-p", "artifacts_dir", str(empty), "-p", "accel", "tcg",
                  "--report-dir", str(tmp_path / "reports"), "--quiet", "--junit-xml", str(xml))
    assert res.returncode in (1, 2), res.stdout + res.stderr
    doc = valid_junit(junit_schema, xml)
    (summary,) = summaries(tmp_path / "reports")
    assert summary["status"] != "PASS" and summary["boot"] is None
    names = [c.get("name") for c in cases(doc)]
    assert names == [s["step"] for s in summary["steps"]] and "step 3: boot: pre-flight" in names
    bad = doc.xpath("//testcase[@name='step 3: boot: pre-flight']/failure | "
                    "//testcase[@name='step 3: boot: pre-flight']/error")
    assert bad and bad[0].get("message") == summary["first_failure"]["cause"]
    assert summary["effective_parameters"]["accel"] == "tcg"


def test_a_crashing_notebook_gets_a_notebook_run_error(junit_schema, tmp_path):
    import nbformat

    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "01_install_build_tools.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("raise RuntimeError('injected \\x1b[31mfailure')"))
    nbformat.write(nb, nbdir / "01_install_build_tools.ipynb")
    xml = tmp_path / "r.xml"
    res = runbook("run", "01", "--report-dir", str(tmp_path / "out"), "--quiet", "--junit-xml", str(xml),
                  env={"RUNBOOK_NOTEBOOKS_DIR": str(nbdir)})
    assert res.returncode == 2, res.stdout + res.stderr
    doc = valid_junit(junit_schema, xml)  # the ANSI escape in the message did not break the XML
    (err,) = doc.xpath("//testcase[@name='notebook run']/error")
    assert err.get("type") == "RuntimeError" and "injected" in err.get("message")
    assert "\x1b" not in xml.read_text()
    (summary,) = summaries(tmp_path / "out")
    assert summary["status"] == "ERROR" and summary["first_failure"]["step"].startswith("notebook")


def test_run_all_lists_the_notebooks_it_did_not_start_as_skipped(junit_schema, tmp_path):
    xml = tmp_path / "all.xml"
    res = runbook("run", "all", "-p", "min_free_gb", "1e9", "--report-dir", str(tmp_path / "r"), "--quiet",
                  "--junit-xml", str(xml))
    assert res.returncode == 2, res.stdout + res.stderr
    doc = valid_junit(junit_schema, xml)
    suites = doc.xpath("//testsuite/@name")
    assert suites[0] == "01_install_build_tools" and "02_build_ipxe_image" in suites
    assert doc.xpath("//testsuite[@name='02_build_ipxe_image']/testcase/skipped")
    assert doc.xpath("//testsuite[@name='01_install_build_tools']//error")
    assert len(summaries(tmp_path / "r")) == 1  # only step 1 ran


def test_an_unwritable_junit_path_is_an_error_exit(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = runbook("run", "01", "--report-dir", str(tmp_path / "r"), "--quiet",
                  "--junit-xml", str(blocker / "r.xml"))
    assert res.returncode == 2 and "JUnit XML" in res.stderr
