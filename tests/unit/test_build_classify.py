"""Classification: success, expected unclean exit, real failure, missing/stale/truncated artifacts,
root-owned files; plus the manifest diff. Real files in a tmp dir, no root needed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from runbook_lib.build import artifacts as art
from runbook_lib.build import manifest as mani
from runbook_lib.build import ownership as own
from runbook_lib.build.cargo_log import CargoLog
from runbook_lib.build.classify import DEFAULT_CI_ONLY_PATTERN, classify, is_ci_only
from runbook_lib.result import Status

DOCS = art.profile("docs")
SIZES = {"carbide.efi": 55 << 20, "carbide.manifest": 26 << 10, "carbide.root": 298 << 20,
         "ipxe.efi": 1100 << 10, "ipxe.kpxe": 402 << 10}

UNCLEAN = """\
[cargo-make] INFO - Running Task: mkosi-build
[cargo-make] INFO - Running Task: ipxe-install-efi-x86_64
[cargo-make] INFO - Running Task: upload-boot-artifacts-ci
error: CI_UPLOAD_TOKEN is not set
[cargo-make] ERROR - Error while executing command, exit code: 1
[cargo-make] WARN - Build Failed.
"""
REAL_FAILURE = """\
[cargo-make] INFO - Running Task: mkosi-build
E: Failed to fetch http://deb.debian.org/debian/pool/main/s/systemd/systemd_252.deb 404 Not Found
mkosi: debootstrap failed
[cargo-make] ERROR - Error while executing command, exit code: 1
[cargo-make] WARN - Build Failed.
"""
CLEAN = "[cargo-make] INFO - Running Task: mkosi-build\n[cargo-make] INFO - Build Done in 80.00 seconds.\n"


def make_tree(d: Path, sizes: dict[str, int] | None = None, mtime: float | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, size in (sizes or SIZES).items():
        p = d / name
        with open(p, "wb") as fh:
            fh.truncate(size)  # sparse: real size, no disk
        if mtime is not None:
            os.utime(p, (mtime, mtime))
    return d


def verdict(text: str, rc: int, inv: art.Inventory, **kw):
    log = CargoLog().feed_all(text)
    return classify(returncode=rc, timed_out=kw.pop("timed_out", False), interrupted=False, log=log,
                    inventory=inv, log_lines=text.splitlines(), **kw)


def test_clean_success(tmp_path):
    start = time.time()
    inv = art.inventory(make_tree(tmp_path), DOCS, start)
    v = verdict(CLEAN, 0, inv)
    assert v.status is Status.PASS and v.kind == "clean"
    assert all(r.status == "ok" for r in inv.rows)


def test_expected_unclean_exit_is_pass_only_with_fresh_complete_artifacts(tmp_path):
    start = time.time()
    inv = art.inventory(make_tree(tmp_path), DOCS, start)
    v = verdict(UNCLEAN, 1, inv)
    assert v.status is Status.PASS and v.kind == "expected-unclean-exit"
    assert v.failing_task == "upload-boot-artifacts-ci" and v.exit_code == 1
    assert "CI_UPLOAD_TOKEN" in v.excerpt


def test_unclean_exit_with_stale_artifact_is_fail(tmp_path):
    start = time.time()
    make_tree(tmp_path)
    old = start - 3600
    os.utime(tmp_path / "carbide.root", (old, old))
    inv = art.inventory(tmp_path, DOCS, start)
    v = verdict(UNCLEAN, 1, inv)
    assert v.status is Status.FAIL
    assert "carbide.root: stale" in v.cause


def test_unclean_exit_with_missing_artifact_is_fail(tmp_path):
    sizes = dict(SIZES)
    del sizes["ipxe.kpxe"]
    inv = art.inventory(make_tree(tmp_path, sizes), DOCS, time.time() - 1)
    v = verdict(UNCLEAN, 1, inv)
    assert v.status is Status.FAIL and "ipxe.kpxe: missing" in v.cause


def test_real_failure_names_task_exit_code_and_excerpt(tmp_path):
    inv = art.inventory(make_tree(tmp_path), DOCS, time.time() - 1)
    v = verdict(REAL_FAILURE, 1, inv)
    assert v.status is Status.FAIL and v.failing_task == "mkosi-build" and v.exit_code == 1
    assert "404 Not Found" in v.excerpt and "debootstrap failed" in v.excerpt
    assert "mkosi-build" in v.summary


def test_ci_pattern_is_configurable(tmp_path):
    inv = art.inventory(make_tree(tmp_path), DOCS, time.time() - 1)
    assert verdict(REAL_FAILURE, 1, inv, ci_only_pattern="mkosi").status is Status.PASS
    assert verdict(UNCLEAN, 1, inv, ci_only_pattern="nothing-matches").status is Status.FAIL
    assert is_ci_only("upload-boot-artifacts-ci", DEFAULT_CI_ONLY_PATTERN)
    assert not is_ci_only("mkosi-build", DEFAULT_CI_ONLY_PATTERN)
    assert not is_ci_only(None, DEFAULT_CI_ONLY_PATTERN)


def test_exit_zero_with_truncated_or_empty_artifact_is_fail(tmp_path):
    sizes = dict(SIZES, **{"carbide.efi": 3 << 20, "ipxe.efi": 0})
    inv = art.inventory(make_tree(tmp_path, sizes), DOCS, time.time() - 1)
    status = {r.name: r.status for r in inv.rows}
    assert status["carbide.efi"] == "truncated" and status["ipxe.efi"] == "empty"
    v = verdict(CLEAN, 0, inv)
    assert v.status is Status.FAIL and "carbide.efi: truncated" in v.cause


def test_exit_zero_with_reused_artifacts_passes_with_a_warning(tmp_path):
    inv = art.inventory(make_tree(tmp_path, mtime=time.time() - 7200), DOCS, time.time())
    v = verdict(CLEAN, 0, inv)
    assert v.status is Status.PASS and any("not rewritten" in w for w in v.warnings)


def test_timeout_is_fail_with_the_running_task(tmp_path):
    inv = art.inventory(tmp_path, DOCS, time.time())
    v = verdict("[cargo-make] INFO - Running Task: mkosi-build\n", None, inv, timed_out=True, timeout_s=60)
    assert v.status is Status.FAIL and v.kind == "timeout" and "mkosi-build" in v.cause
    assert "build_timeout_s" in v.fix


def test_sandbox_exit_2_is_an_environment_error(tmp_path):
    inv = art.inventory(tmp_path, DOCS, time.time())
    text = "[sandbox] ERROR - mkosi not found on PATH\n[sandbox] WARN - Build Failed.\n"
    v = verdict(text, 2, inv, tool="sandbox")
    assert v.status is Status.ERROR and "mkosi not found" in v.cause


def test_inventory_reports_leftovers_extras_and_optional(tmp_path):
    make_tree(tmp_path)
    (tmp_path / ".mkosi-t40tggmu").mkdir()
    (tmp_path / ".gitignore").write_text("*\n")
    (tmp_path / "stray.bin").write_bytes(b"x")
    specs = list(DOCS) + [art.ArtifactSpec("autoexec.ipxe", 64, 16 << 10, required=False)]
    inv = art.inventory(tmp_path, specs, None)
    rows = {r.name: r for r in inv.rows}
    assert inv.leftovers == [".mkosi-t40tggmu"]
    assert rows["stray.bin"].status == "extra" and not rows["stray.bin"].expected
    assert rows["autoexec.ipxe"].status == "absent (optional)"
    assert ".gitignore" not in rows
    assert rows["carbide.root"].fresh is None  # no build start: freshness unknown
    df = inv.table()
    assert list(df["file"])[:5] == [a.name for a in DOCS]
    assert df.loc[df.file == "carbide.root", "size"].item() == "298M"


def test_expected_set_from_tree_names_and_profile_choice():
    assert art.pick_profile(["scout.efi", "ipxe.efi", "golan.efi"]) == "scout"
    assert art.pick_profile(["ipxe.efi", "ipxe.kpxe"]) == "docs"
    assert art.pick_profile([]) == "docs"
    specs = art.expected_set(art.profile("docs"), ["ipxe.efi", "firmware.bin"])
    assert [s.name for s in specs][-1] == "firmware.bin"
    with pytest.raises(ValueError):
        art.profile("nope")


def test_root_owned_files_are_found_for_another_target_uid(tmp_path):
    static = tmp_path / "pxe" / "static"
    make_tree(static / "blobs" / "internal" / "x86_64")
    mine = os.getuid()
    assert own.foreign_paths(static, mine) == []
    other = mine + 12345
    found = own.foreign_paths(static, other)
    assert static in found and len(found) == 1 + 3 + len(SIZES)  # dir + blobs/internal/x86_64 + files


def test_invoking_user_prefers_parameter_then_sudo_user(tmp_path):
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    assert own.invoking_user("", {}).name == me
    assert own.invoking_user("", {"SUDO_USER": me}).source == "SUDO_USER"
    assert own.invoking_user(me, {"SUDO_USER": "nobody"}).source == "parameter chown_user"
    with pytest.raises(own.OwnershipError, match="does not exist"):
        own.invoking_user("x; rm -rf ~", {})


def test_chown_command_is_an_argv_with_the_user_and_dir(tmp_path):
    u = own.invoking_user("", {})
    argv = own.chown_argv(u, tmp_path / "pxe static")
    assert argv[:2] == ["chown", "-R"] and argv[-1].endswith("pxe static")


def test_nothing_to_chown_is_skipped_and_said(tmp_path):
    static = tmp_path / "pxe" / "static"
    make_tree(static)
    rep = own.fix(static, "", environ={})
    assert rep.ok and not rep.ran and "nothing to do" in rep.summary()


def manifest(pkgs: dict[str, str]) -> str:
    return json.dumps({"manifest_version": 1, "config": {"name": "carbide"},
                       "packages": [{"type": "deb", "name": n, "version": v, "architecture": "amd64"}
                                    for n, v in pkgs.items()]})


def test_manifest_diff_and_state(tmp_path):
    cur = tmp_path / "carbide.manifest"
    state = tmp_path / "state"
    cur.write_text(manifest({"systemd": "252.30", "bash": "5.2"}))
    pkgs, d = mani.compare_with_previous(cur, state, tmp_path, "x86_64")
    assert len(pkgs) == 2 and not d.previous_found and "first build" in d.summary()
    mani.remember(cur, state, tmp_path, "x86_64")
    cur.write_text(manifest({"systemd": "252.31", "zstd": "1.5"}))
    _, d = mani.compare_with_previous(cur, state, tmp_path, "x86_64")
    assert [p.name for p in d.added] == ["zstd"]
    assert [p.name for p in d.removed] == ["bash"]
    assert [(b.version, a.version) for b, a in d.changed] == [("252.30", "252.31")]
    assert list(d.table()["change"]) == ["added", "removed", "changed"]
    assert d.summary() == "1 added, 1 removed, 1 changed since the previous build"


def test_manifest_that_is_not_mkosi_json_is_an_error(tmp_path):
    with pytest.raises(mani.ManifestError):
        mani.parse("not json")
    with pytest.raises(mani.ManifestError):
        mani.parse(json.dumps({"packages": "nope"}))
