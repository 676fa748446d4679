"""Step 3: PXE boot a QEMU VM against the carbide-pxe stand-in and explain the boot.

:class:`BootStep` follows the step protocol (:mod:`runbook_lib.step`). Its engine is two
functions: :func:`preflight` checks the requirements from the one registry (qemu, firmware,
the port, the bridge ACL, swtpm), the artifacts, memory and KVM; :func:`boot` runs the VM with
the stand-in and the serial watch, always tears everything down, and returns a
:class:`~runbook_lib.boot.run.BootRun`; :func:`result` turns it into the StepResult with the
timeline, the request log, the serial excerpts and the verdict.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import history, history_hooks
from .. import requirements as reqs
from .. import shell
from ..accel import probe_kvm
from ..compare_runs import RunComparison
from ..live import note
from ..params import STEP3
from ..paths import artifacts_dir, sandbox_workdir
from ..result import Status, StepResult
from ..step import Step, combine
from . import qemu as vmq
from . import artifact_set
from . import bounce as bouncer
from . import report as view
from . import testnet as tn
from .analyze import Failure, Milestone
from .console import watch
from .run import BootRun, Check, Plan
from .served import compare_served
from .standin import BootScript, PortBusy, StandIn

STEP = "step 3: boot"
__all__ = ["BootStep", "BootRun", "Check", "Plan", "preflight", "preflight_result", "boot", "result",
           "resolve_artifacts", "Outcome", "tftp_root", "served_wanted", "served_part"]
MIN_UKI_MEMORY_MB = 2048
SERVED_WAIT_AFTER_BOUNCE_S = 120.0  # a restarted carbide-pxe (cargo watch may recompile) may answer late
ServedCheck = Callable[[str | None, str | None], StepResult]


def resolve_artifacts(params: dict[str, Any]) -> Path:
    if params.get("artifacts_dir"):
        return Path(params["artifacts_dir"]).expanduser().resolve()
    root = params.get("carbide_root_dir") or sandbox_workdir(params.get("workdir") or None)
    return artifacts_dir(Path(root).expanduser(), params.get("arch", "x86_64"))


def needs(params: Mapping[str, Any]) -> reqs.Needs:
    return reqs.Needs(tpm=bool(params["tpm"]), firmware=frozenset({params["firmware"]}),
                      network=frozenset({params["network"]}))


def _registry_checks(params: Mapping[str, Any]) -> list[Check]:
    """The registry's boot requirements as pre-flight rows (missing = ERROR, with the fix)."""
    rows = []
    for req, required in reqs.for_step(reqs.BOOT, needs(params), **{"stand-in port": str(params["port"])}):
        c = reqs.check_one(req, required)
        if c.ok:
            rows.append(Check(c.tool, "ok", " ".join(x for x in (c.found, c.version) if x)))
        else:
            rows.append(Check(c.tool, "ERROR", c.found or f"{c.tool} not found", c.fix))
    return rows


def preflight(params: dict[str, Any], probe: Callable[[], Any] = probe_kvm) -> Plan:
    checks: list[Check] = _registry_checks(params)
    art = resolve_artifacts(params)
    path = None
    if not art.is_dir():
        checks.append(Check("artifacts", "FAIL", f"{art} does not exist",
                            "build them first: run step 2 (notebooks/02_build_ipxe_image.ipynb)"))
    else:
        path, rows = artifact_set.plan_path(artifact_set.detect(art), params["firmware"], params["network"],
                                            params.get("uki_cmdline", "auto"),
                                            bool(params.get("dhcp_machine_uuid", True)))
        checks += rows
    if params["network"] == "testnet":
        checks += _testnet_checks(params, art)
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
    if params["network"] == "bridge":
        up = Path("/sys/class/net/carbide0").exists()
        checks.append(Check("bridge carbide0", "ok" if up else "ERROR",
                            "present" if up else "no interface carbide0",
                            "" if up else "start the carbide dev environment (docker-compose / KIND) first"))
    plan = Plan(params, art, accel, checks, boot_path=path)
    levels = {c.status for c in checks}
    plan.status = Status.ERROR if "ERROR" in levels else Status.FAIL if "FAIL" in levels else Status.PASS
    return plan


