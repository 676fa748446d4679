"""Step 1: detect (and optionally install) the toolchain of the iPXE image workflow.

The documented step is `sudo apt install mkosi debootstrap`; steps 2 and 3 need
more (systemd-boot's EFI stub, objcopy, QEMU, OVMF, swtpm, ...). Each check is a
:class:`Check` row: what it is, which step needs it, whether it is required for
the chosen mode, what was found (path, version) and the exact fix. Missing
Debian packages are installed in one apt transaction, elevated only when not root.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from . import shell
from .params import STEP1
from .result import Status, StepResult
from .step import Step

from .requirements import (MKOSI_MIN, TOOLS, Check, Needs, Requirement, ToolSpec, apt_fix,  # noqa: F401
                           check_bridge_conf, check_deb_src, check_one, dpkg_version, for_step,
                           is_required, parse_version, version_tuple)
from .requirements import REGISTRY
from .system_paths import OS_RELEASE

APT_TIMEOUT_S = 1800.0
STEP = "step 1: tools"
RUN_PART = STEP + ": run"


def _spec_list() -> list[Requirement]:
    return list(REGISTRY)


def check_disk(workdir: Path, min_free_gb: float) -> Check:
    probe = workdir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 1e9
    status = "ok" if free_gb >= min_free_gb else "unusable"
    return Check("free disk", "step 2: build", True, status, found=str(workdir),
                 version=f"{free_gb:.1f} GB free (need {min_free_gb:g})",
                 fix="" if status == "ok" else f"free space under {probe} or set workdir elsewhere")


@dataclass
class Platform:
    distro: str
    version: str
    apt: bool

    @staticmethod
    def detect(os_release: Path = OS_RELEASE) -> "Platform":
        info: dict[str, str] = {}
        if os_release.exists():
            for ln in os_release.read_text().splitlines():
                if "=" in ln:
                    k, v = ln.split("=", 1)
                    info[k] = v.strip().strip('"')
        return Platform(info.get("ID", "unknown"), info.get("VERSION_ID", ""),
                        shutil.which("apt-get") is not None)

    def check(self) -> Check:
        name = f"{self.distro} {self.version}".strip()
        if self.apt:
            return Check("distro / package manager", "all steps", True, "ok",
                         found=f"{name}, apt-get", version="")
        return Check("distro / package manager", "all steps", True, "unusable",
                     found=f"{name}, no apt-get",
                     fix=MANUAL_INSTALL)


MANUAL_INSTALL = ("not a Debian/Ubuntu host: install by hand with your package manager: mkosi (>= 14), "
                  "debootstrap, systemd-boot EFI stub, binutils, zstd, cpio, qemu-system-x86_64, "
                  "OVMF, swtpm; then re-run this step")


@dataclass
class ToolReport:
    checks: list[Check]
    mode: str
    platform: Platform
    tree: Any = None  # build.checkout.TreeReport when a carbide checkout was given

    def frame(self) -> Any:
        import pandas as pd
        return pd.DataFrame([c.to_row() for c in self.checks])

    @property
    def missing_required(self) -> list[Check]:
        return [c for c in self.checks if c.required and c.status != "ok"]

    def installable_packages(self, selected: Iterable[str] | None = None) -> list[str]:
        """Missing Debian packages: the registry's, and those the tree's build needs (required rows
        whose package this machine's apt sources can install)."""
        pkgs = [c.package for c in self.checks if c.installable and c.package]
        if self.tree is not None:
            pkgs += [c.package for c in self.tree.checks
                     if c.required and c.installable and c.package and "no install candidate" not in c.fix]
        chosen = set(selected) if selected is not None else None
        out: list[str] = []
        for p in pkgs:
            if p not in out and (chosen is None or p in chosen):
                out.append(p)
        return out


def check_tools(mode: str = "sandbox", want_bridge: bool = False, want_tpm: bool = True,
                workdir: Path | None = None, min_free_gb: float = 5.0,
                platform: Platform | None = None, tree: str = "", tasks: list[str] | None = None,
                arch: str = "x86_64") -> ToolReport:
    """The registry's rows; with `tree` (a carbide checkout) also the tree's own checks, run
    concurrently with them (build.checkout.check_tree)."""
    from concurrent.futures import ThreadPoolExecutor

    plat = platform or Platform.detect()
    if tree:
        mode = "carbide"
    checks = [plat.check()]
    needs = Needs(mode=mode, bridge=want_bridge, tpm=want_tpm)
    tree_report = None
    with ThreadPoolExecutor(max_workers=4) as pool:
        f_tree = None
        if tree:
            from .build.checkout import check_tree
            f_tree = pool.submit(check_tree, tree, tasks or None, arch)
        rows = list(pool.map(lambda sr: check_one(*sr), for_step(TOOLS, needs)))
        if f_tree is not None:
            tree_report = f_tree.result()
    checks += rows
    if tree_report is not None and tree_report.mkosi_pinned:
        checks = [_not_used_by_tree(c, tree_report.mkosi_pinned) for c in checks]
    from .paths import sandbox_workdir
    checks.append(check_disk(workdir or sandbox_workdir(), min_free_gb))
    return ToolReport(checks, mode, plat, tree_report)


def _not_used_by_tree(c: Check, pinned: str) -> Check:
    """The distribution's mkosi (and debootstrap, which only mkosi <= 14 uses) are not what a tree
    that pins its own mkosi runs: shown, not required."""
    if c.tool not in ("mkosi", "debootstrap"):
        return c
    from dataclasses import replace
    note = f"not used by this tree: its build runs {pinned}"
    return replace(c, required=False, found=f"{c.found}; {note}" if c.found else note)


@dataclass
class InstallOutcome:
    packages: list[str]
    status: Status
    command: str
    message: str
    failed_package: str | None = None
    apt_message: str = ""
    log_path: str | None = None
    ran: bool = False


_APT_ERR = re.compile(r"^E:\s*(.*)$")
_APT_PKG = re.compile(r"(?:Unable to locate package|Package '?|package '?)([a-z0-9][a-z0-9+.-]+)")


def parse_apt_error(lines: Iterable[str]) -> tuple[str, str | None]:
    """apt's own first error message and the package it names, if any."""
    first = ""
    for ln in lines:
        m = _APT_ERR.match(ln.strip())
        if m:
            first = m.group(1)
            break
    pkg = None
    if first:
        m = _APT_PKG.search(first)
        pkg = m.group(1) if m else None
    return first, pkg


def install_packages(packages: list[str], *, log_path: Path | None = None, dry_run: bool = False,
                     on_line: Callable[[str], None] | None = None,
                     platform: Platform | None = None) -> InstallOutcome:
    """One apt transaction for all `packages`; refreshes the lists once if a package is unknown."""
    plat = platform or Platform.detect()
    if not packages:
        return InstallOutcome([], Status.PASS, "", "nothing to install")
    if not plat.apt:
        return InstallOutcome(packages, Status.ERROR, "", MANUAL_INSTALL)
    argv = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
            "--no-install-recommends", *packages]
    try:
        full = shell.build_argv(argv, elevate=True)
    except shell.ElevationUnavailable as exc:
        return InstallOutcome(packages, Status.ERROR, shell.quote(argv), str(exc))
    cmd = shell.quote(full)
    if dry_run:
        if on_line:
            on_line(f"[dry-run] would run: {cmd}")
        return InstallOutcome(packages, Status.PASS, cmd, "dry run: nothing installed")
    res = shell.run(argv, elevate=True, timeout=APT_TIMEOUT_S, log_path=log_path, on_line=on_line)
    msg, pkg = parse_apt_error(res.tail)
    if not res.ok and "Unable to locate package" in msg:
        upd = shell.run(["apt-get", "update", "-q"], elevate=True, timeout=600, log_path=log_path,
                        on_line=on_line)
        if upd.ok:
            res = shell.run(argv, elevate=True, timeout=APT_TIMEOUT_S, log_path=log_path,
                            on_line=on_line)
            msg, pkg = parse_apt_error(res.tail)
    lp = str(log_path) if log_path else None
    if res.ok:
        return InstallOutcome(packages, Status.PASS, cmd, f"installed {', '.join(packages)}",
                              log_path=lp, ran=True)
    if res.timed_out:
        return InstallOutcome(packages, Status.ERROR, cmd, f"apt-get timed out after {APT_TIMEOUT_S:.0f}s",
                              log_path=lp, ran=True)
    if "Could not get lock" in msg or "is another process using it" in msg:
        return InstallOutcome(packages, Status.ERROR, cmd, f"apt is busy: {msg}", apt_message=msg,
                              log_path=lp, ran=True)
    return InstallOutcome(packages, Status.FAIL, cmd,
                          f"apt-get failed{' on package ' + pkg if pkg else ''}: {msg or 'exit code ' + str(res.returncode)}",
                          failed_package=pkg, apt_message=msg, log_path=lp, ran=True)


