"""Step 1 / step 2 checks of a carbide checkout, on real git checkouts with real submodules.

The checkouts come from the `carbide_checkout` fixture (tests/fixtures/carbide_tree/checkout.py):
today's carbide structure (pinned mkosi submodule, iPXE submodule, [env] scripts running
`cargo locate-project` and `git describe`, conditions on SA_ENABLEMENT). `cargo make` reaches the
fixture's cargo-make stand-in through PATH (cargo-make cannot be installed here); its reported
version is set with FIXTURE_CARGO_MAKE_VERSION.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runbook_lib.build.checkout import check_tree
from runbook_lib.build.step import BuildStep
from runbook_lib.result import Status
from runbook_lib.tools import ToolsStep, run_step1, tree_result

pytestmark = [pytest.mark.integration,
              pytest.mark.needs_tool("git", "the fixture checkouts are real git repositories"),
              pytest.mark.needs_tool("cargo", "the [env] script runs `cargo locate-project`; "
                                              "`cargo make` reaches the fixture's cargo-make")]

FIXTURE_BIN = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree" / "bin"
TASK = "build-boot-artifacts-x86-host"


@pytest.fixture(autouse=True)
def cargo_make_stand_in(monkeypatch):
    monkeypatch.setenv("PATH", f"{FIXTURE_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FIXTURE_CARGO_MAKE_VERSION", "0.37.24")
    monkeypatch.setenv("RUSTUP_AUTO_INSTALL", "0")  # never download a toolchain in a test
    monkeypatch.delenv("SA_ENABLEMENT", raising=False)


def rows(report):
    return {c.tool: c for c in report.checks}


def test_missing_submodules_name_one_command_for_every_path_the_build_uses(carbide_checkout):
    root = carbide_checkout(submodules="missing")
    report = check_tree(root, [TASK])
    r = rows(report)
    assert not report.ready
    for path in ("pxe/mkosi", "pxe/ipxe/upstream"):
        row = r[f"submodule {path}"]
        assert row.required and row.status == "missing"
        assert row.fix == "git submodule update --init pxe/mkosi pxe/ipxe/upstream"
    mkosi = next(c for c in report.checks if c.tool.startswith("mkosi"))
    assert mkosi.status == "missing" and "pxe/mkosi" in mkosi.fix
    # one submodule command in the combined fix, first
    fix = report.fix()
    assert fix.startswith("git submodule update --init pxe/mkosi pxe/ipxe/upstream")
    assert fix.count("submodule update --init") == 1


def test_cli_exits_1_and_names_the_submodule_command(carbide_checkout):
    root = carbide_checkout(submodules="missing")
    res = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "tools", "check", "--mode", "carbide",
                          "--tree", str(root)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "git submodule update --init pxe/mkosi pxe/ipxe/upstream" in res.stdout
    assert "your tree" in res.stdout and "FAIL" in res.stdout


def test_a_submodule_off_its_recorded_commit(carbide_checkout):
    root = carbide_checkout(submodules="wrong_commit")
    r = rows(check_tree(root, [TASK]))
    row = r["submodule pxe/mkosi"]
    assert row.status == "unusable" and row.required
    assert "the tree records" in row.found and row.fix.startswith("git submodule update pxe/mkosi")
    assert r["submodule pxe/ipxe/upstream"].status == "ok"
    assert r["git checkout"].found.endswith("clean")  # a moved submodule is not a dirty tree


def test_no_tags_is_a_warning_and_shows_what_describe_falls_back_to(carbide_checkout):
    root = carbide_checkout(tags=False, dirty=True)
    report = check_tree(root, [TASK])
    r = rows(report)
    tags = r["git tags"]
    assert tags.status == "missing" and not tags.required and tags.fix == "git fetch --tags origin"
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=7", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert head in tags.found
    assert "1 modified file(s)" in r["git checkout"].found
    assert r["[env] PKG_VERSION"].status == "ok"  # --always: it still prints something


def test_the_pinned_mkosi_is_the_one_the_build_runs(carbide_checkout):
    root = carbide_checkout(mkosi_version="25.3")
    report = check_tree(root, [TASK])
    mkosi = next(c for c in report.checks if c.tool.startswith("mkosi"))
    assert mkosi.status == "ok" and mkosi.version == "25.3"
    assert str(root / "pxe" / "mkosi" / "bin" / "mkosi") in mkosi.found
    assert "not used by this tree" in mkosi.found
    assert report.mkosi_pinned == str(root / "pxe" / "mkosi" / "bin" / "mkosi")
    # step 1: the distribution's mkosi is shown but not required for this tree
    res = run_step1(carbide_root_dir=str(root), task=TASK)
    tools = res.tables["tools"].set_index("tool")
    assert tools.loc["mkosi", "required"] == "no" and "not used by this tree" in tools.loc["mkosi", "found"]
    part = tree_result(res.report.tree)
    assert {"tree", "your tree", "submodules", "programs the plan calls"} <= set(part.tables)
    facts = part.tables["tree"].set_index("fact")["value"]
    assert "25.3" in facts["mkosi the build runs"] and facts["commit"].endswith("clean")


def test_docker_is_needed_only_under_its_condition(carbide_checkout):
    root = carbide_checkout()
    docker = rows(check_tree(root, ["build-boot-artifacts-arm-host"], arch="aarch64")).get("docker")
    assert docker is not None and not docker.required and "SA_ENABLEMENT" in docker.needed_for
    env = dict(os.environ, SA_ENABLEMENT="1")
    docker = rows(check_tree(root, ["build-boot-artifacts-arm-host"], arch="aarch64", base_env=env))["docker"]
    assert docker.required
    assert "docker" not in rows(check_tree(root, [TASK]))  # the x86 plan never calls it


def test_the_ipxe_build_implies_a_compiler_and_gnu_ld(carbide_checkout):
    r = rows(check_tree(carbide_checkout(), [TASK]))
    for tool in ("make", "patch", "gcc", "GNU ld", "perl", "liblzma-dev"):
        assert r[tool].required, tool
    assert r["GNU ld"].status == "ok"  # binutils' ld here


def test_a_failing_env_script_is_reported_with_its_own_error(carbide_checkout):
    root = carbide_checkout()
    (root / "Cargo.toml").unlink()  # cargo locate-project --workspace now fails
    report = check_tree(root, [TASK])
    r = rows(report)
    assert r["carbide checkout"].status == "unusable"
    env_row = r["[env] REPO_ROOT"]
    assert env_row.status == "unusable" and env_row.required
    assert "Cargo.toml" in env_row.found and "locate-project" in env_row.fix


def test_cargo_make_older_than_the_makefile_wants(carbide_checkout, monkeypatch):
    monkeypatch.setenv("FIXTURE_CARGO_MAKE_VERSION", "0.36.1")
    row = rows(check_tree(carbide_checkout(), [TASK]))["cargo-make"]
    assert row.status == "too old" and ">= 0.37.0" in row.version
    assert row.fix == "cargo install --force cargo-make"


def test_a_rust_toolchain_the_host_does_not_have(carbide_checkout):
    row = rows(check_tree(carbide_checkout(toolchain="1.10.0"), [TASK]))["Rust toolchain"]
    assert row.status == "unusable" and row.required
    assert "1.10.0" in row.found + row.fix


def test_step2_refuses_before_anything_starts(carbide_checkout, tmp_path):
    root = carbide_checkout(submodules="missing")
    step = BuildStep({"carbide_root_dir": str(root), "task": TASK}, log_dir=tmp_path / "logs",
                     state_dir=tmp_path / "state")
    pre = step.preflight()
    assert pre.status is Status.ERROR and "nothing was started" in pre.summary
    assert "submodule pxe/mkosi" in pre.cause
    assert pre.fix.startswith("git submodule update --init pxe/mkosi pxe/ipxe/upstream")
    assert step.run().status is Status.ERROR
    assert step.outcome is None and not (tmp_path / "logs" / "build.log").exists()
    assert not (root / "pxe" / "static" / "blobs" / "internal" / "x86_64" / "scout.efi").exists()


@pytest.mark.needs_tool("dpkg-scanpackages", "the fixture's apt-repo task calls it, as carbide's does")
def test_a_ready_checkout_passes_both_pre_flights(carbide_checkout, tmp_path):
    root = carbide_checkout()
    report = check_tree(root, [TASK])
    assert report.ready, report.frame().to_string()
    step = BuildStep({"carbide_root_dir": str(root), "task": TASK}, log_dir=tmp_path / "logs",
                     state_dir=tmp_path / "state")
    pre = step.preflight()
    assert pre.status is Status.PASS, pre
    assert "your tree" in pre.tables
    res = run_step1(carbide_root_dir=str(root), task=TASK)
    assert res.status is Status.PASS
    part = tree_result(res.report.tree)
    assert part.status is Status.PASS and "ready" in part.summary


def test_step1_in_the_step_protocol_fails_on_the_tree_part(carbide_checkout, tmp_path):
    root = carbide_checkout(submodules="missing")
    step = ToolsStep({"carbide_root_dir": str(root), "task": TASK}, log_dir=tmp_path)
    step.preflight()
    assert step.run().status is Status.PASS  # the tools themselves are fine
    assert step.tree().status is Status.FAIL
    result = step.result()
    assert result.status is Status.FAIL and result.summary.startswith("your tree:")
    assert result.fix.startswith("git submodule update --init pxe/mkosi pxe/ipxe/upstream")


def test_runbook_run_02_stops_with_error_before_the_build(carbide_checkout, tmp_path):
    root = carbide_checkout(submodules="missing")
    res = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "run", "02", "-p", "carbide_root_dir",
                          str(root), "-p", "task", TASK, "--report-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert res.returncode == 2, res.stdout + res.stderr
    (js,) = sorted(tmp_path.glob("*.json"))
    text = js.read_text()
    assert "git submodule update --init pxe/mkosi pxe/ipxe/upstream" in text
    assert "nothing was started" in text
    static = root / "pxe" / "static" / "blobs" / "internal" / "x86_64"
    assert not any(p.name != ".gitignore" for p in static.iterdir())  # nothing was built
