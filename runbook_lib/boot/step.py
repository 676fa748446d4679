"""Step 3: PXE boot a QEMU VM against the carbide-pxe stand-in and explain the boot.

:func:`preflight` checks everything the environment must provide (qemu, firmware,
KVM, the port, the bridge ACL, swtpm) and the artifacts; :func:`boot` runs the VM
with the stand-in and the serial watch, always tears everything down, and returns
a :class:`~runbook_lib.result.StepResult` with the timeline, the request log, the
serial excerpts and the verdict.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import shell
from ..accel import probe_kvm
from ..live import note
from ..paths import artifacts_dir, sandbox_workdir
from ..result import Status, StepResult
from . import qemu as vmq
from .analyze import Analysis, Failure, Milestone
from .console import watch
from .standin import BootScript, PortBusy, Request, StandIn, port_free

STEP = "Step 3: PXE boot a QEMU VM"
UKI = "carbide.efi"
KERNEL = "carbide.vmlinuz"
INITRD = "carbide.root"
MIN_UKI_MEMORY_MB = 2048


@dataclass
class Check:
    check: str
    status: str  # ok | warn | FAIL | ERROR
    detail: str
    fix: str = ""


@dataclass
class Plan:
    """What preflight decided, for :func:`boot`."""

    params: dict[str, Any]
    artifacts: Path
    accel: str
    checks: list[Check] = field(default_factory=list)
    status: Status = Status.PASS

    def first_problem(self) -> Check | None:
        for level in ("ERROR", "FAIL"):
            for c in self.checks:
                if c.status == level:
                    return c
        return None


def resolve_artifacts(params: dict[str, Any]) -> Path:
    if params.get("artifacts_dir"):
        return Path(params["artifacts_dir"]).expanduser().resolve()
    root = params.get("carbide_root_dir") or sandbox_workdir(params.get("workdir") or None)
    return artifacts_dir(Path(root).expanduser(), params.get("arch", "x86_64"))


def preflight(params: dict[str, Any], probe: Callable[[], Any] = probe_kvm) -> Plan:
    checks: list[Check] = []
    art = resolve_artifacts(params)
    qemu_bin = shutil.which(vmq.QEMU)
    if qemu_bin:
        ver = shell.capture([vmq.QEMU, "--version"], timeout=20).tail
        checks.append(Check("qemu", "ok", f"{qemu_bin}: {ver[0] if ver else '?'}"))
    else:
        checks.append(Check("qemu", "ERROR", f"{vmq.QEMU} not found on PATH",
                            "sudo apt-get install qemu-system-x86"))
    if params["firmware"] == "uefi":
        missing = [str(p) for p in (vmq.OVMF_CODE, vmq.OVMF_VARS) if not p.exists()]
        checks.append(Check("firmware (OVMF)", "ERROR" if missing else "ok",
                            f"missing: {', '.join(missing)}" if missing
                            else f"{vmq.OVMF_CODE} (read-only) + a per-run copy of {vmq.OVMF_VARS.name}",
                            "sudo apt-get install ovmf" if missing else ""))
    else:
        ok = vmq.SEABIOS.exists()
        checks.append(Check("firmware (SeaBIOS)", "ok" if ok else "ERROR",
                            str(vmq.SEABIOS) + ("" if ok else " is missing"),
                            "" if ok else "sudo apt-get install seabios"))
    # artifacts
    if not art.is_dir():
        checks.append(Check("artifacts", "FAIL", f"{art} does not exist",
                            "build them first: run step 2 (notebooks/02_build_ipxe_image.ipynb)"))
    else:
        need = ([UKI] if params["firmware"] == "uefi" else [KERNEL, INITRD])
        if params["network"] == "user" and params["firmware"] == "uefi":
            need = ["ipxe.efi", "autoexec.ipxe"] + need
        missing = [n for n in need if not (art / n).is_file()]
        sizes = ", ".join(f"{n} {(art / n).stat().st_size / 1e6:.1f} MB" for n in need
                          if (art / n).is_file())
        checks.append(Check("artifacts", "FAIL" if missing else "ok",
                            f"{art}: " + (f"missing {', '.join(missing)}" if missing else sizes),
                            "rebuild the boot artifacts (step 2)" if missing else ""))
        if params["firmware"] == "bios":
            checks.append(Check("ipxe.kpxe", "warn",
                                "not exercised: in BIOS mode QEMU's NIC ROM (iPXE) fetches the boot "
                                "script itself"))
    if params["firmware"] == "uefi" and params["memory_mb"] < MIN_UKI_MEMORY_MB:
        checks.append(Check("memory", "warn",
                            f"{params['memory_mb']} MB is likely too little for the UKI's initrd "
                            "(seen here: 'Initramfs unpacking failed' at 512 MB; with bigger UKIs "
                            "'EFI stub: ERROR: Failed to load initrd')", "memory_mb = 4096"))
    else:
        checks.append(Check("memory", "ok", f"{params['memory_mb']} MB, {params['cpus']} vCPUs"))
    # acceleration
    accel = params["accel"]
    if accel == "tcg":
        checks.append(Check("accel", "ok", "tcg (software emulation) as requested"))
    else:
        res = probe()
        if res.usable:
            accel = "kvm"
            checks.append(Check("accel", "ok", f"kvm: {res.reason}"))
        elif params["accel"] == "kvm":
            checks.append(Check("accel", "ERROR", f"kvm requested but unusable: {res.reason}",
                                "use accel = 'auto' or 'tcg'"))
        else:
            accel = "tcg"
            checks.append(Check("accel", "warn",
                                f"KVM unusable, falling back to TCG (slower): {res.reason}"))
    # network
    if params["network"] == "user":
        port = params["port"]
        free = port_free("127.0.0.1", port)
        checks.append(Check("stand-in port", "ok" if free else "ERROR",
                            f"127.0.0.1:{port} is " + ("free" if free else "already in use"),
                            "" if free else f"stop whatever listens on port {port} "
                            f"(ss -ltnp 'sport = :{port}') or set port to a free one"))
    else:
        helper = Path("/usr/lib/qemu/qemu-bridge-helper")
        allowed, why = vmq.bridge_allowed("carbide0")
        checks.append(Check("bridge ACL", "ok" if allowed else "ERROR", why,
                            "" if allowed else "echo 'allow carbide0' | sudo tee -a /etc/qemu/bridge.conf"))
        checks.append(Check("qemu-bridge-helper", "ok" if helper.exists() else "ERROR", str(helper),
                            "" if helper.exists() else "sudo apt-get install qemu-system-common"))
        up = Path("/sys/class/net/carbide0").exists()
        checks.append(Check("bridge carbide0", "ok" if up else "ERROR",
                            "present" if up else "no interface carbide0",
                            "" if up else "start the carbide dev environment (docker-compose / KIND) first"))
    if params["tpm"]:
        ok = shutil.which("swtpm") is not None
        checks.append(Check("swtpm", "ok" if ok else "ERROR",
                            shutil.which("swtpm") or "swtpm not found",
                            "" if ok else "sudo apt-get install swtpm swtpm-tools"))
    plan = Plan(params, art, accel, checks)
    levels = {c.status for c in checks}
    plan.status = Status.ERROR if "ERROR" in levels else Status.FAIL if "FAIL" in levels else Status.PASS
    return plan


def preflight_result(plan: Plan) -> StepResult:
    import pandas as pd

    prob = plan.first_problem()
    table = pd.DataFrame([c.__dict__ for c in plan.checks])
    summary = ("ready to boot" if prob is None else "cannot boot")
    return StepResult(f"{STEP}: pre-flight", plan.status, summary,
                      cause=f"{prob.check}: {prob.detail}" if prob else None,
                      fix=prob.fix if prob else None,
                      details={"artifacts": str(plan.artifacts), "accel": plan.accel},
                      tables={"preflight": table})


# --------------------------------------------------------------------------------------
@dataclass
class BootRun:
    """Everything a boot produced; :meth:`result` turns it into the StepResult."""

    status: Status
    summary: str
    cause: str | None
    fix: str | None
    command: str = ""
    analysis: Analysis | None = None
    requests: list[Request] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timing: dict[str, float | None] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)


def _event_note(ev: Milestone | Failure) -> None:
    t = f"{ev.seconds:7.1f}s" if ev.seconds is not None else "       "
    if isinstance(ev, Milestone):
        note(f"{t}  milestone  {ev.label}")
    else:
        note(f"{t}  FAILURE    {ev.kind}: {ev.text[:120]}")


def boot(plan: Plan, log_dir: Path, *, script: BootScript | None = None,
         on_event: Callable[[Milestone | Failure], None] | None = _event_note,
         skip_checks: bool = False, serve: bool = True) -> BootRun:
    """Boot once. A plan with ERROR/FAIL checks is not booted (unless `skip_checks`).

    `serve=False` boots without the stand-in (to show what a stopped carbide-pxe looks like).
    """
    p = plan.params
    prob = plan.first_problem()
    if prob is not None and not skip_checks:
        status = Status.ERROR if prob.status == "ERROR" else Status.FAIL
        return BootRun(status, "not booted: pre-flight failed", f"{prob.check}: {prob.detail}",
                       prob.fix or None)
    run_dir = Path(log_dir) / "boot"
    run_dir.mkdir(parents=True, exist_ok=True)
    serial_raw = run_dir / "serial.raw"
    serial_raw.unlink(missing_ok=True)
    logs = {"serial console": str(run_dir / "serial.log"), "qemu": str(run_dir / "qemu.log")}
    if serve and p["network"] == "user":
        logs["http requests"] = str(run_dir / "requests.jsonl")
    for name in ("serial.log", "qemu.log", "requests.jsonl", "swtpm.log"):
        (run_dir / name).unlink(missing_ok=True)
    uuid = p.get("uuid") or vmq.default_uuid(p["mac"])
    bs = script or BootScript(arch=p.get("arch", "x86_64"))
    notes: list[str] = []
    if plan.accel == "tcg" and p["accel"] != "tcg":
        notes.append("KVM is not usable here; the VM runs under TCG (software emulation)")
    if p["firmware"] == "bios":
        notes.append("BIOS: QEMU's NIC option ROM (iPXE) fetched the boot script itself; "
                     "ipxe.kpxe was not exercised")
    cfg = vmq.VmConfig(serial_path=serial_raw, firmware=p["firmware"], network=p["network"],
                       accel=plan.accel, memory_mb=p["memory_mb"], cpus=p["cpus"], mac=p["mac"],
                       uuid=uuid, extra_args=p.get("extra_args", ""))
    if p["network"] == "bridge":
        serve = False  # the real carbide-pxe answers on the bridge; never shadow its port
        notes.append("bridge: carbide's own DHCP and carbide-pxe serve the boot; the stand-in "
                     "was not started")
    if p["network"] == "user":
        if p["firmware"] == "uefi":
            cfg.tftp_dir, cfg.bootfile = tftp_root(plan.artifacts, p["port"], run_dir, notes), "ipxe.efi"
        else:
            cfg.bootfile = vmq.boot_url(p["port"], uuid, p.get("arch", "x86_64"))
    else:
        cfg.bootfile = ""
    standin = StandIn(plan.artifacts, bs, port=p["port"], log_path=run_dir / "requests.jsonl")
    swtpm: shell.Proc | None = None
    vm: shell.Proc | None = None
    run = BootRun(Status.ERROR, "", None, None, logs=logs, notes=notes)
    try:
        if p["firmware"] == "uefi":
            cfg.ovmf_vars = vmq.copy_vars(run_dir / "OVMF_VARS_4M.fd")
        try:
            if serve:
                standin.start()
        except PortBusy as exc:
            run.summary, run.cause = "not booted", f"port {exc.port} is busy: {exc}"
            run.fix = (f"stop whatever listens on port {exc.port} (ss -ltnp 'sport = :{exc.port}') "
                       "or set port to a free one")
            return run
        if p["tpm"]:
            logs["swtpm"] = str(run_dir / "swtpm.log")
            try:
                swtpm, cfg.tpm_socket = vmq.start_swtpm(run_dir / "tpm", run_dir / "swtpm.log")
            except (shell.CommandNotFound, RuntimeError) as exc:
                run.summary, run.cause = "not booted: the software TPM did not start", str(exc)
                run.fix = "sudo apt-get install swtpm swtpm-tools, or set tpm = False"
                return run
        argv = vmq.build_argv(cfg)
        run.command = shell.quote(argv)
        note(f"qemu: {run.command}")
        t0 = time.monotonic()
        standin.reset_clock(t0)
        try:
            vm = shell.spawn(argv, log_path=run_dir / "qemu.log")
        except shell.CommandNotFound as exc:
            run.summary, run.cause = "not booted", str(exc)
            run.fix = "sudo apt-get install qemu-system-x86"
            return run
        outcome = watch(serial_raw, run_dir / "serial.log", t0=t0, timeout_s=p["timeout_s"],
                        is_running=vm.running, success_pattern=p["success_pattern"],
                        on_event=on_event)
        run.analysis = outcome.analysis
        run.timing = {"boot_s": round(outcome.duration_s, 2),
                      "login_prompt_s": None if outcome.success_at is None
                      else round(outcome.success_at, 2),
                      "prompt_to_verdict_s": None if outcome.success_at is None
                      else round(outcome.verdict_at - outcome.success_at, 4)}
    finally:
        if vm is not None:
            vm.stop(grace=2.0)
        if swtpm is not None:
            swtpm.stop(grace=2.0)
        standin.stop()
        run.requests = list(standin.requests)
        run.leftovers = _leftovers([pr for pr in (vm, swtpm) if pr is not None])
    return _verdict(run, vm)


def tftp_root(artifacts: Path, port: int, run_dir: Path, notes: list[str]) -> Path:
    """The artifacts dir itself, unless its autoexec.ipxe chains another port than `port`.

    Then a per-run TFTP root holds a copy of ipxe.efi and autoexec.ipxe with the port
    rewritten, and a note says so (the artifacts are never modified).
    """
    auto = artifacts / "autoexec.ipxe"
    if not auto.is_file():
        return artifacts
    text = auto.read_text(errors="replace")
    ports = set(re.findall(r"\$\{next-server\}:(\d+)/", text))
    if not ports or ports == {str(port)}:
        return artifacts
    root = run_dir / "tftp"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("ipxe.efi",):
        if (artifacts / name).is_file():
            shutil.copyfile(artifacts / name, root / name)
    (root / "autoexec.ipxe").write_text(
        re.sub(r"(\$\{next-server\}:)\d+/", rf"\g<1>{port}/", text))
    notes.append(f"autoexec.ipxe chains port {', '.join(sorted(ports))}; this run served a copy "
                 f"rewritten for port {port} from {root}")
    return root


def _leftovers(procs: list[shell.Proc]) -> list[str]:
    left = []
    for pr in procs:
        try:
            os.killpg(pr.pgid, 0)
            left.append(f"{pr.argv[0]} (pgid {pr.pgid})")
        except ProcessLookupError:
            pass
    return left


def _verdict(run: BootRun, vm: shell.Proc | None) -> BootRun:
    an = run.analysis
    assert an is not None
    rc = vm.popen.returncode if vm is not None else None
    if an.ended == "exit" and an.lines == 0 and rc not in (0, None, -15, -9):
        qlog = Path(run.logs["qemu"]).read_text(errors="replace").strip().splitlines()
        msg = next((ln for ln in reversed(qlog) if ln.strip()), f"exit code {rc}")
        run.status, run.summary = Status.ERROR, "QEMU did not start"
        run.cause, run.fix = f"qemu exited with code {rc}: {msg}", \
            "fix the QEMU invocation (extra_args, firmware paths) shown in the command above"
        return run
    if run.leftovers:
        run.notes.append(f"processes still running after teardown: {', '.join(run.leftovers)}")
    ff = an.first_failure
    if an.verdict == "PASS":
        run.status = Status.PASS
        run.summary = (f"login prompt after {run.timing.get('login_prompt_s')}s "
                       f"({len(an.milestones)} milestones)")
    else:
        run.status = Status.FAIL
        run.summary = f"no login prompt; last milestone: {an.last_milestone or 'none'}"
        if ff:
            run.cause = f"{ff.kind} at serial line {ff.line}: {ff.text}"
            run.fix = ff.hint
    return run


def result(run: BootRun) -> StepResult:
    from .report import requests_table, timeline_table

    details: dict[str, Any] = {"qemu_command": run.command, "notes": run.notes,
                               "timing": run.timing, "leftover_processes": run.leftovers}
    tables: dict[str, Any] = {}
    if run.analysis is not None:
        details["analysis"] = run.analysis.to_dict()
        tables["timeline"] = timeline_table(run)
    tables["requests"] = requests_table(run.requests)
    summary = run.summary + ("".join(f"; {n}" for n in run.notes[:1]))
    return StepResult(STEP, run.status, summary, run.cause, run.fix, details, tables, run.logs)


class BootStep:
    """The notebook's handle: one method per cell, each returns something that displays."""

    def __init__(self, ctx: Any, script: BootScript | None = None) -> None:
        self.ctx = ctx
        self.script = script
        self.plan: Plan | None = None
        self.run_: BootRun | None = None

    def preflight(self) -> StepResult:
        self.plan = preflight(self.ctx.params)
        return preflight_result(self.plan)

    def run(self) -> StepResult:
        if self.plan is None:
            self.plan = preflight(self.ctx.params)
        self.run_ = boot(self.plan, self.ctx.log_dir, script=self.script)
        res = result(self.run_)
        _save_json(res, Path(self.ctx.log_dir) / "boot" / "result.json")
        return res

    def _need_run(self) -> BootRun:
        if self.run_ is None:
            raise RuntimeError("run() first")
        return self.run_

    def command(self) -> Any:
        from .report import HTML
        import html as _html

        r = self._need_run()
        notes = "".join(f"<li>{_html.escape(n)}</li>" for n in r.notes)
        return HTML(f"<pre style='white-space:pre-wrap'>{_html.escape(r.command or '(not started)')}"
                    f"</pre>" + (f"<ul>{notes}</ul>" if notes else ""))

    def timeline(self) -> Any:
        from .report import timeline_table

        return timeline_table(self._need_run())

    def chart(self) -> Any:
        from .report import timeline_chart

        return timeline_chart(self._need_run())

    def excerpts(self) -> Any:
        from .report import excerpts

        return excerpts(self._need_run())

    def requests(self) -> Any:
        from .report import requests_table

        return requests_table(self._need_run().requests)

    def verdict(self) -> StepResult:
        return result(self._need_run())


def _save_json(res: StepResult, path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res.to_dict(), indent=2, default=str))


class Outcome:
    """A stable, time-free line for checks: the verdict and the milestones reached, in order."""

    def __init__(self, run: BootRun) -> None:
        an = run.analysis
        self.text = f"{run.status.value}: " + (
            " -> ".join(m.name for m in an.milestones) if an is not None else run.summary)
        if an is not None and an.first_failure is not None and run.status != Status.PASS:
            self.text += f"\nfirst failure: {an.first_failure.kind}"

    def __repr__(self) -> str:
        return self.text


def outcome(step: BootStep) -> Outcome:
    return Outcome(step._need_run())