@dataclass
class Step1Result(StepResult):
    """Tables: `tools` (the latest check) and, after an install, `tools before install`."""

    report: "ToolReport | None" = None  # the latest check, for the install panel


def summarize(report: ToolReport, install: InstallOutcome | None = None,
              before: ToolReport | None = None) -> Step1Result:
    result = _summarize(report, install, before)
    result.report = report
    return result


def _summarize(report: ToolReport, install: InstallOutcome | None = None,
               before: ToolReport | None = None) -> Step1Result:
    df = report.frame()
    missing = report.missing_required
    total_req = sum(1 for c in report.checks if c.required)
    kvm = next((c for c in report.checks if c.tool == "KVM"), None)
    accel_note = ""
    if kvm is not None:
        accel_note = "; KVM usable" if kvm.status == "ok" else "; KVM unusable, boots will use TCG"
    tables = {"tools before install": before.frame()} if before is not None else {}
    tables["tools"] = df
    common: dict[str, Any] = dict(tables=tables)
    if install and install.log_path:
        common["logs"] = {"apt": install.log_path}
    if install and install.status != Status.PASS:
        common.setdefault("details", {})["install_command"] = install.command
        return Step1Result(RUN_PART, install.status, install.message,
                           cause=install.apt_message or install.message,
                           fix=(f"check the package name and the apt sources, then run: {install.command}"
                                if install.status == Status.FAIL else
                                "fix the environment as stated, then re-run this step"),
                           **common)
    if not report.platform.apt and missing:
        return Step1Result(RUN_PART, Status.ERROR, "no apt-get on this host",
                           cause=f"{report.platform.distro}: not a Debian/Ubuntu host",
                           fix=MANUAL_INSTALL, **common)
    if missing:
        first = missing[0]
        pkgs = report.installable_packages()
        fix = first.fix
        if len(missing) > 1 and pkgs:
            fix = (f"{apt_fix(' '.join(pkgs))}   "
                   f"(or: runbook run 01_install_build_tools -p install_missing true)")
        return Step1Result(RUN_PART, Status.ERROR,
                           f"{len(missing)} of {total_req} required tools not usable: "
                           + ", ".join(c.tool for c in missing),
                           cause=f"{first.tool}: {first.status} ({first.found or 'not found'})",
                           fix=fix,
                           **common)
    installed = f"; installed {', '.join(install.packages)}" if install and install.ran else ""
    if install and not install.ran and install.command:
        installed = f"; dry run, would run: {install.command}"
    common.setdefault("details", {})["install_command"] = install.command if install else ""
    return Step1Result(RUN_PART, Status.PASS,
                       f"all {total_req} required tools ok for mode {report.mode}{installed}{accel_note}",
                       **common)


