"""Environment faults of step 3 are ERROR (not FAIL), name their cause, and leave nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from runbook_lib.boot import qemu as vmq
from runbook_lib.boot import step
from runbook_lib.boot.standin import free_port
from runbook_lib.params import STEP3
from runbook_lib.result import Status

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_leftover_processes")]


def art(tmp_path: Path) -> Path:
    d = tmp_path / "art"
    d.mkdir(exist_ok=True)
    # sparse files in each artifact's size band (the pre-flight checks bands, not only presence)
    for n, size in (("ipxe.efi", 300_000), ("autoexec.ipxe", 200), ("carbide.efi", 80_000_000)):
        with open(d / n, "wb") as fh:
            fh.truncate(size)
    return d


def params(tmp_path: Path, **kw) -> dict:
    base = {"accel": "tcg", "port": free_port(), "artifacts_dir": str(art(tmp_path)), "boot_timeout_s": 30}
    base.update(kw)
    return STEP3.validate(base)


def test_qemu_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = params(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without qemu, as on a fresh machine
    plan = step.preflight(p)
    assert plan.status is Status.ERROR
    assert plan.first_problem().check == "qemu-system-x86_64"
    run = step.boot(plan, tmp_path / "logs", on_event=None)
    assert run.status is Status.ERROR and "qemu-system-x86_64" in run.cause
    assert "apt-get install -y qemu-system-x86" in run.fix
    forced = step.boot(plan, tmp_path / "logs2", on_event=None, skip_checks=True)
    assert forced.status is Status.ERROR and "command not found" in forced.cause


def test_ovmf_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from runbook_lib import requirements as reqs

    gone = str(tmp_path / "nope" / "OVMF_CODE_4M.fd")
    monkeypatch.setattr(reqs, "REGISTRY", tuple(
        replace(r, target=gone) if r.name == "OVMF (UEFI firmware)" else r for r in reqs.REGISTRY))
    plan = step.preflight(params(tmp_path))
    assert plan.status is Status.ERROR
    prob = plan.first_problem()
    assert prob.check == "OVMF (UEFI firmware)" and "OVMF_CODE_4M.fd" in prob.detail
    assert "ovmf" in prob.fix
    res = step.preflight_result(plan)
    assert res.status is Status.ERROR and res.fix


def test_port_busy_is_error_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        p = params(tmp_path, port=port)
        plan = step.preflight(p)
        assert plan.status is Status.ERROR
        assert f"127.0.0.1:{port}" in plan.first_problem().detail
        run = step.boot(plan, tmp_path / "logs", on_event=None, skip_checks=True)
        assert run.status is Status.ERROR
        assert f"port {port}" in run.cause and str(port) in run.fix


def test_truncated_artifact_is_fail_before_booting(tmp_path: Path) -> None:
    p = params(tmp_path)
    with open(Path(p["artifacts_dir"]) / "carbide.efi", "wb") as fh:
        fh.truncate(1000)
    plan = step.preflight(p)
    assert plan.status is Status.FAIL
    prob = plan.first_problem()
    assert prob.check == "artifacts" and "carbide.efi truncated" in prob.detail and "step 2" in prob.fix


def test_bad_extra_args_is_error_with_qemus_message(tmp_path: Path) -> None:
    p = params(tmp_path, extra_args="-no-such-option")
    plan = step.preflight(p)
    run = step.boot(plan, tmp_path / "logs", on_event=None)
    assert run.status is Status.ERROR
    assert "no-such-option" in run.cause
    assert Path(run.logs["qemu"]).is_file()


def test_kvm_requested_but_unusable_is_error(tmp_path: Path) -> None:
    from runbook_lib.accel import KvmProbe

    plan = step.preflight(params(tmp_path, accel="kvm"),
                          probe=lambda: KvmProbe(False, "KVM internal error (probe)"))
    assert plan.status is Status.ERROR and plan.first_problem().check == "accel"
    auto = step.preflight(params(tmp_path, accel="auto"),
                          probe=lambda: KvmProbe(False, "KVM internal error (probe)"))
    assert auto.status is Status.PASS and auto.accel == "tcg"
    assert any("falling back to TCG" in c.detail for c in auto.checks)


def test_real_kvm_probe_decides(tmp_path: Path) -> None:
    plan = step.preflight(params(tmp_path, accel="auto"))
    row = next(c for c in plan.checks if c.check == "accel")
    assert plan.accel in ("kvm", "tcg")
    assert (plan.accel == "tcg") == (row.status == "warn")


def test_cli_boot_port_busy_and_bad_param(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runbook_lib.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        rc = main(["boot", "-p", "accel", "tcg", "-p", "port", str(port),
                   "-p", "artifacts_dir", str(art(tmp_path)), "-p", "log_dir", str(tmp_path / "logs")])
    out = capsys.readouterr().out
    assert rc == 2 and out.startswith("ERROR") and f"127.0.0.1:{port}" in out
    rc = main(["boot", "-p", "firmware", "coreboot"])
    assert rc == 2 and "firmware" in capsys.readouterr().err


def test_bridge_without_acl_or_bridge_is_error(tmp_path: Path) -> None:
    plan = step.preflight(params(tmp_path, network="bridge"))
    rows = {c.check: c for c in plan.checks}
    assert "stand-in port" not in rows  # bridge mode never starts the stand-in
    if not vmq.BRIDGE_CONF.exists() or not vmq.bridge_allowed("carbide0")[0]:
        assert plan.status is Status.ERROR
        acl = rows["bridge.conf allows carbide0"]
        assert acl.status == "ERROR" and "allow carbide0" in acl.fix
    if not Path("/sys/class/net/carbide0").exists():
        assert rows["bridge carbide0"].status == "ERROR"
        run = step.boot(plan, tmp_path / "logs", on_event=None)
        assert run.status is Status.ERROR and run.analysis is None
