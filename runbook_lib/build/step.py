"""Step 2 of carbide's "IPXE image building workflow": plan, build, verify, give the tree back.

:class:`BuildStep` follows the step protocol (:mod:`runbook_lib.step`): ``preflight()`` resolves
the plan (the run order cargo-make would use, or the sandbox's) and checks the build's
requirements; ``run()`` builds with live progress and then verifies: the parts ``run``,
``artifacts``, ``manifest`` and ``ownership`` are each a :class:`BuildResult` (PASS / FAIL /
ERROR, first cause, fix, tables); ``result()`` combines them. :func:`build_ipxe_image` does all
of it in one call (CLI, tests).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping

from .. import history, history_hooks
from .. import requirements as reqs
from .. import shell
from ..params import STEP2
from ..report.sanitize import redact
from ..result import Status, StepResult
from ..step import Step, state_dir as tree_state_dir
from . import artifacts as art
from . import manifest as mani
from . import ownership as own
from .checkout import TreeReport, check_tree
from .classify import DEFAULT_CI_ONLY_PATTERN, Verdict, classify
from .driver import RunOutcome, execute
from .makefile import artifact_names
from .render import BuildResult
from .target import AARCH64_NOTE, Target, TargetError, resolve

STEP = "step 2: build"


class BuildStep(Step):
    number, name, spec = 2, "build", STEP2
    registry_step = reqs.BUILD

    def __init__(self, params: Mapping[str, Any] | Any, log_dir: str | Path | None = None,
                 state_dir: str | Path | None = None, host: str | None = None) -> None:
        super().__init__(params, log_dir)
        self._state_override = Path(state_dir) if state_dir else None
        self.host = host
        self.target: Target | None = None
        self.error: BuildResult | None = None
        self.outcome: RunOutcome | None = None
        self.verdict: Verdict | None = None
        self.inventory: art.Inventory | None = None
        self._versions: list[str] = []

    @property
    def state_dir(self) -> Path:
        """Where the previous build's manifest is kept: per tree, under the XDG data directory."""
        if self._state_override is not None:
            return self._state_override
        root = self.target.root if self.target is not None else Path(
            self.params["carbide_root_dir"] or self.params["workdir"] or ".")
        return tree_state_dir(root)

    def needs(self) -> reqs.Needs:
        return reqs.Needs(mode="carbide" if self.params["carbide_root_dir"] else "sandbox")

    # ---- plan ---------------------------------------------------------------------------
    def _preflight(self) -> BuildResult:
        p = self.params
        try:
            self.target = resolve(p["carbide_root_dir"], p["arch"], p["variant"], p["task"],
                                  p["workdir"], host=self.host, ipxe_source=_param(p, "ipxe_source", ""))
        except TargetError as exc:
            self.error = BuildResult(self.part_title("pre-flight"), Status.ERROR, "cannot plan the build",
                                     cause=exc.cause, fix=exc.fix,
                                     details={"suggestions": exc.suggestions})
            return self.error
        t = self.target
        checks = self._check_requirements(t)
        tree = self._check_tree(t)
        unmet = reqs.first_unmet(checks)
        notes = [*t.notes, *t.plan.notes]
        details = {"target": t.to_dict(), "plan": t.plan.to_dict(),
                   "commands": [redact(shell.quote(c)) for c in
                                t.commands(self.params["force"], self.params["root_password"])]}
        tables = {"plan": t.plan.table(), "requirements": reqs.frame(checks)}
        if tree is not None:
            tables["your tree"] = tree.frame()
            details["tree"] = tree.to_dict()
            notes.append(f"tree: {tree.summary()}" + (f"; mkosi: {tree.mkosi}" if tree.mkosi else ""))
        if unmet is not None:
            cause, fix = reqs.unmet(unmet)
            self.error = BuildResult(self.part_title("pre-flight"), Status.ERROR, "the build tools are not ready",
                                     cause=cause, fix=fix, details=details,
                                     tables=tables, notes=tuple(notes))
            return self.error
        if tree is not None and not tree.ready:
            self.error = BuildResult(
                self.part_title("pre-flight"), Status.ERROR,
                f"the checkout is not ready for {' && '.join(t.tasks)}: {tree.problems(5)} "
                "(nothing was started)",
                cause=tree.cause(), fix=tree.fix(), details=details, tables=tables, notes=tuple(notes))
            return self.error
        cmds = details["commands"]
        what = (f"{len(t.plan.steps)} task(s) from {t.plan.source}" if t.plan.steps
                else "no build (directories only)")
        summary = (f"{t.kind}: {' && '.join(cmds) if cmds else 'mkdir ' + str(t.artifact_dir)}"
                   f" — {what}")
        if t.kind == "carbide":
            notes.append(f"runs in {t.run_dir} like the docs: cd $CARBIDE_ROOT_DIR/pxe && "
                         + " && ".join(f"cargo make {x}" for x in t.tasks))
        notes.extend(self._versions)
        return BuildResult(self.part_title("pre-flight"), Status.PASS, summary, details=details,
                           tables=tables, notes=tuple(notes))

    def _check_requirements(self, t: Target) -> list[reqs.Check]:
        """The registry's build requirements; missing ones are the environment's fault (ERROR).

        For a carbide checkout the tree decides which mkosi runs (:meth:`_check_tree`): the
        distribution's mkosi/debootstrap and the registry's cargo-make row give way to the tree's
        rows. Building only directories (aarch64 on an x86_64 host) needs nothing.
        """
        self._versions = []
        if t.only_dirs:
            return []
        checks = []
        for req, required in self.requires():
            if t.kind == "carbide" and req.name in ("mkosi", "debootstrap", "cargo-make"):
                continue
            checks.append(reqs.check_one(req, required))
        return checks

    def _check_tree(self, t: Target) -> "TreeReport | None":
        """A carbide checkout's own checks for the tasks this build runs (the same as step 1's)."""
        if t.kind != "carbide" or t.only_dirs or t.makefile is None:
            return None
        tree = check_tree(t.root, t.tasks, t.arch, makefile=t.makefile)
        cm = next((c for c in tree.checks if c.tool == "cargo-make" and c.ok), None)
        if cm is not None:
            self._versions.append(f"cargo-make: {cm.found}")
        return tree

    # ---- run ----------------------------------------------------------------------------
    def run(self) -> StepResult:
        """Step.run(), then the run's record in the history (a failure to record is a note)."""
        started = history.now()
        res = super().run()
        history_hooks.attach(res, history_hooks.after_build(self, started))
        return res

    def _run(self) -> StepResult:
        """Build, then verify: artifacts, manifest, ownership (each its own part)."""
        res = self._build()
        self.keep("run", res)
        self.artifacts()
        self.manifest()
        self.ownership()
        return res

    def _build(self) -> BuildResult:
        assert self.target is not None
        t = self.target
        name = self.part_title("run")
        if t.only_dirs and t.kind == "sandbox":
            t.artifact_dir.mkdir(parents=True, exist_ok=True)
            return BuildResult(
                name, Status.PASS, f"created {t.artifact_dir}; nothing to build",
                notes=(AARCH64_NOTE,), details={"created": str(t.artifact_dir)})
        log_path = self.log_dir / "build.log"
        try:
            self.outcome = execute(t, log_path, float(self.params["build_timeout_s"]),
                                   force=self.params["force"], root_password=self.params["root_password"])
        except shell.CommandNotFound as exc:
            return BuildResult(name, Status.ERROR, "the build command is missing",
                               cause=str(exc), fix="run step 1 (01_install_build_tools)")
        except shell.ElevationUnavailable as exc:
            return BuildResult(name, Status.ERROR, "the build needs root", cause=str(exc),
                               fix="run as root, or allow passwordless sudo for this user")
        o = self.outcome
        self.inventory = self._inventory(o.start_wall)
        self.verdict = classify(returncode=o.returncode, timed_out=o.timed_out,
                                interrupted=o.interrupted, log=o.log, inventory=self.inventory,
                                ci_only_pattern=self.params["ci_only_pattern"] or DEFAULT_CI_ONLY_PATTERN,
                                log_lines=o.log_lines(), log_path=str(o.log_path),
                                timeout_s=o.timeout_s, tool=t.tool)
        v = self.verdict
        if t.only_dirs and v.status is Status.PASS:
            ok = t.artifact_dir.is_dir()
            v.summary = (f"{t.artifact_dir} created; nothing else is built for {t.arch} here" if ok else
                         f"the build exited 0 but did not create {t.artifact_dir}")
            if not ok:
                v.status, v.cause, v.fix = Status.FAIL, f"{t.artifact_dir} is missing", \
                    f"check the task {t.tasks[0]!r} in the log"
        details = {"outcome": o.to_dict(), "verdict": v.to_dict()}
        notes = list(v.warnings)
        if t.only_dirs:
            notes.insert(0, AARCH64_NOTE)
        tasks_df = _tasks_table(o, t)
        return BuildResult(
            name, v.status, v.summary + f" ({o.duration_s:.0f} s)", cause=v.cause, fix=v.fix,
            details=details, tables={"tasks": tasks_df}, logs={"build": str(o.log_path)},
            excerpt=redact(v.excerpt) if v.status is not Status.PASS or v.kind != "clean" else "",
            notes=tuple(notes))

    # ---- artifacts ----------------------------------------------------------------------
    def _expected(self) -> tuple[list[art.ArtifactSpec], str]:
        t = self.target
        assert t is not None
        if t.only_dirs:
            return [], "none: " + AARCH64_NOTE
        if t.kind == "sandbox":
            planned = set(t.plan.task_names())
            specs = [s for s in art.sandbox_profile() if not s.produced_by or s.produced_by in planned]
            return specs, "sandbox profile (runbook_lib.sandbox.tasks.EXPECTED_ARTIFACTS) for " \
                          + ", ".join(t.tasks)
        named = artifact_names(t.makefile, t.plan, t.arch) if t.makefile else []
        choice = self.params["artifact_profile"]
        if choice == "auto":
            text = " ".join(t.makefile.tasks) if t.makefile else ""
            choice = art.pick_profile(artifact_names(t.makefile, None, t.arch) if t.makefile else [], text)
        specs = art.expected_set(art.profile(choice), named)
        src = f"profile {choice!r}"
        if named:
            src += " + files the planned tasks write: " + ", ".join(named)
        return specs, src

    def _inventory(self, build_start: float | None) -> art.Inventory:
        specs, src = self._expected()
        return art.inventory(self.target.artifact_dir, specs, build_start, src)  # type: ignore[union-attr]

    def artifacts(self) -> StepResult:
        if "artifacts" in self.parts:
            return self.parts["artifacts"]
        if "pre-flight" not in self.parts:
            self.preflight()
        if self.error or self.target is None:
            return self._blocked("artifacts")
        t = self.target
        name = self.part_title("artifacts")
        if t.only_dirs:
            ok = t.artifact_dir.is_dir()
            return self.keep("artifacts", BuildResult(
                name, Status.PASS if ok else Status.FAIL,
                f"{t.artifact_dir} {'exists' if ok else 'is missing'}; no {t.arch} artifacts are built "
                "on an x86_64 host",
                cause=None if ok else f"{t.artifact_dir} was not created",
                fix=None if ok else "run the build step again", notes=(AARCH64_NOTE,)))
        inv = self.inventory or self._inventory(self.outcome.start_wall if self.outcome else None)
        self.inventory = inv
        unclean = bool(self.verdict and self.verdict.kind == "expected-unclean-exit")
        problems = inv.problems(require_fresh=unclean)
        prov = art.read_provenance(t.artifact_dir)
        if prov:
            _annotate_ipxe_rows(inv, prov)
        tables = {"artifacts": inv.table()}
        notes = [f"expected set: {inv.source}"]
        if prov:
            tables["iPXE provenance (ipxe.provenance.json)"] = _kv_table(
                {k: v for k, v in prov.items() if k != "resolution"})
            if isinstance(prov.get("resolution"), list):
                tables["iPXE source (tried in this order)"] = _resolution_table(prov["resolution"])
            notes.append("iPXE: " + _provenance_line(prov))
        if inv.leftovers:
            notes.append("leftover mkosi work directories (harmless, the docs show one too): "
                         + ", ".join(inv.leftovers))
        stale = inv.stale()
        if stale and not unclean:
            notes.append("not rewritten by this run: " + ", ".join(r.name for r in stale)
                         + (" (the build reused them)" if self.outcome else ""))
        n_exp = sum(1 for r in inv.rows if r.expected)
        if problems:
            first = problems[0]
            res = BuildResult(name, Status.FAIL, f"{len(problems)} of {n_exp} expected artifacts are wrong",
                              cause=f"{first.name}: {first.problem(unclean)} — {first.note}",
                              fix="rebuild (force=True to skip the cache) and look at the task that writes "
                                  f"{first.name} in the build log",
                              tables=tables, details=inv.to_dict(), notes=tuple(notes))
        else:
            res = BuildResult(name, Status.PASS, f"all {n_exp} expected artifacts present in {t.artifact_dir}",
                              tables=tables, details=inv.to_dict(), notes=tuple(notes))
        return self.keep("artifacts", res)

    # ---- manifest -----------------------------------------------------------------------
    def manifest(self) -> StepResult:
        if "manifest" in self.parts:
            return self.parts["manifest"]
        if "pre-flight" not in self.parts:
            self.preflight()
        if self.error or self.target is None:
            return self._blocked("manifest")
        t = self.target
        name = self.part_title("manifest")
        path = t.artifact_dir / "carbide.manifest"
        if t.only_dirs or not path.exists():
            expected = self.inventory is not None and any(
                r.name == "carbide.manifest" and r.expected for r in self.inventory.rows)
            status = Status.FAIL if expected and not t.only_dirs else Status.PASS
            return self.keep("manifest", BuildResult(
                name, status, f"no carbide.manifest in {t.artifact_dir}"
                + ("" if status is Status.FAIL else "; nothing to compare (this tree's artifact set has none)"),
                cause=f"{path} is missing" if status is Status.FAIL else None,
                fix="see the artifacts table: the image build did not write its manifest"
                if status is Status.FAIL else None))
        try:
            pkgs, d = mani.compare_with_previous(path, self.state_dir, t.root, t.arch)
        except (mani.ManifestError, OSError) as exc:
            return self.keep("manifest", BuildResult(name, Status.FAIL, "carbide.manifest cannot be read",
                                                      cause=f"{path}: {exc}",
                                                      fix="rebuild the image; the manifest is mkosi's JSON output"))
        kept = self.log_dir / "carbide.manifest"
        shutil.copyfile(path, kept)
        build_ok = self.verdict is None or self.verdict.status is Status.PASS
        remembered = mani.remember(path, self.state_dir, t.root, t.arch) if build_ok else None
        notes = [f"{len(pkgs)} packages in the image", d.summary()]
        if remembered:
            notes.append(f"kept as the next build's baseline: {remembered}")
        tables = {"package changes": d.table(), "packages": mani.packages_table(pkgs)}
        return self.keep("manifest", BuildResult(
            name, Status.PASS, f"{len(pkgs)} packages; {d.summary()}", tables=tables,
            details={"packages": len(pkgs), "added": [p.name for p in d.added],
                     "removed": [p.name for p in d.removed],
                     "changed": [b.name for b, _ in d.changed], "previous_found": d.previous_found},
            logs={"manifest": str(kept)}, notes=tuple(notes)))

    # ---- ownership ----------------------------------------------------------------------
    def ownership(self) -> StepResult:
        if "ownership" in self.parts:
            return self.parts["ownership"]
        if "pre-flight" not in self.parts:
            self.preflight()
        if self.error or self.target is None:
            return self._blocked("ownership")
        t = self.target
        name = self.part_title("ownership")
        if not self.params["fix_ownership"]:
            return self.keep("ownership", BuildResult(name, Status.PASS,
                                                       "skipped: fix_ownership is off"))
        rep = own.fix(t.static_dir, self.params["chown_user"], log_path=self.log_dir / "chown.log")
        details = {"static_dir": str(rep.static_dir), "user": rep.user.__dict__ if rep.user else None,
                   "command": rep.command, "ran": rep.ran, "before": rep.before[:200],
                   "after": rep.after[:200]}
        notes = []
        if rep.command:
            notes.append(("ran: " if rep.ran else "command (not needed now): ") + rep.command)
        if rep.error:
            st, cause, fix = Status.ERROR, rep.error, "run as root or with sudo available, or chown by hand: " + rep.command
        elif rep.after:
            st, cause, fix = Status.FAIL, f"still not owned by {rep.user.name if rep.user else '?'}: {rep.after[0]}", \
                rep.command
        else:
            st, cause, fix = Status.PASS, None, None
        return self.keep("ownership", BuildResult(name, st, rep.summary(), cause=cause, fix=fix,
                                                   details=details, notes=tuple(notes)))

    # ---- overall ------------------------------------------------------------------------
    def sections(self) -> list[Any]:
        return [self.section(k) for k in ("run", "artifacts", "manifest", "ownership")]

    def section(self, name: str) -> Any:
        """A part; a verification part that could not run says so (ERROR "not run: ...")."""
        if name not in self.parts and name in ("artifacts", "manifest", "ownership"):
            return getattr(self, name)()
        return super().section(name)

    def checklist(self):  # -> pandas.DataFrame
        """Part and status only: stable across reruns of a healthy build (checked by nbval)."""
        import pandas as pd
        what = {"pre-flight": "task exists, run order resolved, build requirements met",
                "run": "build finished (cleanly, or in a CI-only task with fresh artifacts)",
                "artifacts": "every expected artifact present and in its size band",
                "manifest": "package manifest read and compared with the previous build",
                "ownership": "pxe/static belongs to the invoking user"}
        return pd.DataFrame([{"part": k, "checks": what.get(k, ""), "status": r.status.value}
                             for k, r in self.parts.items()], columns=["part", "checks", "status"])

    # ---- helpers ------------------------------------------------------------------------
    def _blocked(self, part: str) -> BuildResult:
        assert self.error is not None
        return BuildResult(self.part_title(part), Status.ERROR, f"not run: {self.error.summary}",
                           cause=self.error.cause, fix=self.error.fix)


