"""Is this carbide checkout ready for the build step 2 will run? Checked from the tree itself.

One row per fact, as the registry's rows (:class:`runbook_lib.requirements.Check`), each with its
exact fix:

- the checkout: ``pxe/Makefile.toml`` and a Cargo workspace at the root; its git commit, whether
  it is dirty, whether it has tags (the Makefile's versions come from ``git describe --tags``);
- the Makefile's ``[env]`` scripts, run as cargo-make runs them before the first task
  (``cargo locate-project --workspace``, ``git describe``): a failing one is reported here, not
  twenty minutes into the build;
- the submodules ``.gitmodules`` declares, required when the plan uses their directory
  (``pxe/mkosi``, ``pxe/ipxe/upstream``), each initialised and at the recorded commit;
- which mkosi the build runs (the tree's pinned one or the distribution's) and what that mkosi
  needs (:mod:`runbook_lib.build.mkosi_tree`);
- every program the plan's tasks call (:mod:`runbook_lib.build.plan_tools`), optional when only a
  condition needs it; a ``make`` in the iPXE source implies the compiler and GNU ld;
- cargo-make against the Makefile's ``[config] min_version``; the Rust toolchain of
  ``rust-toolchain.toml`` when the plan builds Rust binaries (``{ name, path }`` dependencies).

Independent probes run concurrently (process spawns dominate the time).
"""

from __future__ import annotations

import os
import shutil
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .. import requirements as reqs
from .. import shell
from . import gitstate as gs
from . import makefile as mk
from . import plan_tools as pt

STEP2 = "step 2: build"
IPXE_HINTS = ("ipxe", "bin-x86_64-efi", "bin-arm64-efi", "EMBED=", ".kpxe")


@dataclass
class TreeReport:
    root: Path
    tasks: list[str]
    checks: list[reqs.Check] = field(default_factory=list)
    git: gs.GitState | None = None
    submodules: list[gs.Submodule] = field(default_factory=list)
    env: list[gs.EnvEntry] = field(default_factory=list)
    tools: list[pt.ToolNeed] = field(default_factory=list)
    plan: mk.Plan | None = None
    mkosi: str = ""  # which mkosi the build runs, one line
    mkosi_pinned: str = ""  # the tree's own mkosi executable, when the plan runs one
    error: str = ""  # the tree could not be read at all

    @property
    def unmet(self) -> list[reqs.Check]:
        return [c for c in self.checks if c.required and not c.ok]

    @property
    def ready(self) -> bool:
        return not self.error and not self.unmet

    def first_unmet(self) -> reqs.Check | None:
        return next(iter(self.unmet), None)

    def cause(self) -> str:
        """The first thing wrong, as a pre-flight cause."""
        first = self.first_unmet()
        if self.error:
            return self.error
        return f"{first.tool}: {first.status} ({first.found or 'not found'})" if first else ""

    def fix(self, limit: int = 4) -> str:
        """The fixes of the unmet rows, each once, in order; one `git submodule update --init` covers
        every submodule (the rows of what lives in them repeat it)."""
        out: list[str] = []
        for c in self.unmet:
            if not c.fix or c.fix in out:
                continue
            if "submodule update --init" in c.fix and any("submodule update --init" in f for f in out):
                continue
            out.append(c.fix)
        return "; then ".join(out[:limit]) or 'see the table "your tree"'

    def problems(self, limit: int = 6) -> str:
        bad = self.unmet
        return ", ".join(c.tool for c in bad[:limit]) + (" ..." if len(bad) > limit else "")

    def frame(self) -> Any:
        return reqs.frame(self.checks)

    def submodule_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"path": s.path, "state": s.state, "commit": s.commit[:12],
                              "recorded": s.recorded[:12], "describe": s.describe}
                             for s in self.submodules],
                            columns=["path", "state", "commit", "recorded", "describe"])

    def summary(self) -> str:
        if self.error:
            return self.error
        g = self.git
        head = (f"{g.commit[:12]}{' (dirty)' if g.dirty else ''}" if g and g.is_repo else "not a git checkout")
        state = "ready" if self.ready else f"{len(self.unmet)} problem(s)"
        return f"{self.root} at {head}: {state} for {' && '.join(self.tasks)}"

    def to_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "tasks": self.tasks, "ready": self.ready, "error": self.error,
                "mkosi": self.mkosi, "git": self.git.to_dict() if self.git else None,
                "submodules": [s.to_dict() for s in self.submodules],
                "env": [e.to_dict() for e in self.env if e.kind == "script"],
                "checks": [c.to_row() for c in self.checks],
                "tools": [{"program": n.word, "tasks": n.tasks, "required": n.required,
                           "condition": n.condition} for n in self.tools]}


