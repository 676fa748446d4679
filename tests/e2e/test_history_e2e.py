"""Step 3 compared with the last good run, on real sandbox boots (TCG): PASS, PASS again ("no
artifact changed" + milestone deltas), then a changed chain script that breaks the boot (the
FAIL-after-PASS sentence names where it stopped and the changed artifact). About 3-4 minutes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runbook_lib import history
from runbook_lib.boot.standin import free_port
from runbook_lib.boot.step import BootStep
from runbook_lib.compare_runs import NO_GOOD
from runbook_lib.paths import artifacts_dir, sandbox_workdir
from runbook_lib.result import Status

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes", "run_history")]

ART = artifacts_dir(sandbox_workdir())
NEEDED = ("ipxe.efi", "autoexec.ipxe", "carbide.efi", "carbide.manifest")


@pytest.fixture(scope="module")
def sandbox_art() -> Path:
    if any(not (ART / n).is_file() for n in NEEDED):
        from runbook_lib.sandbox import build

        res = build()
        assert res.status is Status.PASS, f"sandbox build for the history test failed: {res}"
    return ART


def boot(workdir: Path, log_dir: Path) -> BootStep:
    s = BootStep({"workdir": str(workdir), "accel": "tcg", "port": free_port(), "boot_timeout_s": 150},
                 log_dir=log_dir)
    s.preflight()
    s.run()
    return s


def test_boots_compared_with_the_last_good_one(tmp_path, sandbox_art, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    workdir = tmp_path / "sandbox"
    mine = artifacts_dir(workdir)
    shutil.copytree(sandbox_art, mine)

    first = boot(workdir, tmp_path / "b1")
    assert first.result().status is Status.PASS, first.result()
    assert first.comparison is not None and first.comparison.sentence == NO_GOOD

    second = boot(workdir, tmp_path / "b2")
    assert second.result().status is Status.PASS, second.result()
    c = second.comparison
    assert c is not None and c.last_good is not None and c.last_good.id == first.comparison.current.id
    assert c.sentence.startswith("compared with the last good run: no artifact changed; login prompt at "), c.sentence
    table = second.section("compared with last good").tables["milestones"].set_index("milestone")
    assert "login prompt" in table.index and table.loc["login prompt", "delta s"] is not None
    assert c.first_difference is None

    chain = mine / "autoexec.ipxe"
    chain.write_text(chain.read_text().replace("/api/v0/pxe/boot?", "/api/v0/pxe/no-such-endpoint?"))
    third = boot(workdir, tmp_path / "b3")
    assert third.result().status is Status.FAIL
    c3 = third.comparison
    assert c3 is not None and c3.last_good is not None and c3.last_good.id == second.comparison.current.id
    assert c3.sentence.startswith(f"last good {history.when_text(c3.last_good.finished)}: it reached login "
                                  "prompt; this run stopped at "), c3.sentence
    assert "autoexec.ipxe" in c3.sentence and [a.name for a in c3.artifacts] == ["autoexec.ipxe"]
    assert c3.first_difference and "never reached" in c3.first_difference
    assert [r.verdict for r in history.records(workdir, "boot")] == ["FAIL", "PASS", "PASS"]