def _tasks_table(o: RunOutcome, t: Target):
    import pandas as pd
    planned = t.plan.task_names()
    started = {r.name: r for r in o.log.tasks if r.level == 0}
    failing = o.log.failing_task()
    rows = []
    for name in planned:
        r = started.get(name)
        state = "not reached" if r is None else ("skipped (condition)" if r.skipped else "ran")
        if name == failing:
            state = f"failed (exit {o.log.exit_code()})"
        rows.append({"task": name, "state": state,
                     "commands": "; ".join(r.commands)[:160] if r else ""})
    extra = [r for r in o.log.tasks if r.level == 0 and r.name not in planned]
    for r in extra:
        rows.append({"task": r.name, "state": "ran (not in plan: cargo-make internal)" if not r.skipped
                     else "skipped", "commands": "; ".join(r.commands)[:160]})
    return pd.DataFrame(rows, columns=["task", "state", "commands"])


def _annotate_ipxe_rows(inv: art.Inventory, prov: Mapping[str, Any]) -> None:
    """Say in the artifact table how the iPXE binaries were produced (ipxe.provenance.json)."""
    raw_files = prov.get("files")
    files: dict[str, Any] = raw_files if isinstance(raw_files, dict) else {}
    how = str(prov.get("path") or prov.get("method") or "?")
    origin = str(prov.get("origin") or prov.get("source") or prov.get("version") or "")
    for row in inv.rows:
        if row.name in files or row.name in ("ipxe.efi", "ipxe.kpxe"):
            src = files.get(row.name, "")
            text = f"iPXE {how}" + (f" from {origin}" if origin else "") + (f" ({src})" if src else "")
            row.note = f"{row.note}; {text}" if row.note else text