def _testnet_config(params: Mapping[str, Any], art: Path, log_dir: Path) -> tn.TestNetConfig:
    uuid = params.get("uuid") or vmq.default_uuid(params["mac"])
    return tn.TestNetConfig(artifacts=art, log_dir=log_dir, arch=params.get("arch", "x86_64"),
                            port=params["port"],
                            machine_uuid=uuid if params.get("dhcp_machine_uuid", True) else None,
                            uefi_boot=params.get("uefi_boot", "pxe"))


def _testnet_checks(params: Mapping[str, Any], art: Path) -> list[Check]:
    """The testnet's pre-flight rows: privileges, then what the run will set up."""
    rows = []
    prob = tn.privileges_problem()
    if prob is not None:
        rows.append(Check("testnet privileges", "ERROR", prob[0], prob[1]))
    desc = tn.TestNet(_testnet_config(params, art, Path("/nonexistent"))).describe()
    for name, detail in desc:
        rows.append(Check(f"testnet: {name}", "ok", detail))
    known = params.get("standin_uuid") or params.get("uuid") or vmq.default_uuid(params["mac"])
    rows.append(Check("testnet: stand-in knows", "ok" if not params.get("standin_uuid") else "warn",
                      f"machine uuid {known}" + ("" if not params.get("standin_uuid") else
                                                 " (not the VM's: /api/v0/pxe/boot answers, as carbide-pxe does for an "
                                                 "unknown machine, a script that exits 101)")))
    return rows


def preflight_result(plan: Plan) -> StepResult:
    import pandas as pd

    prob = plan.first_problem()
    table = pd.DataFrame([c.__dict__ for c in plan.checks])
    summary = ("ready to boot" if prob is None else "cannot boot")
    return StepResult(f"{STEP}: pre-flight", plan.status, summary,
                      cause=f"{prob.check}: {prob.detail}" if prob else None,
                      fix=prob.fix if prob else None,
                      details={"artifacts": str(plan.artifacts), "accel": plan.accel,
                               "boot_path": plan.boot_path.to_dict() if plan.boot_path else None},
                      tables={"preflight": table})


def _event_note(ev: Milestone | Failure) -> None:
    t = f"{ev.seconds:7.1f}s" if ev.seconds is not None else "       "
    if isinstance(ev, Milestone):
        note(f"{t}  milestone  {ev.label}")
    else:
        label = {"fatal": "FATAL", "error": "error", "survived": "warning", "benign": "note"}.get(
            ev.severity, ev.severity)
        note(f"{t}  {label:<9}  {ev.kind}: {ev.text[:120]}")