TREE_PART = STEP + ": your tree"


def tree_result(tree: Any) -> StepResult:
    """The checkout's own part of step 1 (build.checkout.TreeReport): PASS when step 2 can build
    it, FAIL naming the problems and their fixes (one `git submodule update --init` for all)."""
    import pandas as pd

    tables = {"your tree": tree.frame()}
    if tree.submodules:
        tables["submodules"] = tree.submodule_frame()
    if tree.tools:
        tables["programs the plan calls"] = pd.DataFrame(
            [{"program": n.word, "tasks": ", ".join(n.tasks[:3]) + (" ..." if len(n.tasks) > 3 else ""),
              "required": "yes" if n.required else "no", "condition": n.condition}
             for n in tree.tools], columns=["program", "tasks", "required", "condition"])
    g = tree.git
    facts = {"checkout": str(tree.root),
             "commit": (f"{g.commit[:12]} on {g.branch or '(detached)'}"
                        f"{', ' + str(len(g.dirty)) + ' modified file(s)' if g.dirty else ', clean'}"
                        if g is not None and g.is_repo else "not a git checkout"),
             "git describe": g.describe if g is not None else "",
             "mkosi the build runs": tree.mkosi or "none (the plan calls no mkosi)",
             "plan": (f"{len(tree.plan.steps)} step(s) for {' && '.join(tree.tasks)}"
                      if tree.plan is not None else "none")}
    tables = {"tree": pd.DataFrame([{"fact": k, "value": v} for k, v in facts.items()],
                                   columns=["fact", "value"]), **tables}
    common: dict[str, Any] = dict(tables=tables, details={"tree": tree.to_dict()})
    if not tree.ready:
        return StepResult(TREE_PART, Status.FAIL,
                          f"{tree.root} is not ready for step 2: {len(tree.unmet)} problem(s): {tree.problems()}",
                          cause=tree.cause(), fix=tree.fix(), **common)
    return StepResult(TREE_PART, Status.PASS, tree.summary(), **common)


