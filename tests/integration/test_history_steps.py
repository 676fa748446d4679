"""Real step 2 and step 3 runs write their run records (under a temporary XDG_DATA_HOME).

Step 2: the docs-era fixture tree made a real git checkout, built through the real `cargo`
reaching the fixture's cargo-make stand-in (as tests/integration/test_build_fixture_tree.py).
Step 3: a real QEMU + OVMF boot of artifacts that cannot boot (a zero-filled ipxe.efi), which
FAILs after a short timeout with real firmware milestones.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from runbook_lib import history
from runbook_lib.boot.standin import free_port
from runbook_lib.boot.step import BootStep
from runbook_lib.build.step import BuildStep
from runbook_lib.cli import main
from runbook_lib.compare_runs import NO_GOOD
from runbook_lib.result import Status

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leftover_processes", "run_history")]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree"
SECRET = "hist-Root-pw-4411"


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(history.DISABLE_ENV, raising=False)
    return tmp_path / "data"


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setenv("PATH", f"{FIXTURES / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CI_UPLOAD_TOKEN", raising=False)
    monkeypatch.delenv("FIXTURE_EXTRA_PACKAGE", raising=False)


def git_tree(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "carbide"
    shutil.copytree(FIXTURES / "docs_era", root)
    g = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*g, "init", "-q"], check=True)
    subprocess.run([*g, "add", "-A"], check=True)
    subprocess.run([*g, "commit", "-qm", "fixture"], check=True)
    head = subprocess.run([*g, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return root, head


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.needs_tool("cargo", "the real cargo dispatches `cargo make` to the fixture's cargo-make stand-in")
def test_build_step_writes_a_record_per_run(tmp_path, data_home, stand_in, monkeypatch, capsys):
    root, head = git_tree(tmp_path)
    s = BuildStep({"carbide_root_dir": str(root), "root_password": SECRET}, log_dir=tmp_path / "r1")
    s.preflight()
    t0 = time.monotonic()
    run = s.run()
    assert run.status is Status.PASS, run
    hist = run.details["history"]
    assert hist["record"], hist
    rec = history.load(hist["record"])
    assert Path(hist["record"]).parent == history.tree_dir(root)
    assert rec.kind == "build" and rec.verdict == "PASS" and rec.verdict == s.result().status.value
    assert rec.tree == {"root": str(root.resolve()), "kind": "carbide",
                        "git": {"commit": head, "dirty": False, "dirty_files": 0}}
    assert rec.params["root_password"] == "***" and SECRET not in Path(hist["record"]).read_text()
    art = s.target.artifact_dir
    assert rec.artifacts["carbide.efi"]["sha256"] == sha(art / "carbide.efi")
    assert rec.artifacts["ipxe.kpxe"]["size"] == (art / "ipxe.kpxe").stat().st_size
    assert set(rec.artifacts["carbide.manifest"]["manifest"]["packages"]) >= {"systemd"}
    tasks = {t["task"]: t["state"] for t in rec.build["tasks"]}
    assert tasks["upload-boot-artifacts-ci"] == "failed" and tasks["mkosi-clean"] == "skipped"
    assert set(rec.build["rebuilt"]) >= {"carbide.efi", "ipxe.efi"}
    assert rec.build["duration_s"] == pytest.approx(s.outcome.duration_s, abs=0.01)
    assert rec.started < rec.finished
    print(f"history write (build): {hist['seconds']:.3f} s of a {time.monotonic() - t0:.1f} s run")

    # a dirty tree and a package change: the second record says so
    (root / "pxe" / "Makefile.toml").write_text((root / "pxe" / "Makefile.toml").read_text() + "\n# local\n")
    monkeypatch.setenv("FIXTURE_EXTRA_PACKAGE", "zstd")
    s2 = BuildStep({"carbide_root_dir": str(root), "root_password": SECRET}, log_dir=tmp_path / "r2")
    s2.preflight()
    assert s2.run().status is Status.PASS
    recs = history.records(root)
    assert [r.kind for r in recs] == ["build", "build"] and recs[1].id == rec.id
    assert recs[0].tree["git"]["dirty"] is True and recs[0].commit == head[:10] + "+dirty"
    assert "zstd" in recs[0].artifacts["carbide.manifest"]["manifest"]["packages"]
    assert recs[0].params_key == rec.params_key  # log_dir differs, what is built does not
    assert history.last_good(root, "build", rec.params_key).id == recs[0].id

    capsys.readouterr()
    assert main(["history", "--tree", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("2 run(s) from ")
    assert f"{head[:10]}+dirty" in lines[1] and "carbide (carbide)" in lines[1] and "PASS" in lines[1]
    assert f"{head[:10]} " in lines[2]


@pytest.mark.needs_tool("cargo", "the real cargo dispatches `cargo make` to the fixture's cargo-make stand-in")
def test_a_history_that_cannot_be_written_changes_no_verdict(tmp_path, stand_in, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    root, _ = git_tree(tmp_path)
    s = BuildStep({"carbide_root_dir": str(root)}, log_dir=tmp_path / "r1",
                  state_dir=tmp_path / "state")  # the manifest baseline elsewhere: only history fails
    s.preflight()
    run = s.run()
    assert run.status is Status.PASS and s.result().status is Status.PASS
    assert run.details["history"]["record"] is None
    assert any(n.startswith("run history not recorded: ") for n in run.notes), run.notes


def fake_artifacts(tmp_path: Path) -> Path:
    d = tmp_path / "art"
    d.mkdir()
    for name, size in (("ipxe.efi", 300_000), ("autoexec.ipxe", 200), ("carbide.efi", 80_000_000)):
        with open(d / name, "wb") as fh:
            fh.truncate(size)
    return d


@pytest.mark.needs_tool("qemu-system-x86_64", "a real VM boot")
def test_boot_step_records_the_boot_and_compares(tmp_path, data_home):
    art = fake_artifacts(tmp_path)
    params = {"artifacts_dir": str(art), "accel": "tcg", "port": free_port(), "boot_timeout_s": 20,
              "memory_mb": 2048}
    s = BootStep(params, log_dir=tmp_path / "b1")
    assert s.preflight().status is Status.PASS
    run = s.run()
    assert run.status is Status.FAIL, run
    rec = history.load(run.details["history"]["record"])
    assert rec.kind == "boot" and rec.verdict == "FAIL"
    assert rec.tree == {"root": str(art), "kind": "directory", "git": None}
    names = [m["name"] for m in rec.milestones]
    assert names and names[0] == "firmware_start", names
    assert rec.milestones[0]["seconds"] is not None
    assert rec.reached == names[-1] and rec.first_failure and rec.first_failure["kind"]
    assert rec.boot["firmware"] == "uefi" and rec.boot["accel"] == "tcg" and rec.boot["login_prompt_s"] is None
    assert rec.artifacts["ipxe.efi"]["sha256"] == hashlib.sha256(bytes(300_000)).hexdigest()
    # the comparison: a section and one note; the verdict stays the boot's
    section = s.section("compared with last good")
    assert section.summary == NO_GOOD and section.status is Status.PASS
    assert NO_GOOD in run.details["notes"]
    assert s.result().status is Status.FAIL
    saved = json.loads((tmp_path / "b1" / "boot" / "result.json").read_text())
    assert saved["details"]["history"]["record"] == str(rec.path)

    # pretend that boot had passed: the next one is compared with it, and says where it stopped
    good = dict(rec.to_dict(), id="0123456789ab", verdict="PASS", reached="login_prompt",
                boot=dict(rec.boot, milestones=rec.milestones + [
                    {"name": "login_prompt", "label": "login prompt", "seconds": 19.0}]))
    good_rec = history.Record.from_dict(good)
    good_rec.finished = history.now()
    history.write(good_rec)
    (art / "autoexec.ipxe").write_bytes(b"#!ipxe\nexit 1\n".ljust(200, b"\n"))
    s2 = BootStep(dict(params, port=free_port()), log_dir=tmp_path / "b2")
    s2.preflight()
    assert s2.run().status is Status.FAIL
    c = s2.comparison
    assert c is not None and c.last_good is not None and c.last_good.id == "0123456789ab"
    assert c.sentence.startswith(f"last good {history.when_text(good_rec.finished)}: it reached login prompt; "
                                 "this run stopped at "), c.sentence
    assert "autoexec.ipxe (same size, other content)" in c.sentence
    assert [a.name for a in c.artifacts] == ["autoexec.ipxe"]
    assert any(m.name == "login_prompt" and m.flag == "missing" for m in c.milestones)
    assert s2.section("compared with last good").tables["milestones"] is not None
    assert s2.result().status is Status.FAIL