def boot(plan: Plan, log_dir: Path, *, script: BootScript | None = None,
         on_event: Callable[[Milestone | Failure], None] | None = _event_note,
         skip_checks: bool = False, serve: bool = True,
         before_vm: Callable[["tn.TestNet | None"], None] | None = None,
         served: ServedCheck | None = None, served_dir: Path | None = None) -> BootRun:
    """Boot once. A plan with ERROR/FAIL checks is not booted (unless `skip_checks`).

    `serve=False` boots without the stand-in (to show what a stopped carbide-pxe looks like);
    `before_vm` runs after the network and the stand-in are up, just before QEMU starts (tests
    use it to stop the testnet's DHCP server and show what a silent carbide-dhcp looks like).
    `served(url, netns)` runs once the network and the stand-in are up, before anything else:
    the stand-in's URL (None in bridge mode: the real carbide-pxe) and the namespace it listens
    in; a result that is not PASS stops the run there, before the VM (:func:`served_part`).
    `served_dir` is what the stand-in serves (default: the artifacts booted); another directory
    plays a carbide-pxe that still serves an older build.
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
    if serve and p["network"] in ("user", "testnet"):
        logs["http requests"] = str(run_dir / "requests.jsonl")
    if p["network"] == "testnet":
        logs["dhcp (dnsmasq)"] = str(run_dir / "dnsmasq.log")
    for name in ("serial.log", "qemu.log", "requests.jsonl", "swtpm.log", "dnsmasq.log"):
        (run_dir / name).unlink(missing_ok=True)
    uuid = p.get("uuid") or vmq.default_uuid(p["mac"])
    path = plan.boot_path
    bs = script or BootScript(arch=p.get("arch", "x86_64"))
    if script is None and path is not None:
        bs.uki = path.uki or bs.uki
        bs.cmdline = path.cmdline if p["firmware"] == "uefi" else path.cmdline or bs.cmdline
        bs.kernel, bs.initrd = path.kernel or bs.kernel, path.initrd or bs.initrd
    notes: list[str] = list(path.notes) if path is not None else []
    if plan.accel == "tcg" and p["accel"] != "tcg":
        notes.insert(0, "KVM is not usable here; the VM runs under TCG (software emulation)")
    cfg = vmq.VmConfig(serial_path=serial_raw, firmware=p["firmware"], network=p["network"],
                       accel=plan.accel, tcg_thread=p.get("tcg_thread", "multi"),
                       memory_mb=p["memory_mb"], cpus=p["cpus"], mac=p["mac"],
                       uuid=uuid, extra_args=p.get("extra_args", ""),
                       # BIOS always boots through the NIC's ROM (the PXE stage); UEFI only when
                       # the boot path hands it the boot script (ipxe.efi needs 43.70 under user)
                       nic_rom=True if path is not None and path.nic_rom else None)
    net: tn.TestNet | None = None
    host = "127.0.0.1"
    if p["network"] == "bridge":
        serve = False  # the real carbide-pxe answers on the bridge; never shadow its port
        notes.append("bridge: carbide's own DHCP and carbide-pxe serve the boot; the stand-in "
                     "was not started")
        cfg.bootfile = ""
    elif p["network"] == "testnet":
        net = tn.TestNet(_testnet_config(p, plan.artifacts, run_dir))
        host, cfg.bootfile, cfg.tftp_dir = net.cfg.bridge_ip, "", None
    elif p["firmware"] == "uefi" and not cfg.nic_rom:
        cfg.tftp_dir, cfg.bootfile = tftp_root(plan.artifacts, p["port"], run_dir, notes), "ipxe.efi"
    else:
        cfg.bootfile = vmq.boot_url(p["port"], uuid, p.get("arch", "x86_64"))
    known = None
    if net is not None:
        known = frozenset({(p.get("standin_uuid") or uuid).lower()})
    standin = StandIn(served_dir or plan.artifacts, bs, host=host, port=p["port"], log_path=run_dir / "requests.jsonl",
                      netns=net.name if net is not None else None, known_uuids=known)
    swtpm: shell.Proc | None = None
    vm: shell.Proc | None = None
    run = BootRun(Status.ERROR, "", None, None, logs=logs, notes=notes)
    try:
        if p["firmware"] == "uefi":
            cfg.ovmf_vars = vmq.copy_vars(run_dir / "OVMF_VARS_4M.fd")
        if net is not None:
            run.testnet = net.describe()
            try:
                net.start()
            except (tn.TestNetError, shell.ShellError) as exc:
                run.summary = "not booted: the test network did not start"
                run.cause = str(exc)
                run.fix = getattr(exc, "fix", "") or "see the dnsmasq log and the command above"
                return run
            note(f"testnet: namespace {net.name}, {net.cfg.bridge_ip} on {tn.BRIDGE}, dnsmasq up")
        try:
            if serve:
                standin.start()
        except PortBusy as exc:
            run.summary, run.cause = "not booted", f"port {exc.port} is busy: {exc}"
            run.fix = (f"stop whatever listens on port {exc.port} (ss -ltnp 'sport = :{exc.port}') "
                       "or set port to a free one")
            return run
        if served is not None:
            part = served(standin.url if serve else None, net.name if net is not None else None)
            if part.status is not Status.PASS:
                run.status, run.summary = part.status, f"not booted: {part.summary}"
                run.cause, run.fix = part.cause, part.fix
                return run
            note(f"served: {part.summary}")
        if p["tpm"]:
            logs["swtpm"] = str(run_dir / "swtpm.log")
            try:
                swtpm, cfg.tpm_socket = vmq.start_swtpm(run_dir / "tpm", run_dir / "swtpm.log")
            except (shell.CommandNotFound, RuntimeError) as exc:
                run.summary, run.cause = "not booted: the software TPM did not start", str(exc)
                run.fix = "sudo apt-get install swtpm swtpm-tools, or set tpm = False"
                return run
        if before_vm is not None:
            before_vm(net)
        for attempt in (1, 2):
            argv = vmq.build_argv(cfg)
            if net is not None:
                argv = net.exec_argv(argv)
            run.command = shell.quote(argv)
            note(f"qemu: {run.command}")
            t0 = time.monotonic()
            standin.reset_clock(t0)
            if net is not None:
                net.reset_clock(t0)
            try:
                vm = shell.spawn(argv, log_path=run_dir / "qemu.log")
            except shell.CommandNotFound as exc:
                run.summary, run.cause = "not booted", str(exc)
                run.fix = "sudo apt-get install qemu-system-x86"
                return run
            outcome = watch(serial_raw, run_dir / "serial.log", t0=t0, timeout_s=p["boot_timeout_s"],
                            is_running=vm.running, success_pattern=p["success_pattern"],
                            on_event=on_event)
            run.analysis = outcome.analysis
            run.timing = {"boot_s": round(outcome.duration_s, 2),
                          "login_prompt_s": None if outcome.success_at is None
                          else round(outcome.success_at, 2),
                          "prompt_to_verdict_s": None if outcome.success_at is None
                          else round(outcome.verdict_at - outcome.success_at, 4)}
            ff = outcome.analysis.first_failure
            if outcome.ended != "stalled" or attempt == 2 or ff is None:
                break
            # An infrastructure event, not a verdict on the image: the emulator hung the guest.
            vm.stop(grace=2.0)
            kept = run_dir / "serial-stalled.log"
            (run_dir / "serial.log").replace(kept)
            serial_raw.unlink(missing_ok=True)
            if cfg.ovmf_vars is not None:
                cfg.ovmf_vars = vmq.copy_vars(cfg.ovmf_vars)
            logs["serial console (stalled attempt)"] = str(kept)
            run.infra_events.append({"event": "vm_stalled_retried", "kind": ff.kind, "line": ff.line,
                                     "text": ff.text, "after_s": round(outcome.duration_s, 2),
                                     "accel": plan.accel, "log": str(kept)})
            event = (f"infrastructure: the VM stalled ({ff.kind} at serial line {ff.line}: {ff.text[:100]}) "
                     f"after {outcome.duration_s:.0f}s under {plan.accel}; it was stopped and booted again "
                     "once (not a failure of the image)")
            notes.append(event)
            note(event)
    finally:
        if vm is not None:
            vm.stop(grace=2.0)
        if swtpm is not None:
            swtpm.stop(grace=2.0)
        standin.stop()
        run.requests = list(standin.requests)
        if net is not None:
            run.dhcp = net.dhcp_events()
            net.stop()
            run.leftovers += net.leftovers
        run.leftovers += _leftovers([pr for pr in (vm, swtpm) if pr is not None])
    run = _verdict(run, vm)
    if path is not None and path.exercised and run.analysis is not None:
        run.notes.append(f"exercised: {', '.join(path.exercised)}")
    if net is not None:
        evidence = dhcp_evidence(run)
        # a failed boot's summary shows its first note: there, what the DHCP log says comes first
        run.notes = evidence + run.notes if run.status is not Status.PASS else run.notes + evidence
    return run


def served_wanted(params: Mapping[str, Any]) -> bool:
    """check_served: yes, no, or auto (= in bridge mode, against the real carbide-pxe)."""
    mode = params.get("check_served", "auto")
    return mode == "yes" or (mode == "auto" and params["network"] == "bridge")


FIND_PXE_URL = ("find it with `docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "
                "<carbide-pxe container>` and its port (PXE_BIND_PORT, 8080 by default; carbide's compose "
                "gives carbide-pxe 172.20.0.15 on carbide0), or on KIND `kubectl get svc -A | grep carbide-pxe`; "
                "then set pxe_url = 'http://ADDRESS:PORT'")


def served_part(params: Mapping[str, Any], artifacts: Path, url: str | None, netns: str | None,
                log_dir: Path | None = None) -> StepResult:
    """The "served" part: detect the local carbide-pxe (bridge), bounce it when asked, then
    compare what it serves with the local build (:func:`~runbook_lib.boot.served.compare_served`).

    Outside bridge mode `url` is the run's own stand-in (inside `netns` on the testnet).
    """
    title = f"{STEP}: served"
    arch = params.get("arch", "x86_64")
    details: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    fix: str | None = None
    wait_s = 0.0
    bounced = ""
    if params["network"] == "bridge":
        det = bouncer.detect(artifacts)
        details["detected"] = {"targets": [t.to_dict() for t in det.targets], "looked_for": det.looked_for}
        tables["carbide-pxe found"] = det.table()
        target = det.target
        note(f"served: carbide-pxe: {det.describe()}")
        if target is not None:
            fix = f"{target.command_text()} (or re-run with bounce = true)"
            details["bounce_command"] = target.command_text()
        if params.get("bounce"):
            b = bouncer.bounce(target, run=True, step=title,
                               log_path=(log_dir / "boot" / "bounce.log") if log_dir else None)
            details["bounce"] = b.to_dict()
            if b.status is not Status.PASS:
                return StepResult(title, b.status, b.summary, b.cause, b.fix, details, tables, b.logs)
            bounced = b.summary
            note(f"served: {b.summary}")
            wait_s = SERVED_WAIT_AFTER_BOUNCE_S
            if target is not None and target.rebuild:
                fix = f"the rebuild did not help: check which static directory {target.name} serves"
            elif target is not None:
                fix = ("still stale after the restart: the artifacts may be baked into its image; "
                       f"rebuild it ({target.command_text()} with --build / kind load) or check its static directory")
        url = params.get("pxe_url") or (target.url if target is not None else None)
        if not url:
            return StepResult(title, Status.ERROR, "no carbide-pxe to compare with: none was detected "
                              "and pxe_url is empty", cause=det.describe(),
                              fix="start the carbide dev environment (docker-compose up / KIND) or " + FIND_PXE_URL,
                              details=details, tables=tables)
    elif url is None:
        return StepResult(title, Status.PASS, "not checked: this run started no carbide-pxe stand-in",
                          details=details)
    elif params.get("bounce"):
        details["bounce"] = "ignored: only bridge mode has a carbide install to bounce"
    rep = compare_served(url, arch, artifacts, netns=netns, wait_s=wait_s, fix=fix,
                         find_url_hint=FIND_PXE_URL if params["network"] == "bridge" else "")
    res = rep.to_result(title, details)
    res.tables.update(tables)
    if bounced and res.status is Status.PASS:
        res.summary = f"{res.summary} (after {bounced})"
    return res


def dhcp_evidence(run: BootRun) -> list[str]:
    """What the testnet's DHCP log says about the verdict, in a sentence or two."""
    an = run.analysis
    ff = an.first_failure if an is not None else None
    acks = [e for e in run.dhcp if e.kind == "DHCPACK"]
    offers = [e for e in run.dhcp if e.kind == "DHCPOFFER"]
    out = []
    if not offers and not acks:
        out.append("the testnet's DHCP server (dnsmasq) offered nothing during the boot: the network "
                   "did not answer, which is not a fault of the image" if run.dhcp or ff is None or
                   ff.kind == "no_dhcp_offer" else "the DHCP log is empty")
        return out
    ipxe_acks = [e for e in acks if "ipxe" in e.user_class.lower()]
    if ipxe_acks:
        last = ipxe_acks[-1]
        when = f" at {last.seconds:.1f}s" if last.seconds is not None else ""
        if last.opt43_70:
            out.append(f"DHCP ACK to the iPXE client{when} carried option 43.70 = {last.opt43_70}")
        else:
            out.append(f"DHCP ACK to the iPXE client{when} carried no option 43.70 "
                       "(dhcp_machine_uuid = False): carbide's chain cannot fire")
    boot_requests = [r for r in run.requests if r.path.startswith("/api/v0/pxe/boot")]
    if ipxe_acks and not boot_requests:
        out.append("no request reached /api/v0/pxe/boot")
    elif boot_requests and (boot_requests[-1].status == 404 or getattr(boot_requests[-1], "note", None)):
        last = boot_requests[-1]
        out.append(f"/api/v0/pxe/boot ({len(boot_requests)} request(s)) answered "
                   + (f"{last.status}: {last.note}" if getattr(last, "note", None) else "404")
                   + ": the stand-in does not know that machine uuid")
    return out


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
                       f"({len(an.milestones)} milestones")
        if an.warnings:
            kinds = sorted({w.kind for w in an.warnings})
            run.summary += f"; {len(an.warnings)} warning(s): {', '.join(kinds[:5])}"
        run.summary += ")"
    else:
        run.status = Status.FAIL
        run.summary = f"no login prompt; last milestone: {an.last_milestone or 'none'}"
        if ff:
            run.cause = f"{ff.kind} at serial line {ff.line}: {ff.text}"
            run.fix = ff.hint
    return run