def _row(tool: str, required: bool, status: str, found: str = "", version: str = "", fix: str = "",
         needed_for: str = STEP2, package: str | None = None) -> reqs.Check:
    return reqs.Check(tool, needed_for, required, status, found=found, version=version,
                      package=package, fix=fix)


# ---- the checkout ---------------------------------------------------------------------

def _identity(root: Path) -> tuple[reqs.Check, bool]:
    mf = root / "pxe" / "Makefile.toml"
    cargo = root / "Cargo.toml"
    fix = ("point carbide_root_dir at the top of a carbide clone (git clone --recurse-submodules "
           "<carbide repository>), the directory holding pxe/Makefile.toml and Cargo.toml")
    if not root.is_dir():
        return _row("carbide checkout", True, "missing", f"{root} does not exist", fix=fix), False
    if not mf.is_file():
        return _row("carbide checkout", True, "missing", f"{root}: no pxe/Makefile.toml", fix=fix), False
    workspace = False
    if cargo.is_file():
        try:
            workspace = "workspace" in tomllib.loads(cargo.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
            workspace = False
    if not workspace:
        return _row("carbide checkout", True, "unusable",
                    f"{root}: pxe/Makefile.toml found, but {'no [workspace] in ' if cargo.is_file() else 'no '}"
                    "Cargo.toml at the root (cargo locate-project --workspace will not find it)",
                    fix=fix), True
    return _row("carbide checkout", True, "ok", str(root), "pxe/Makefile.toml, Cargo workspace"), True


def _git_rows(g: gs.GitState) -> list[reqs.Check]:
    if not g.is_repo:
        return [_row("git checkout", False, "unusable", g.error or "not a git repository",
                     fix="clone carbide with git (git clone --recurse-submodules ...): the Makefile "
                         "derives versions from git describe and the build uses submodules")]
    dirty = f", {len(g.dirty)} modified file(s)" if g.dirty else ", clean"
    rows = [_row("git checkout", False, "ok", f"{g.commit[:12]} on {g.branch or '(detached)'}{dirty}",
                 g.describe)]
    if g.tags:
        rows.append(_row("git tags", False, "ok", f"{g.tags} tag(s)", f"describe: {g.describe}"))
    else:
        rows.append(_row("git tags", False, "missing",
                         "no tags: `git describe --tags --always` falls back to the bare commit "
                         f"({g.describe or '?'}), so versions built from it (PKG_VERSION, the iPXE "
                         "banner) are not release-like", fix="git fetch --tags origin"))
    return rows


def _env_rows(entries: list[gs.EnvEntry], pxe: Path) -> list[reqs.Check]:
    rows = []
    for e in entries:
        if e.kind != "script":
            continue
        if e.ok:
            rows.append(_row(f"[env] {e.name}", True, "ok", e.source.splitlines()[0][:100],
                             e.value.splitlines()[0][:80] if e.value else "(empty)"))
            continue
        if "locate-project" in e.source:
            fix = ("cargo must be installed and the checkout's root Cargo.toml must be a workspace; "
                   f"try: cd {pxe} && cargo locate-project --workspace --message-format plain")
        elif "git " in e.source:
            fix = (f"the tree must be a git clone with its tags; try: cd {pxe} && "
                   f"sh -c {shell.quote([e.source])}")
        else:
            fix = f"run it by hand to see why: cd {pxe} && sh -c {shell.quote([e.source])}"
        rows.append(_row(f"[env] {e.name}", True, "unusable", f"{e.error} (script: {e.source[:80]})",
                         fix=fix))
    return rows


def _used_dirs(plan: mk.Plan, mf: mk.Makefile, uses: list[pt.ToolUse], env: Mapping[str, str],
               pxe: Path) -> list[str]:
    """Every text of the plan's tasks (expanded) and their cwd: to find the submodules they use."""
    texts: list[str] = []
    for s in plan.steps:
        task = mf.tasks.get(s.task)
        if task is None:
            continue
        for t in task.texts():
            texts.append(pt.expand(t, env))
        if task.cwd:
            cwd = pt.expand(task.cwd, env)
            texts.append(cwd if os.path.isabs(cwd) else str(pxe / cwd))
    return texts


def _submodule_rows(subs: list[gs.Submodule], texts: list[str], root: Path) -> list[reqs.Check]:
    rows: list[reqs.Check] = []
    pxe = root / "pxe"

    def used(sub: gs.Submodule) -> bool:
        absolute = str(root / sub.path)
        rel_pxe = os.path.relpath(root / sub.path, pxe)
        return any(absolute in t or (not rel_pxe.startswith("..") and rel_pxe in t) for t in texts)

    used_missing = [s.path for s in subs if used(s) and s.state == "not initialised"]
    for sub in subs:
        req = used(sub)
        why = "used by the plan" if req else "not used by this plan"
        needed = f"{STEP2} (submodule, {why})"
        if sub.state == "ok":
            rows.append(_row(f"submodule {sub.path}", req, "ok", f"at {sub.commit[:12]} (recorded)",
                             sub.describe, needed_for=needed))
        elif sub.state == "not initialised":
            paths = used_missing if req and used_missing else [sub.path]
            rows.append(_row(f"submodule {sub.path}", req, "missing",
                             f"not initialised: {sub.path} is empty (cloned without --recurse-submodules?)",
                             fix=f"git submodule update --init {' '.join(paths)}", needed_for=needed))
        elif sub.state == "wrong commit":
            rows.append(_row(f"submodule {sub.path}", req, "unusable",
                             f"checked out at {sub.commit[:12]}, the tree records {sub.recorded[:12] or '?'}",
                             sub.describe,
                             fix=f"git submodule update {sub.path}   (or commit the new pin if you meant "
                                 "to change it)", needed_for=needed))
        else:
            rows.append(_row(f"submodule {sub.path}", req, "unusable", f"{sub.state} {sub.describe}".strip(),
                             fix=f"resolve the submodule state: git -C {sub.path} status",
                             needed_for=needed))
    return rows


# ---- programs the plan calls ----------------------------------------------------------

def _needed_for(need: pt.ToolNeed) -> str:
    tasks = need.tasks
    more = f" +{len(tasks) - 2}" if len(tasks) > 2 else ""
    text = f"{STEP2} (task {', '.join(tasks[:2])}{more})"
    if not need.required and need.condition:
        text += f"; {need.condition}"
    return text


def _tool_rows(needs: list[pt.ToolNeed], root: Path, subs: list[gs.Submodule]) -> list[reqs.Check]:
    rows: list[reqs.Check] = []
    for need in needs:
        word = need.word
        nf = _needed_for(need)
        if need.uses[0].is_path:
            p = Path(word)
            if not p.is_absolute():
                p = Path(need.uses[0].cwd or (root / "pxe")) / p
            if p.is_file() and os.access(p, os.X_OK):
                rows.append(_row(word, need.required, "ok", str(p), needed_for=nf))
                continue
            sub = gs.submodule_containing(subs, root, p) if pt.under(str(p), root) else None
            if sub is not None:
                fix = f"git submodule update --init {sub.path}"
            elif pt.under(str(p), root):
                fix = f"{p} is part of the checkout: git status / git checkout -- {p}"
            else:
                pkg = pt.PACKAGES.get(p.name)
                fix = reqs.apt_fix(pkg) if pkg else f"install the program {p}"
            rows.append(_row(word, need.required, "missing", f"{p} does not exist or is not executable",
                             fix=fix, needed_for=nf))
            continue
        path = shutil.which(word)
        pkg = pt.PACKAGES.get(word)
        if path:
            rows.append(_row(word, need.required, "ok", path, needed_for=nf, package=pkg or None))
        else:
            fix = reqs.apt_fix(pkg) if pkg else f"install the program `{word}` (called by task {need.tasks[0]})"
            rows.append(_row(word, need.required, "missing", "not on PATH", fix=fix, needed_for=nf,
                             package=pkg or None))
    return rows


def _ipxe_rows(uses: list[pt.ToolUse]) -> list[reqs.Check]:
    """`make` run in the iPXE source builds iPXE: it needs a C compiler, GNU ld, perl, lzma headers."""
    makes = [u for u in uses if u.name == "make"
             and any(h in (u.cwd + " " + " ".join(u.args)) for h in IPXE_HINTS)]
    if not makes:
        return []
    required = any(u.required for u in makes)
    tasks = ", ".join(sorted({u.task for u in makes}))
    nf = f"{STEP2} (iPXE build: task {tasks})"
    rows = []
    for name in ("gcc", "perl", "liblzma-dev"):
        c = reqs.check_one(reqs.get(name), required)
        rows.append(replace(c, needed_for=nf))
    rows.append(_gnu_ld(required, nf))
    return rows


def _gnu_ld(required: bool, nf: str) -> reqs.Check:
    path = shutil.which("ld")
    if not path:
        return _row("GNU ld", required, "missing", "no ld on PATH", fix=reqs.apt_fix("binutils"),
                    needed_for=nf, package="binutils")
    res = shell.capture(["ld", "--version"], timeout=20)
    first = res.tail[0] if res.tail else ""
    if "GNU ld" not in first:
        return _row("GNU ld", required, "unusable", f"{path}: {first or 'no version'} (iPXE's EFI build "
                    "fails with LLVM's lld)", fix=f"{reqs.apt_fix('binutils')} and put GNU ld first on PATH",
                    needed_for=nf, package="binutils")
    return _row("GNU ld", required, "ok", path, reqs.parse_version(first), needed_for=nf)


def _mkosi_uses(uses: list[pt.ToolUse]) -> list[Any]:
    by_exe: dict[str, list[pt.ToolUse]] = {}
    for u in uses:
        if u.name == "mkosi":
            by_exe.setdefault(u.word, []).append(u)
    if not by_exe:
        return []
    from .mkosi_tree import MkosiUse

    out = []
    for exe, us in by_exe.items():
        profiles: list[str] = []
        for u in us:
            args = list(u.args)
            for i, a in enumerate(args):
                if a == "--profile" and i + 1 < len(args):
                    val = args[i + 1]
                elif a.startswith("--profile="):
                    val = a.split("=", 1)[1]
                else:
                    continue
                for p in val.split(","):
                    if p and "$" not in p and p not in profiles:
                        profiles.append(p)
        required = any(u.required for u in us)
        conds = "; ".join(sorted({u.condition for u in us if u.condition}))
        out.append(MkosiUse(exe, tuple(profiles), tuple(dict.fromkeys(u.task for u in us)), required,
                            "" if required else conds))
    return out


# ---- cargo-make and Rust ----------------------------------------------------------------

def _cargo_make_row(mf: mk.Makefile) -> reqs.Check:
    c = reqs.check_one(reqs.get("cargo-make"), True)
    want = str(mf.config.get("min_version", "") or "")
    if not want:
        return c
    if c.ok and reqs.version_tuple(c.version) < reqs.version_tuple(want):
        return replace(c, status="too old", version=f"{c.version} (the Makefile wants >= {want})",
                       fix="cargo install --force cargo-make")
    return replace(c, version=f"{c.version} (the Makefile wants >= {want})" if c.ok else c.version)


def toolchain_channel(root: Path) -> str:
    """The channel `rust-toolchain.toml` (or the legacy `rust-toolchain` file) pins; "" if none."""
    toml_file = root / "rust-toolchain.toml"
    legacy = root / "rust-toolchain"
    try:
        if toml_file.is_file():
            return str(tomllib.loads(toml_file.read_text(encoding="utf-8")).get("toolchain", {})
                       .get("channel", ""))
        if legacy.is_file():
            text = legacy.read_text(encoding="utf-8").strip()
            if text.startswith("["):
                return str(tomllib.loads(text).get("toolchain", {}).get("channel", ""))
            return text.splitlines()[0].strip() if text else ""
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
        return ""
    return ""


def _rust_row(root: Path, required: bool) -> reqs.Check:
    nf = f"{STEP2} (Rust binaries: the plan's {{ name, path }} dependencies)"
    channel = toolchain_channel(root)
    rustup = shutil.which("rustup")
    if not shutil.which("rustc"):
        return _row("Rust toolchain", required, "missing", "no rustc on PATH",
                    fix="install rustup (https://rustup.rs): it installs the tree's toolchain from "
                        "rust-toolchain.toml", needed_for=nf)
    res = shell.capture(["rustc", "--version"], timeout=60, cwd=root)
    first = next((ln for ln in res.tail if ln.strip()), "")
    if not res.ok:
        fix = (f"rustup toolchain install {channel}" if rustup and channel
               else "install rustup (https://rustup.rs)")
        return _row("Rust toolchain", required, "unusable", f"rustc --version in {root} failed: {first}",
                    fix=fix, needed_for=nf)
    have = reqs.parse_version(first)
    if not channel:
        return _row("Rust toolchain", required, "ok", "no rust-toolchain.toml: the default toolchain",
                    have, needed_for=nf)
    exact = reqs.version_tuple(channel)
    if exact and len(channel.split(".")) >= 2 and channel[0].isdigit():
        n = len(exact)
        if reqs.version_tuple(have)[:n] != exact:
            fix = (f"rustup toolchain install {channel}" if rustup else
                   f"install rustup (https://rustup.rs): the tree pins {channel} in rust-toolchain.toml "
                   f"and this rustc ({shutil.which('rustc')}) is {have}")
            return _row("Rust toolchain", required, "unusable",
                        f"rust-toolchain.toml pins {channel}; rustc here is {have}", have, fix=fix,
                        needed_for=nf)
    return _row("Rust toolchain", required, "ok", f"rust-toolchain.toml: {channel}", have, needed_for=nf)


# ---- all of it --------------------------------------------------------------------------

def plan_env(root: Path, defined: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(defined)
    env.setdefault("REPO_ROOT", str(root))
    env.setdefault("CARGO_MAKE_WORKING_DIRECTORY", str(root / "pxe"))
    return env


def check_tree(root: str | os.PathLike[str], tasks: list[str] | None = None, arch: str = "x86_64",
               variant: str = "full", base_env: Mapping[str, str] | None = None,
               makefile: mk.Makefile | None = None) -> TreeReport:
    """Every check of the checkout for the tasks step 2 will run (default: from variant/arch)."""
    from .target import default_tasks

    rootp = Path(root).expanduser()
    wanted = list(tasks or default_tasks(variant, arch))
    report = TreeReport(rootp, wanted)
    ident, readable = _identity(rootp)
    report.checks.append(ident)
    if not readable:
        report.error = ident.found
        return report
    rootp = rootp.resolve()
    report.root = rootp
    pxe = rootp / "pxe"
    try:
        mf = makefile or mk.load(pxe / "Makefile.toml")
    except mk.MakefileError as exc:
        report.error = str(exc)
        report.checks.append(_row("pxe/Makefile.toml", True, "unusable", str(exc),
                                  fix="fix the Makefile (it must be valid TOML)"))
        return report

    with ThreadPoolExecutor(max_workers=6) as pool:
        f_git = pool.submit(gs.git_state, rootp)
        f_subs = pool.submit(lambda: gs.submodule_status(rootp, gs.gitmodules(rootp)))
        f_cm = pool.submit(_cargo_make_row, mf)
        defined, entries = gs.run_env(mf.env, pxe, base_env)
        env = plan_env(rootp, defined, base_env)
        renamed = ""
        if not tasks and len(wanted) == 1 and wanted[0] not in mf.tasks:
            close = mk.suggest(wanted[0], mf.tasks)
            if close:  # a renamed default task (build-boot-artifacts-x86-host): check that one
                renamed, wanted = wanted[0], [close[0]]
                report.tasks = wanted
        try:
            plan = mk.resolve(mf, wanted, env=env)
        except mk.MakefileError as exc:
            report.error = str(exc)
            plan = None
        report.env = entries
        report.plan = plan
        uses = pt.tool_uses(mf, plan, env) if plan else []
        has_external = bool(plan and any(s.kind == "external" for s in plan.steps))
        f_rust = pool.submit(_rust_row, rootp, True) if has_external else None
        subs = f_subs.result()
        report.submodules = subs
        mkosi_uses = _mkosi_uses(uses)
        report.mkosi_pinned = next((m.argv0 for m in mkosi_uses if pt.under(m.argv0, rootp)), "")
        f_mkosi = pool.submit(_mkosi_checks, rootp, mkosi_uses, subs) if mkosi_uses else None
        f_ipxe = pool.submit(_ipxe_rows, uses)
        needs = [n for n in pt.group(uses) if Path(n.word).name != "mkosi"]
        report.tools = pt.group(uses)
        report.git = f_git.result()
        report.checks += _git_rows(report.git)
        report.checks += _env_rows(entries, pxe)
        if renamed:
            report.checks.append(_row("build task", False, "missing",
                                      f"the tree has no task {renamed!r} (the docs' name); checked its "
                                      f"closest, {wanted[0]!r}",
                                      fix=f"run step 2 with task={wanted[0]!r}"))
        if plan is None:
            report.checks.append(_row("build plan", True, "unusable", report.error,
                                      fix=f"set task to one of the tree's tasks (runbook plan --tree {rootp})"))
        texts = _used_dirs(plan, mf, uses, env, pxe) if plan else []
        report.checks += _submodule_rows(subs, texts, rootp)
        if f_mkosi is not None:
            mk_rows = f_mkosi.result()
            report.checks += mk_rows
            report.mkosi = next((f"{c.found} {c.version}".strip() for c in mk_rows
                                 if c.tool.startswith("mkosi")), "")
        report.checks += _tool_rows(needs, rootp, subs)
        report.checks += f_ipxe.result()
        report.checks.append(f_cm.result())
        if f_rust is not None:
            report.checks.append(f_rust.result())
    return report


def _mkosi_checks(root: Path, uses: list[Any], subs: list[gs.Submodule]) -> list[reqs.Check]:
    from .mkosi_tree import mkosi_checks

    def submodule_for(path: Path) -> str | None:
        sub = gs.submodule_containing(subs, root, path)
        return sub.path if sub else None

    return mkosi_checks(root, uses, submodule_for)
