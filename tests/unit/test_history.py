"""Run history records: round trip, masking, last-good selection, other versions, pruning, CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from runbook_lib import history, history_hooks
from runbook_lib.cli import main
from runbook_lib.params import STEP2, STEP3

SECRET = "s3cr3t-Root-pw-7781"

pytestmark = pytest.mark.usefixtures("run_history")  # history on, under a temporary XDG_DATA_HOME


@pytest.fixture(autouse=True)
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(history.DISABLE_ENV, raising=False)
    return tmp_path / "data"


def arts(tmp_path: Path, name: str = "arts", **files: bytes) -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    for fname, data in (files or {"ipxe.efi": b"MZ ipxe", "carbide.efi": b"MZ uki" * 100}).items():
        (d / fname.replace("_", ".")).write_bytes(data)
    return d


def boot_rec(tree: Path, art: Path, verdict: str = "PASS", firmware: str = "uefi", log_dir: str = "/r/1",
             milestones=(("firmware_start", 1.0), ("login_prompt", 40.0)), **kw) -> history.Record:
    params = STEP3.validate({"firmware": firmware, "log_dir": log_dir, "boot_timeout_s": kw.pop("timeout", 300)})
    boot = {"milestones": [{"name": n, "label": n.replace("_", " "), "seconds": s} for n, s in milestones],
            "firmware": firmware, "network": "user", "accel": "tcg",
            "login_prompt_s": milestones[-1][1] if verdict == "PASS" else None}
    return history.new_record("boot", tree_root=tree, tree_kind="sandbox", params=params, spec=STEP3,
                              verdict=verdict, summary=kw.pop("summary", f"{verdict} boot"),
                              artifacts_dir=art, boot=boot, reached=milestones[-1][0], **kw)


def test_round_trip_file_name_and_atomic_write(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    rec = boot_rec(tree, arts(tmp_path))
    path = history.write(rec)
    assert path.parent == history.tree_dir(tree)
    assert path.name.endswith(f"-boot-{rec.id}.json") and path.name[:8].isdigit()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    raw = json.loads(path.read_text())
    assert raw["schema"] == "carbide-runbooks/run-record" and raw["version"] == 1
    back = history.load(path)
    assert back.to_dict() == rec.to_dict()
    assert back.artifacts["carbide.efi"]["size"] == 600
    assert back.artifacts["carbide.efi"]["sha256"] == __import__("hashlib").sha256(b"MZ uki" * 100).hexdigest()
    assert back.boot_seconds == 40.0 and back.reached == "login_prompt"
    assert back.tree == {"root": str(tree.resolve()), "kind": "sandbox", "git": None}


def test_secrets_are_masked_in_params_and_text(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    params = STEP2.validate({"root_password": SECRET})
    rec = history.new_record("build", tree_root=tree, tree_kind="sandbox", params=params, spec=STEP2,
                             verdict="FAIL", summary=f"login failed for password {SECRET}",
                             first_failure={"kind": "x", "text": f"echo {SECRET}", "seconds": None})
    text = history.write(rec).read_text()
    assert SECRET not in text
    assert rec.params["root_password"] == "***"
    # the secret still counts for "same parameters": another password is another build
    other = history.params_key(STEP2.validate({"root_password": "another-one-123"}))
    assert rec.params_key != other


def test_git_commit_and_dirty_state(tmp_path):
    tree = tmp_path / "checkout"
    tree.mkdir()
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (tree / "f").write_text("1")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git[:3], "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    info = history.tree_info(tree, "carbide")
    assert info["git"]["commit"] == head and info["git"]["dirty"] is False
    (tree / "f").write_text("2")
    assert history.tree_info(tree, "carbide")["git"]["dirty"] is True
    rec = history.new_record("boot", tree_root=tree, tree_kind="carbide", params={}, spec=None,
                             verdict="PASS", summary="ok")
    assert rec.commit == head[:10] + "+dirty"


def test_last_good_by_tree_params_and_verdict(tmp_path):
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir(), t2.mkdir()
    a = arts(tmp_path)
    good_old = boot_rec(t1, a)
    history.write(good_old)
    good_new = boot_rec(t1, a, log_dir="/r/2", timeout=100)  # log_dir and timeouts do not count
    history.write(good_new)
    assert good_new.params_key == good_old.params_key
    history.write(boot_rec(t1, a, verdict="FAIL"))  # newest, but not good
    history.write(boot_rec(t1, a, firmware="bios"))  # other parameters
    history.write(boot_rec(t2, a))  # other tree
    found = history.last_good(t1, "boot", good_old.params_key)
    assert found is not None and found.id == good_new.id
    assert history.last_good(t1, "boot", good_old.params_key, exclude=good_new.id).id == good_old.id
    assert history.last_good(t1, "build", good_old.params_key) is None
    bios = boot_rec(t1, a, firmware="bios")
    assert history.last_good(t1, "boot", bios.params_key) is not None
    assert history.last_good(tmp_path / "never", "boot", good_old.params_key) is None
    assert len(history.records(t1)) == 4 and len(history.records()) == 5
    assert [r.verdict for r in history.records(t1)][:2] == ["PASS", "FAIL"]  # newest first


def test_other_versions_and_garbage_are_skipped_with_a_note(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    good = boot_rec(tree, arts(tmp_path))
    history.write(good)
    d = history.tree_dir(tree)
    v2 = dict(good.to_dict(), version=2, id="aaaaaaaaaaaa")
    (d / "29990101T000000.000000Z-boot-aaaaaaaaaaaa.json").write_text(json.dumps(v2))
    (d / "29990101T000001.000000Z-boot-bbbbbbbbbbbb.json").write_text("{not json")
    (d / "29990101T000002.000000Z-boot-cccccccccccc.json").write_text(json.dumps({"schema": "other"}))
    recs, notes = history.scan(tree)
    assert [r.id for r in recs] == [good.id]
    assert len(notes) == 3 and any("record version 2" in n for n in notes)
    assert history.last_good(tree, "boot", good.params_key).id == good.id
    assert main(["history", "--tree", str(tree)]) == 0


def test_pruning_keeps_the_newest(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    a = arts(tmp_path)
    ids = []
    for _ in range(5):
        r = boot_rec(tree, a)
        history.write(r, keep=3)
        ids.append(r.id)
    left = [r.id for r in history.records(tree)]
    assert left == ids[::-1][:3]


def test_disabled_by_env(monkeypatch):
    monkeypatch.setenv(history.DISABLE_ENV, "off")
    out = history_hooks.after_build(object())  # type: ignore[arg-type]
    assert out.record is None and "history off" in out.note

    class Quiet:
        record_history = False
    monkeypatch.delenv(history.DISABLE_ENV)
    assert "record_history = False" in history_hooks.after_boot(Quiet()).note  # type: ignore[arg-type]


def test_a_broken_step_becomes_a_note_not_an_exception():
    out = history_hooks.after_boot(object())  # type: ignore[arg-type]
    assert out.record is None and out.note.startswith("run history not recorded: AttributeError")


def test_cli_table_json_and_limit(tmp_path, capsys):
    tree = tmp_path / "mytree"
    tree.mkdir()
    a = arts(tmp_path)
    history.write(boot_rec(tree, a, summary="login prompt after 40.0s"))
    history.write(boot_rec(tree, a, verdict="FAIL", summary="no login prompt; last milestone: EFI stub",
                           milestones=(("firmware_start", 1.0), ("efi_stub", 12.5))))
    assert main(["history", "--tree", str(tree)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["when", "kind", "tree", "commit", "verdict", "boot", "summary"]
    assert "FAIL" in out[1] and "12.5s" in out[1] and "mytree (sandbox)" in out[1]
    assert "PASS" in out[2] and "40.0s" in out[2] and "login prompt after 40.0s" in out[2]
    assert out[-1].startswith("2 run(s) from ")
    assert main(["history", "--json", "--limit", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 1 and data[0]["verdict"] == "FAIL" and data[0]["path"].endswith(".json")
    assert main(["history", "--kind", "build"]) == 0
    assert "no runs recorded" in capsys.readouterr().out