def result(run: BootRun) -> StepResult:
    details: dict[str, Any] = {"qemu_command": run.command, "notes": run.notes,
                               "timing": run.timing, "leftover_processes": run.leftovers,
                               "infrastructure_events": run.infra_events}
    if run.testnet:
        details["testnet"] = dict(run.testnet)
        details["dhcp_events"] = [e.__dict__ for e in run.dhcp[:200]]
    tables: dict[str, Any] = {}
    if run.analysis is not None:
        details["analysis"] = run.analysis.to_dict()
        tables["timeline"] = view.timeline_table(run)
    tables["requests"] = view.requests_table(run.requests)
    if run.testnet:
        tables["dhcp"] = view.dhcp_table(run.dhcp)
    summary = run.summary + ("".join(f"; {n}" for n in run.notes[:1]))
    return StepResult(f"{STEP}: run", run.status, summary, run.cause, run.fix, details, tables, run.logs)


class BootStep(Step):
    """Step 3 in the step protocol: preflight(), run(), sections(), result()."""

    number, name, spec = 3, "boot", STEP3
    registry_step = reqs.BOOT
    SECTIONS = ("served", "command", "timeline", "chart", "excerpts", "requests", "dhcp",
                "compared with last good")

    def __init__(self, params: Mapping[str, Any] | Any, log_dir: str | Path | None = None,
                 script: BootScript | None = None, standin_dir: str | Path | None = None) -> None:
        """`standin_dir`: what the stand-in serves (default: the artifacts booted); another
        directory plays a carbide-pxe that still serves an older build."""
        super().__init__(params, log_dir)
        self.script = script
        self.standin_dir = Path(standin_dir) if standin_dir is not None else None
        self.plan: Plan | None = None
        self.run_: BootRun | None = None
        self.comparison: RunComparison | None = None  # with the last good run (after run())

    def needs(self) -> reqs.Needs:
        return needs(self.params)

    def requirement_targets(self) -> dict[str, str]:
        return {"stand-in port": str(self.params["port"])}

    def _preflight(self) -> StepResult:
        self.plan = preflight(self.params)
        return preflight_result(self.plan)

    def run(self) -> StepResult:
        started = history.now()
        if self.plan is None:
            self.preflight()
        assert self.plan is not None
        plan = self.plan

        def served(url: str | None, netns: str | None) -> StepResult:
            return self.keep("served", served_part(self.params, plan.artifacts, url, netns, self.log_dir))

        self.run_ = boot(plan, self.log_dir, script=self.script, served_dir=self.standin_dir,
                         served=served if served_wanted(self.params) else None)
        res = self.keep("run", result(self.run_))
        self._history(started)
        _save_json(res, self.log_dir / "boot" / "result.json")
        return res

    def _history(self, started: str) -> None:
        """Record the run and compare it with the last good one: a section and one note; never
        a change of the verdict (a failure to record is the note)."""
        out = history_hooks.after_boot(self, started)
        self.comparison = out.comparison
        history_hooks.attach(self.parts["run"], out)
        line = out.comparison.sentence if out.comparison is not None else out.note
        if line and self.run_ is not None:
            self.run_.notes.append(line)  # the run part's details["notes"] is this list
        if out.comparison is not None:
            note(f"history: {line}")

    def _need_run(self) -> BootRun:
        if self.run_ is None:
            raise RuntimeError("run() first")
        return self.run_

    def sections(self) -> list[Any]:
        return [self.section(name) for name in self.SECTIONS]

    def section(self, name: str) -> Any:
        views = {"command": lambda r: view.command_html(r), "timeline": view.timeline_table,
                 "chart": view.timeline_chart, "excerpts": view.excerpts,
                 "requests": lambda r: view.requests_table(r.requests),
                 "dhcp": view.dhcp_section}
        if name == "compared with last good":
            self._need_run()
            if self.comparison is not None:
                return self.comparison.to_result(STEP)
            why = self.parts["run"].details.get("history", {}).get("note") or "no record was written"
            return view.HTML(f"<p>Not compared with the last good run: {html.escape(why)}.</p>")
        if name == "served":
            return self.parts.get("served") or view.HTML(
                "<p>Not checked: check_served = " + str(self.params.get("check_served"))
                + " (auto compares what carbide-pxe serves with the local build in bridge mode only).</p>")
        if name in views:
            return views[name](self._need_run())
        return super().section(name)

    def result(self) -> StepResult:
        return combine(STEP, self.parts.values())

    def checklist(self) -> "Outcome":
        """The verdict and the milestones reached, in order: stable across hosts (nbval)."""
        return Outcome(self._need_run())


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