def run_step1(mode: str = "sandbox", install_missing: bool = False, dry_run: bool = False,
              want_bridge: bool = False, want_tpm: bool = True, workdir: str = "",
              min_free_gb: float = 5.0, log_dir: Path | None = None,
              on_line: Callable[[str], None] | None = None,
              platform: Platform | None = None, carbide_root_dir: str = "", task: str = "",
              arch: str = "x86_64") -> Step1Result:
    """Check, optionally install what is missing in one apt transaction, re-check.

    With `carbide_root_dir` the checkout step 2 will build is checked too (mode carbide)."""
    from .build.target import split_tasks
    from .paths import sandbox_workdir
    wd = sandbox_workdir(workdir or None)
    tasks = split_tasks(task) or None
    report = check_tools(mode, want_bridge, want_tpm, wd, min_free_gb, platform, tree=carbide_root_dir,
                         tasks=tasks, arch=arch)
    if not (install_missing or dry_run):
        return summarize(report)
    pkgs = report.installable_packages()
    if not pkgs:
        return summarize(report, InstallOutcome([], Status.PASS, "", "nothing to install"))
    log = (log_dir / "apt-install.log") if log_dir else None
    outcome = install_packages(pkgs, log_path=log, dry_run=dry_run, on_line=on_line,
                               platform=report.platform)
    if outcome.status != Status.PASS or dry_run:
        return summarize(report, outcome)
    after = check_tools(mode, want_bridge, want_tpm, wd, min_free_gb, platform, tree=carbide_root_dir,
                        tasks=tasks, arch=arch)
    return summarize(after, outcome, before=report)


def all_packages() -> list[str]:
    """Every Debian package the embedded default can use (what scripts/setup.sh installs).

    Carbide-mode tools (git, cargo) are left out: developers bring their own Rust toolchain
    (rustup), and Debian's older cargo would shadow nothing but cost 300 MB.
    """
    out: list[str] = []
    for spec in _spec_list():
        if spec.requires == "carbide":
            continue
        if spec.package and spec.package not in out:
            out.append(spec.package)
    return out


def missing_packages(packages: Iterable[str]) -> list[str]:
    """Those of `packages` that dpkg does not report as installed."""
    out = []
    for pkg in packages:
        res = shell.capture(["dpkg-query", "-W", "-f=${Status}", pkg], timeout=15)
        if not (res.ok and res.tail and res.tail[0].endswith("install ok installed")):
            out.append(pkg)
    return out


class ToolsStep(Step):
    """Step 1 in the step protocol: pre-flight (the host can install packages), run (check the
    registry, install what is missing in one apt transaction, re-check), result."""

    number, name, spec = 1, "tools", STEP1
    registry_step = TOOLS

    def __init__(self, params: Any, log_dir: str | Path | None = None,
                 on_line: Callable[[str], None] | None = None, platform: Platform | None = None) -> None:
        super().__init__(params, log_dir)
        self.on_line = on_line
        self.platform = platform or Platform.detect()

    def needs(self) -> Needs:
        p = self.params
        mode = "carbide" if p.get("carbide_root_dir") else p["mode"]
        return Needs(mode=mode, bridge=p["want_bridge"], tpm=p["want_tpm"])

    def _preflight(self) -> StepResult:
        plat = self.platform
        row = plat.check()
        if not plat.apt and (self.params["install_missing"] or self.params["dry_run"]):
            return StepResult(self.part_title("pre-flight"), Status.ERROR, "cannot install here: no apt-get",
                              cause=row.found, fix=MANUAL_INSTALL)
        return StepResult(self.part_title("pre-flight"), Status.PASS, row.found)

    def run(self) -> StepResult:
        """The run part, then (with carbide_root_dir) the part "your tree"."""
        res = super().run()
        report = getattr(res, "report", None)
        if report is not None and report.tree is not None:
            self.keep("your tree", tree_result(report.tree))
        return res

    def tree(self) -> Any:
        """The checkout's part (commit, submodules, which mkosi, what the plan needs), or a note
        that none was given."""
        if "your tree" in self.parts:
            return self.parts["your tree"]
        from .report.render import Note
        return Note("No carbide checkout given (carbide_root_dir is empty): the embedded sandbox "
                    "needs none of this. Set carbide_root_dir to check the tree step 2 will build.")

    def _run(self) -> StepResult:
        p = self.params
        return run_step1(mode=p["mode"], install_missing=p["install_missing"], dry_run=p["dry_run"],
                         want_bridge=p["want_bridge"], want_tpm=p["want_tpm"], workdir=p["workdir"],
                         min_free_gb=p["min_free_gb"], log_dir=self.log_dir, on_line=self.on_line,
                         platform=self.platform, carbide_root_dir=p.get("carbide_root_dir", ""),
                         task=p.get("task", ""), arch=p.get("arch", "x86_64"))

    def checklist(self) -> Any:
        """The required tools and whether each is usable: the same on any host that has them
        (no paths, versions, users or KVM; those are in the run part's table)."""
        import pandas as pd

        run = self.parts.get("run")
        report = getattr(run, "report", None)
        rows = [{"tool": c.tool, "needed for": c.needed_for, "status": "ok" if c.ok else c.status}
                for c in (report.checks if report else []) if c.required]
        return pd.DataFrame(rows, columns=["tool", "needed for", "status"])
