"""The cargo-make path of step 2 against the fixture carbide trees, through real processes.

`cargo` is the real one; cargo-make is NOT installed on these machines (crates.io is
unreachable), so `cargo make` reaches the fixture's stand-in `cargo-make` script via PATH
(tests/fixtures/carbide_tree/bin). It runs the fixture's tasks for real (bash, cp,
truncate) and prints cargo-make's log format. These tests exercise the driver, the log
parser, the classifier, the artifact check, the manifest diff — not cargo-make itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from runbook_lib.build.step import BuildStep
from runbook_lib.result import Status

pytestmark = [pytest.mark.integration,
              # scripts/test.sh installs Debian's cargo; under CI=true a missing cargo fails
              pytest.mark.needs_tool("cargo", "the real cargo dispatches `cargo make` to the fixture's cargo-make")]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree"


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setenv("PATH", f"{FIXTURES / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CI_UPLOAD_TOKEN", raising=False)
    monkeypatch.delenv("FIXTURE_EXTRA_PACKAGE", raising=False)


def tree(tmp_path: Path, name: str = "docs_era") -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


def step(root: Path, tmp_path: Path, run: str = "run1", **params) -> BuildStep:
    return BuildStep({"carbide_root_dir": str(root), **params}, log_dir=tmp_path / "reports" / run)


def test_docs_workflow_expected_unclean_exit_then_manifest_diff(tmp_path, stand_in, monkeypatch):
    root = tree(tmp_path)
    s = step(root, tmp_path)
    plan = s.preflight()
    assert plan.status is Status.PASS, plan
    assert "fixture stand-in" in " ".join(plan.notes)  # the report says what ran as cargo-make
    run = s.run()
    assert run.status is Status.PASS, run
    assert s.verdict.kind == "expected-unclean-exit"
    assert s.verdict.failing_task == "upload-boot-artifacts-ci" and s.verdict.exit_code == 1
    assert "CI_UPLOAD_TOKEN is not set" in run.excerpt
    tasks = run.tables["tasks"].set_index("task")["state"]
    assert tasks["mkosi-clean"] == "skipped (condition)"
    assert tasks["upload-boot-artifacts-ci"] == "failed (exit 1)"
    assert tasks["ipxe-x86_64"] == "not reached"
    assert s.outcome.log.started(1) == ["build-cli"]  # the { name, path } dependency ran nested
    log_text = Path(run.logs["build"]).read_text()
    assert "[cargo-make][1] INFO - Running Task: build-cli" in log_text

    arts = s.artifacts()
    assert arts.status is Status.PASS, arts
    table = arts.tables["artifacts"].set_index("file")
    assert set(table.index) >= {"carbide.efi", "carbide.manifest", "carbide.root", "ipxe.efi", "ipxe.kpxe"}
    assert (table["fresh"][table["expected"] == "yes"] == "yes").all()
    assert any(".mkosi-" in n for n in arts.notes)

    first = s.manifest()
    assert first.status is Status.PASS and first.details["previous_found"] is False
    assert s.ownership().status is Status.PASS

    monkeypatch.setenv("FIXTURE_EXTRA_PACKAGE", "zstd")
    monkeypatch.setenv("FIXTURE_SYSTEMD_VERSION", "252.31-1~deb12u1")
    s2 = step(root, tmp_path, "run2")
    assert s2.run().status is Status.PASS
    s2.artifacts()
    second = s2.manifest()
    assert second.details["added"] == ["zstd"] and second.details["changed"] == ["systemd"]
    assert "1 added, 0 removed, 1 changed" in second.summary


def test_clean_run_when_the_upload_succeeds(tmp_path, stand_in, monkeypatch):
    monkeypatch.setenv("CI_UPLOAD_TOKEN", "t0ken-for-test")
    s = step(tree(tmp_path), tmp_path)
    s.preflight()
    assert s.run().status is Status.PASS
    assert s.verdict.kind == "clean" and s.outcome.log.done_seconds is not None


def test_real_failure_is_fail_with_task_and_excerpt(tmp_path, stand_in):
    root = tree(tmp_path)
    mf = root / "pxe" / "Makefile.toml"
    text = mf.read_text()
    assert 'IPXE_SOURCE = "${CARGO_MAKE_WORKING_DIRECTORY}/ipxe/bin"' in text
    mf.write_text(text.replace('IPXE_SOURCE = "${CARGO_MAKE_WORKING_DIRECTORY}/ipxe/bin"',
                               'IPXE_SOURCE = "/nonexistent/ipxe"'))
    s = step(root, tmp_path)
    s.preflight()
    run = s.run()
    assert run.status is Status.FAIL, run
    assert s.verdict.failing_task == "ipxe-install-efi-x86_64"
    assert "No such file" in run.excerpt
    assert "ipxe-install-efi-x86_64" in run.summary and run.fix


def test_package_only_runs_two_flows_like_the_docs(tmp_path, stand_in):
    s = step(tree(tmp_path), tmp_path, variant="package-only")
    plan = s.preflight()
    assert plan.details["commands"] == ["cargo make create-ephemeral-image", "cargo make ipxe-x86_64"]
    assert s.run().status is Status.PASS
    assert len(s.outcome.results) == 2 and s.outcome.results[0].returncode == 0


def test_newer_tree_docs_name_is_error_then_override_uses_scout_profile(tmp_path, stand_in):
    root = tree(tmp_path, "host_era")
    bad = step(root, tmp_path).preflight()
    assert bad.status is Status.ERROR
    assert "build-boot-artifacts-x86-host" in bad.cause and bad.fix == "set task='build-boot-artifacts-x86-host'"
    s = step(root, tmp_path, task="build-boot-artifacts-x86-host")
    assert s.preflight().status is Status.PASS
    assert s.run().status is Status.PASS
    arts = s.artifacts()
    assert arts.status is Status.PASS, arts
    assert set(arts.tables["artifacts"]["file"]) >= {"scout.efi", "scout.cpio.zst", "qcow-imager.efi",
                                                     "ipxe.efi", "golan.efi"}
    assert "profile 'scout'" in arts.notes[0]
    assert s.manifest().status is Status.PASS  # no manifest in this artifact set: nothing to compare


def test_aarch64_on_x86_64_only_creates_the_static_dirs(tmp_path, stand_in):
    root = tree(tmp_path)
    s = step(root, tmp_path, arch="aarch64")
    s.host = "x86_64"
    plan = s.preflight()
    assert plan.details["commands"] == ["cargo make mkdir-static-aarch64"]
    assert any("cannot be built on an x86_64 host" in n for n in plan.notes)
    assert s.run().status is Status.PASS
    assert (root / "pxe/static/blobs/internal/aarch64").is_dir()
    assert s.artifacts().status is Status.PASS


def test_missing_cargo_make_is_an_environment_error(tmp_path, monkeypatch):
    # The real cargo without any cargo-make: `cargo make --version` fails.
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if "carbide_tree" not in p))
    res = step(tree(tmp_path), tmp_path).preflight()
    assert res.status is Status.ERROR
    assert "cargo-make is not installed" in res.cause and res.fix == "cargo install --force cargo-make"


def test_not_a_carbide_tree_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    res = step(tmp_path / "empty", tmp_path).preflight()
    assert res.status is Status.ERROR and str(tmp_path / "empty") in res.cause
    assert "pxe/Makefile.toml" in res.cause
    assert step(tmp_path / "empty", tmp_path).run().status is Status.ERROR


def test_timeout_kills_the_whole_build(tmp_path, stand_in):
    root = tmp_path / "slow"
    (root / "pxe").mkdir(parents=True)
    (root / "Cargo.toml").write_text('[workspace]\nmembers = []\n')  # a carbide checkout's root
    (root / "pxe" / "Makefile.toml").write_text(
        '[tasks.build-boot-artifacts-x86_64]\ndependencies = ["hang"]\n'
        '[tasks.hang]\nscript = "sleep 300 # build-timeout-marker"\n')
    s = step(root, tmp_path, build_timeout_s=3)
    s.preflight()
    run = s.run()
    assert run.status is Status.FAIL and s.verdict.kind == "timeout" and "hang" in run.cause
    ps = subprocess.run(["pgrep", "-f", "build-timeout-marker"], capture_output=True, text=True)
    assert ps.stdout.strip() == "", "the timed-out build left processes behind"


def test_timeout_gives_the_builder_time_to_clean_up(tmp_path, stand_in):
    """On timeout the driver's SIGTERM must leave the build time to clean up before SIGKILL.

    The sandbox builder stops mkosi and removes its staging when it gets SIGTERM; a task
    here that needs 5 s for its cleanup (a real bash trap) must finish it.
    """
    from runbook_lib import shell

    assert shell.BUILDER_CLEANUP_GRACE_S > shell.COMMAND_CLEANUP_GRACE_S >= 5
    marker = tmp_path / "cleaned-up"
    root = tmp_path / "slow"
    (root / "pxe").mkdir(parents=True)
    script = (f"trap 'echo cleaning up; sleep 5; echo done > {marker}; exit 3' TERM\n"
              "echo building\nsleep 300 &\nwait\n")
    (root / "Cargo.toml").write_text('[workspace]\nmembers = []\n')  # a carbide checkout's root
    (root / "pxe" / "Makefile.toml").write_text(
        '[tasks.build-boot-artifacts-x86_64]\ndependencies = ["hang"]\n'
        f"[tasks.hang]\nscript = '''\n{script}'''\n")
    s = step(root, tmp_path, build_timeout_s=3)
    s.preflight()
    t0 = time.monotonic()
    run = s.run()
    assert run.status is Status.FAIL and s.verdict.kind == "timeout"
    assert marker.read_text() == "done\n", "the build was killed before its cleanup finished"
    assert time.monotonic() - t0 < 3 + shell.BUILDER_CLEANUP_GRACE_S


def test_cli_plan_handler(tmp_path, capsys):
    import argparse

    from runbook_lib.build import cli

    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers())
    args = ap.parse_args(["plan", "--tree", str(FIXTURES / "docs_era"), "build-boot-artifacts-x86_64"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "upload-boot-artifacts-ci" in out and "external" in out
    args = ap.parse_args(["plan", "--tree", str(FIXTURES / "host_era"), "build-boot-artifacts-x86_64"])
    assert args.func(args) == 2
    assert "build-boot-artifacts-x86-host" in capsys.readouterr().err
    args = ap.parse_args(["plan", "--tree", str(FIXTURES / "docs_era"), "--json", "ipxe-x86_64"])
    assert args.func(args) == 0
    assert '"requested"' in capsys.readouterr().out


def test_cli_build_handler_exit_codes(tmp_path, stand_in, capsys):
    import argparse

    from runbook_lib.build import cli

    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers())
    root = tree(tmp_path)
    args = ap.parse_args(["build", "-p", "carbide_root_dir", str(root), "-p", "log_dir", str(tmp_path / "l")])
    assert args.func(args) == 0
    assert "PASS: step 2" in capsys.readouterr().out
    args = ap.parse_args(["build", "-p", "carbide_root_dir", str(root), "-p", "chown_user", "x; rm -rf ~"])
    assert args.func(args) == 2
    args = ap.parse_args(["build", "-p", "carbide_root_dir", str(tmp_path / "missing"),
                          "-p", "log_dir", str(tmp_path / "l2")])
    assert args.func(args) == 2
    assert "does not exist" in capsys.readouterr().out
