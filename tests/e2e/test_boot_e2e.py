"""Real PXE boots of the sandbox artifacts under QEMU (TCG), good and broken.

Each test boots for real through the stand-in on a free port, asserts the verdict,
the first failure, that the logs were written, and that no qemu/swtpm is left.
Needs the sandbox artifacts (step 2): built into the default workdir first when missing
(a real build, about 2 minutes cold; a no-op when they are up to date).
Whole module: about 5-8 minutes on 2 cores under TCG.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.boot import step
from runbook_lib.boot.standin import BootScript, free_port
from runbook_lib.params import STEP3
from runbook_lib.paths import artifacts_dir, sandbox_workdir
from runbook_lib.result import Status

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes")]

ART = artifacts_dir(sandbox_workdir())
NEEDED = ("ipxe.efi", "autoexec.ipxe", "carbide.efi", "carbide.vmlinuz", "carbide.root")


@pytest.fixture(scope="module", autouse=True)
def _artifacts() -> None:
    missing = [n for n in NEEDED if not (ART / n).is_file()]
    if missing:
        from runbook_lib.sandbox import build

        res = build()
        assert res.status is Status.PASS, f"sandbox build for the boot tests failed: {res}"
    missing = [n for n in NEEDED if not (ART / n).is_file()]
    assert not missing, f"sandbox artifacts still missing in {ART}: {missing}"


def params(**kw) -> dict:
    base = {"accel": "tcg", "port": free_port(), "boot_timeout_s": 400}
    base.update(kw)
    return STEP3.validate(base)


def boot(tmp_path: Path, p: dict, **kw) -> tuple[step.BootRun, dict]:
    plan = step.preflight(p)
    run = step.boot(plan, tmp_path, on_event=None, **kw)
    res = step.result(run)
    data = json.loads(json.dumps(res.to_dict(), default=str))
    serial = Path(run.logs["serial console"])
    assert serial.is_file() and serial.stat().st_size > 0, "serial log not written"
    assert not run.leftovers
    return run, data


def test_uefi_ipxe_efi_uki_reaches_login(tmp_path: Path) -> None:
    run, data = boot(tmp_path, params())
    assert run.status is Status.PASS, run.cause
    an = run.analysis
    reached = [m.name for m in an.milestones]
    for name in ("pxe_dhcp", "nbp_downloaded", "ipxe_banner", "ipxe_script", "boot_script",
                 "kernel_fetched", "efi_stub", "login_prompt"):
        assert name in reached
    paths = [r.path.split("?")[0] for r in run.requests]
    assert paths[:2] == ["/api/v0/pxe/boot", "/public/blobs/internal/x86_64/carbide.efi"]
    assert run.requests[1].bytes == (ART / "carbide.efi").stat().st_size
    assert "romfile=" in run.command and "OVMF_CODE_4M.fd" in run.command
    assert data["details"]["timing"]["prompt_to_verdict_s"] is not None
    # the port differs from autoexec.ipxe's 8080, so a rewritten copy served TFTP
    assert any("rewritten for port" in n for n in run.notes)


def test_bios_nic_rom_with_swtpm_reaches_login(tmp_path: Path) -> None:
    run, _ = boot(tmp_path, params(firmware="bios", tpm=True))
    assert run.status is Status.PASS, run.cause
    reached = [m.name for m in run.analysis.milestones]
    assert {"kernel_fetched", "initrd_fetched", "linux_version", "login_prompt"} <= set(reached)
    assert "tpm-tis,tpmdev=tpm0" in run.command
    assert "tpm_detected" in reached  # the guest kernel found swtpm's TPM 2.0
    assert Path(run.logs["swtpm"]).exists()
    assert any("ipxe.kpxe was not exercised" in n for n in run.notes)


def test_standin_down_fails_on_the_chain(tmp_path: Path) -> None:
    run, data = boot(tmp_path, params(firmware="bios", boot_timeout_s=120), serve=False)
    assert run.status is Status.FAIL
    assert data["details"]["analysis"]["first_failure"]["kind"] == "http_connection"
    assert "Connection reset" in run.cause
    assert run.requests == []


def test_kernel_404(tmp_path: Path) -> None:
    run, _ = boot(tmp_path, params(firmware="bios", boot_timeout_s=120),
                  script=BootScript(mode="kernel", kernel="no-such.vmlinuz"))
    assert run.status is Status.FAIL
    ff = run.analysis.first_failure
    assert ff.kind == "http_not_found" and "no-such.vmlinuz" in ff.text and ff.code
    assert any(r.status == 404 for r in run.requests)


def test_initrd_missing_panics(tmp_path: Path) -> None:
    run, _ = boot(tmp_path, params(firmware="bios", boot_timeout_s=300),
                  script=BootScript(mode="kernel", initrd=None))
    assert run.status is Status.FAIL
    ff = run.analysis.first_failure
    assert ff.kind == "root_mount" and "Kernel panic" in ff.text
    assert run.analysis.last_milestone == "linux_version"


def test_no_bootfile(tmp_path: Path) -> None:
    art = tmp_path / "art"
    art.mkdir()
    for name in NEEDED:
        if name != "ipxe.efi":
            (art / name).symlink_to(ART / name)
    p = params(artifacts_dir=str(art), boot_timeout_s=45)
    plan = step.preflight(p)
    assert plan.status is Status.FAIL and "ipxe.efi" in plan.first_problem().detail
    run = step.boot(plan, tmp_path / "logs", on_event=None, skip_checks=True)
    assert run.status is Status.FAIL
    # a failed PXE attempt does not end the watch (HTTP boot may still work); OVMF goes on to
    # its next option and the cause stays the TFTP error of the attempt that got furthest
    assert run.analysis.first_failure.kind == "tftp_error"
    assert "PXE-E23" in run.analysis.first_failure.text
    first = run.analysis.attempts[0]
    assert "PXEv4" in first.name and first.outcome == "failed"


def test_hang_times_out_naming_the_last_milestone(tmp_path: Path) -> None:
    # rdinit= runs sleep instead of systemd: the kernel boots, then nothing more happens.
    script = BootScript(mode="kernel", cmdline="console=ttyS0,115200 rdinit=/usr/bin/sleep 3600")
    run, data = boot(tmp_path, params(firmware="bios", boot_timeout_s=60), script=script)
    assert run.status is Status.FAIL
    ff = run.analysis.first_failure
    assert ff.kind == "timeout"
    assert "login_prompt" not in [m.name for m in run.analysis.milestones]
    assert run.analysis.last_milestone in ("linux_version", "initrd_unpacked", "initrd_fetched",
                                           "kernel_fetched")
    assert run.analysis.last_milestone in ff.hint
    assert data["details"]["analysis"]["first_failure"]["kind"] == "timeout"


def test_cli_boot_bios_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runbook_lib.cli import main

    rc = main(["boot", "--json", "-p", "firmware", "bios", "-p", "accel", "tcg",
               "-p", "port", str(free_port()), "-p", "log_dir", str(tmp_path)])
    out = capsys.readouterr().out
    data = json.loads(out[out.index("{"):])
    assert rc == 0, data["cause"]
    assert data["status"] == "PASS"
    assert data["details"]["analysis"]["milestones"][-1]["name"] == "login_prompt"
    assert (tmp_path / "boot" / "serial.log").is_file()


class _StallingScript(BootScript):
    """A boot script whose console shows a kernel's RCU stall report and then goes silent, as a
    guest hung in multi-threaded TCG does (the report itself is printed by iPXE here)."""

    def render(self, base: str, uuid: str, buildarch: str) -> str:
        return ("#!ipxe\necho [   35.123456] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"
                "sleep 3600\n")


def test_a_stalled_vm_is_booted_again_once_and_reported_as_infrastructure(tmp_path: Path) -> None:
    run, data = boot(tmp_path, params(firmware="bios", boot_timeout_s=120), script=_StallingScript())
    # both boots stalled: FAIL, the stall as the cause, one infrastructure event for the retry
    assert run.status is Status.FAIL
    assert run.analysis.first_failure.kind == "rcu_stall"
    events = data["details"]["infrastructure_events"]
    assert [e["event"] for e in events] == ["vm_stalled_retried"] and events[0]["kind"] == "rcu_stall"
    kept = Path(events[0]["log"])
    assert kept.is_file() and b"detected stalls" in kept.read_bytes()
    assert "booted again once" in " ".join(run.notes)
    assert run.timing["boot_s"] < 60  # the second boot also ended at the stall, not at the timeout