def _kv_table(d: Mapping[str, Any]):
    import pandas as pd
    rows = [{"key": k, "value": (str(v) if not isinstance(v, (dict, list)) else str(v))[:200]}
            for k, v in d.items()]
    return pd.DataFrame(rows, columns=["key", "value"])


def _resolution_table(rows: list[Any]):
    """Which iPXE source the sandbox took, and why each earlier one was not (ipxe.provenance.json)."""
    import pandas as pd
    out = [{"source": str(r.get("source", "?")), "used": "yes" if r.get("used") else "no",
            "why": str(r.get("why", ""))[:300]} for r in rows if isinstance(r, Mapping)]
    return pd.DataFrame(out, columns=["source", "used", "why"])


def _param(p: Mapping[str, Any] | Any, name: str, default: Any) -> Any:
    """A parameter that older parameter sets may lack."""
    try:
        return p[name]
    except (KeyError, IndexError):
        return default


_PROVENANCE_FIRST = ("path", "version", "origin", "embedded_script", "compiled_objects")


def _provenance_line(d: Mapping[str, Any]) -> str:
    """The provenance in one bounded line, the fields that say how iPXE was made first."""
    keys = [k for k in _PROVENANCE_FIRST if k in d] + [k for k in d if k not in _PROVENANCE_FIRST]
    bits = [f"{k}={d[k]}" for k in keys if isinstance(d[k], (str, int, float)) and len(str(d[k])) < 80]
    return ", ".join(bits)[:300]


def build_ipxe_image(params: Mapping[str, Any], log_dir: str | Path | None = None,
                     state_dir: str | Path | None = None) -> StepResult:
    """All of step 2 in one call; the overall result carries every part's result."""
    s = BuildStep(params, log_dir, state_dir)
    s.preflight()
    s.run()
    return s.result()
