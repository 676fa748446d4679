"""Compared with the last good run: artifacts, packages, facts, milestone times, the sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib import history, history_hooks
from runbook_lib.compare_runs import NO_GOOD, compare_runs
from runbook_lib.params import STEP3
from runbook_lib.result import Status

MS = (("firmware_start", 1.0), ("ipxe_banner", 8.0), ("kernel_fetched", 20.0), ("efi_stub", 22.0),
      ("systemd_welcome", 30.0), ("login_prompt", 40.0))

pytestmark = pytest.mark.usefixtures("run_history")  # history on, under a temporary XDG_DATA_HOME


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def manifest(*pkgs: tuple[str, str]) -> bytes:
    return json.dumps({"manifest_version": 1, "packages": [
        {"type": "deb", "name": n, "version": v, "architecture": "amd64"} for n, v in pkgs]}).encode()


def artifact_dir(tmp_path: Path, name: str, uki: bytes = b"MZ" + b"u" * 5000, ipxe: bytes = b"MZ ipxe",
                 pkgs=(("systemd", "252.30"), ("bash", "5.2"))) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "carbide.efi").write_bytes(uki)
    (d / "ipxe.efi").write_bytes(ipxe)
    (d / "carbide.manifest").write_bytes(manifest(*pkgs))
    return d


def rec(tree: Path, art: Path, verdict: str = "PASS", milestones=MS, failure=None) -> history.Record:
    boot = {"milestones": [{"name": n, "label": n.replace("_", " "), "seconds": s} for n, s in milestones],
            "firmware": "uefi", "network": "user", "accel": "tcg",
            "login_prompt_s": milestones[-1][1] if verdict == "PASS" else None}
    return history.new_record("boot", tree_root=tree, tree_kind="sandbox", params=STEP3.defaults(), spec=STEP3,
                              verdict=verdict, summary=verdict, artifacts_dir=art, boot=boot,
                              reached=milestones[-1][0], first_failure=failure)


def test_no_earlier_good_run(tmp_path):
    c = compare_runs(rec(tmp_path, artifact_dir(tmp_path, "a")), None)
    assert c.sentence == NO_GOOD == "no earlier good run of this tree with these parameters"
    res = c.to_result("step 3: boot")
    assert res.status is Status.PASS and res.step == "step 3: boot: compared with last good"
    assert res.summary == NO_GOOD
    assert c.to_result("step 4: validate: compared with last good").step == "step 4: validate: compared with last good"


def test_nothing_changed_says_so_and_shows_milestone_deltas(tmp_path):
    a = artifact_dir(tmp_path, "a")
    good = rec(tmp_path, a)
    later = list(MS)
    later[-1] = ("login_prompt", 42.0)
    c = compare_runs(rec(tmp_path, a, milestones=tuple(later)), good)
    assert c.sentence.startswith("compared with the last good run: no artifact changed; "
                                 "login prompt at 42.0 s (last good 40.0 s, +5%)"), c.sentence
    assert not c.artifacts and not c.facts and c.packages is not None and c.packages.empty()
    assert c.first_difference is None and not c.slower
    table = c.to_result("step 3: boot").tables["milestones"].set_index("milestone")
    assert table.loc["login prompt", "delta s"] == 2.0 and table.loc["login prompt", "delta %"] == 5.0
    assert table.loc["login prompt", "flag"] == ""


def test_changed_added_removed_artifacts_and_packages(tmp_path):
    good = rec(tmp_path, artifact_dir(tmp_path, "a"))
    b = artifact_dir(tmp_path, "b", uki=b"MZ" + b"u" * 7048,
                     pkgs=(("systemd", "252.31"), ("zstd", "1.5"),))
    (b / "ipxe.efi").unlink()
    (b / "autoexec.ipxe").write_text("#!ipxe\nchain http://x/\n")
    c = compare_runs(rec(tmp_path, b), good)
    by = {a.name: a for a in c.artifacts}
    assert by["carbide.efi"].change == "changed" and by["carbide.efi"].delta == 2048
    assert by["carbide.efi"].sha_before != by["carbide.efi"].sha_after
    assert by["ipxe.efi"].change == "removed" and by["autoexec.ipxe"].change == "added"
    assert [a.change for a in c.artifacts][:2] == ["changed", "changed"]  # changes first, then removed/added
    p = c.packages
    assert p is not None
    assert [x.name for x in p.added] == ["zstd"] and [x.name for x in p.removed] == ["bash"]
    assert [(b.version, a.version) for b, a in p.changed] == [("252.30", "252.31")]
    assert "carbide.efi +2.0k" in c.sentence and "packages: 1 added, 1 removed, 1 changed" in c.sentence
    tables = c.to_result("x").tables
    assert set(tables) >= {"artifacts changed", "package changes", "milestones"}


def test_boot_relevant_facts_changed(tmp_path):
    good = rec(tmp_path, artifact_dir(tmp_path, "a"))
    now = rec(tmp_path, artifact_dir(tmp_path, "b", ipxe=b"MZ other ipxe", uki=b"MZ" + b"v" * 5000))
    # the facts as runbook_lib.inspect reads them (nested per kind, or flat)
    good.artifacts["ipxe.efi"]["ipxe"] = {"version": "1.21.1+", "script_sha256": "aa", "needs_43_70": True,
                                          "chain_urls": ["http://${next-server}:8080/api/v0/pxe/boot"]}
    now.artifacts["ipxe.efi"]["ipxe"] = {"version": "1.21.1+", "script_sha256": "bb", "needs_43_70": False,
                                         "chain_urls": []}
    good.artifacts["carbide.efi"]["uki"] = {"cmdline": "console=ttyS0", "kernel_release": "6.1.0-28-amd64",
                                            "osrel_pretty_name": "Debian GNU/Linux 12 (bookworm)"}
    now.artifacts["carbide.efi"]["uki"] = {"cmdline": "console=ttyS0 panic=1 init=/nope",
                                           "kernel_release": "6.1.0-28-amd64",
                                           "osrel_pretty_name": "Debian GNU/Linux 13 (trixie)"}
    c = compare_runs(now, good)
    whats = [f.what for f in c.facts]
    assert whats[0] == "embedded iPXE script"  # the most boot-relevant first
    assert "needs DHCP option 43.70" in whats and "kernel command line" in whats
    assert "kernel version" not in whats and "iPXE version" not in whats
    assert "OS (PRETTY_NAME)" in whats
    assert "embedded iPXE script changed" in c.sentence
    assert c.to_result("x").tables["boot-relevant facts changed"].iloc[0]["what"] == "embedded iPXE script"


def test_slower_flag_threshold_and_minimum(tmp_path):
    a = artifact_dir(tmp_path, "a")
    good = rec(tmp_path, a)
    slow = (("firmware_start", 1.6), ("ipxe_banner", 8.5), ("kernel_fetched", 26.0), ("efi_stub", 28.0),
            ("systemd_welcome", 33.0), ("login_prompt", 44.0))
    c = compare_runs(rec(tmp_path, a, milestones=slow), good)
    flags = {m.name: m.flag for m in c.milestones}
    assert flags["kernel_fetched"] == "slower" and flags["efi_stub"] == "slower"  # +30%, +27%
    assert flags["firmware_start"] == ""  # +60%, but only 0.6 s: jitter
    assert flags["login_prompt"] == ""  # +10%
    assert "2 milestone(s) more than 25% slower: kernel fetched +30%, EFI stub +27%".lower() in c.sentence.lower()
    c40 = compare_runs(rec(tmp_path, a, milestones=slow), good, slower=0.40)
    assert not c40.slower


def test_fail_after_pass_sentence_and_first_difference(tmp_path):
    good = rec(tmp_path, artifact_dir(tmp_path, "a"))
    bad_ms = (("firmware_start", 1.0), ("ipxe_banner", 8.0), ("kernel_fetched", 20.0), ("efi_stub", 22.0))
    fail = rec(tmp_path, artifact_dir(tmp_path, "b", uki=b"MZ" + b"p" * 5000), verdict="FAIL", milestones=bad_ms,
               failure={"kind": "kernel_panic", "text": "Kernel panic - not syncing: No working init found.",
                        "seconds": 24.1})
    c = compare_runs(fail, good)
    assert c.sentence.startswith(
        f"last good {history.when_text(good.finished)}: it reached login prompt; this run stopped at efi stub: "
        "kernel_panic: Kernel panic - not syncing: No working init found."), c.sentence
    assert "carbide.efi" in c.sentence  # what changed since then
    assert c.first_difference == "this run never reached systemd welcome (the last good run did at 30.0 s)"
    flags = {m.name: m.flag for m in c.milestones}
    assert flags["systemd_welcome"] == "missing" and flags["login_prompt"] == "missing"


def test_order_difference_is_named(tmp_path):
    a = artifact_dir(tmp_path, "a")
    good = rec(tmp_path, a)
    other = (("firmware_start", 1.0), ("kernel_fetched", 9.0), ("ipxe_banner", 12.0), ("efi_stub", 22.0),
             ("systemd_welcome", 30.0), ("login_prompt", 40.0))
    c = compare_runs(rec(tmp_path, a, milestones=other), good)
    assert c.first_difference == "the order differs at milestone 2: last good ipxe banner, this run kernel fetched"


def test_a_comparison_round_trips_through_written_records(tmp_path):
    a = artifact_dir(tmp_path, "a")
    first = rec(tmp_path, a)
    assert history_hooks.compare_and_write(first).sentence == NO_GOOD
    second = rec(tmp_path, a)
    c = history_hooks.compare_and_write(second)
    assert c.last_good is not None and c.last_good.id == first.id
    assert "no artifact changed" in c.sentence
    assert json.loads(json.dumps(c.to_result("x").to_dict()))["details"]["last_good"]["id"] == first.id
