"""What step 2 will build: a carbide checkout or the embedded sandbox, which tasks, in which order.

Both kinds are handled the same way: a plan (from ``pxe/Makefile.toml`` or from the
sandbox's task list), the commands that run it (``cargo make TASK`` in ``<root>/pxe``
like carbide's docs, or ``python -m runbook_lib.sandbox build --task TASK``), and the
directory the artifacts land in.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from . import makefile as mk


class TargetError(Exception):
    """The request cannot be turned into a build (ERROR): names the cause and the fix."""

    def __init__(self, cause: str, fix: str, suggestions: list[str] | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix
        self.suggestions = suggestions or []


AARCH64_NOTE = ("aarch64 artifacts cannot be built on an x86_64 host (carbide's docs): only the "
                "static directories are created, to satisfy the docker-compose workflow")


def host_arch() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def split_tasks(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,]+", text.strip()) if t]


def default_tasks(variant: str, arch: str) -> list[str]:
    """carbide's docs: `build-boot-artifacts-<arch>`, or `create-ephemeral-image` then `ipxe-<arch>`."""
    if variant == "package-only":
        return ["create-ephemeral-image", f"ipxe-{arch}"]
    return [f"build-boot-artifacts-{arch}"]


@dataclass
class Target:
    kind: str  # carbide | sandbox
    root: Path  # the tree root: holds pxe/static/blobs/internal/<arch>
    arch: str
    tasks: list[str]
    run_dir: Path
    plan: mk.Plan
    makefile: mk.Makefile | None = None
    only_dirs: bool = False  # aarch64 on an x86_64 host
    notes: list[str] = field(default_factory=list)
    ipxe_source: str = ""  # sandbox: iPXE source dir or tarball (step 2's ipxe_source)

    @property
    def artifact_dir(self) -> Path:
        return paths.artifacts_dir(self.root, self.arch)

    @property
    def static_dir(self) -> Path:
        return self.root / "pxe" / "static"

    @property
    def tool(self) -> str:
        return "cargo-make" if self.kind == "carbide" else "sandbox"

    def commands(self, force: bool = False, root_password: str = "") -> list[list[str]]:
        """One command per requested task, run one after another (`a && b`)."""
        if self.only_dirs and self.kind == "sandbox":
            return []
        if self.kind == "carbide":
            return [["cargo", "make", t] for t in self.tasks]
        cmds = []
        for t in self.tasks:
            argv = [sys.executable, "-m", "runbook_lib.sandbox", "build", "--task", t,
                    "--workdir", str(self.root)]
            if force:
                argv.append("--force")
            if self.ipxe_source:  # absolute: the builder runs from the repository root
                argv += ["--ipxe-source", str(Path(self.ipxe_source).expanduser().resolve())]
            cmds.append(argv)  # the root password travels in the environment, never in argv
        return cmds

    def env(self, root_password: str = "") -> dict[str, str] | None:
        if self.kind != "sandbox":
            return None
        repo = str(paths.repo_root())
        old = os.environ.get("PYTHONPATH", "")
        env = {"PYTHONPATH": repo + (os.pathsep + old if old else "")}
        if root_password:
            env["SANDBOX_ROOT_PASSWORD"] = root_password
        return env

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "arch": self.arch, "tasks": self.tasks,
                "run_dir": str(self.run_dir), "artifact_dir": str(self.artifact_dir),
                "only_dirs": self.only_dirs, "notes": self.notes, "ipxe_source": self.ipxe_source}


def sandbox_plan(tasks: list[str]) -> mk.Plan:
    from ..sandbox import tasks as st

    steps: list[mk.PlanStep] = []
    for requested in tasks:
        if requested not in st.TASKS:
            raise mk.UnknownTask(requested, st.TASKS)
        for name in st.plan(requested):
            t = st.TASKS[name]
            via = "requested" if name == requested else f"dependency of {requested}"
            steps.append(mk.PlanStep(0, name, "task", 0, via, action=t.description,
                                     description=t.description))
    for i, s in enumerate(steps, 1):
        s.order = i
    return mk.Plan(tasks, steps, "sandbox (runbook_lib.sandbox.tasks)")


def resolve(carbide_root_dir: str, arch: str, variant: str, task: str = "", workdir: str = "",
            env: dict[str, str] | None = None, host: str | None = None, ipxe_source: str = "") -> Target:
    host = host or host_arch()
    only_dirs = arch != host and arch == "aarch64"
    notes: list[str] = []
    if carbide_root_dir:
        root = Path(carbide_root_dir).expanduser()
        mf_path = root / "pxe" / "Makefile.toml"
        if not root.is_dir():
            raise TargetError(f"carbide_root_dir {str(root)!r} does not exist or is not a directory",
                              "set carbide_root_dir to your carbide checkout (the directory holding "
                              "pxe/Makefile.toml), or leave it empty to build the embedded sandbox")
        if not mf_path.is_file():
            raise TargetError(f"{str(root)!r} is not a carbide checkout: expected {mf_path}",
                              "point carbide_root_dir at the top of the carbide repository "
                              "($CARBIDE_ROOT_DIR), or leave it empty for the embedded sandbox")
        root = root.resolve()
        try:
            mf = mk.load(mf_path)
        except mk.MakefileError as exc:
            raise TargetError(str(exc), f"fix {mf_path} (it must be valid TOML)") from None
        if only_dirs:
            tasks = [f"mkdir-static-{arch}"]
            notes.append(AARCH64_NOTE + f": running `cargo make {tasks[0]}` only")
        else:
            tasks = split_tasks(task) or default_tasks(variant, arch)
        try:
            plan = mk.resolve(mf, tasks, env=_plan_env(env, root))
        except mk.UnknownTask as exc:
            sugg = exc.suggestions
            fix = (f"set task={sugg[0]!r}" if sugg else "set `task` to one of the tree's tasks "
                   f"(`runbook plan --tree {root} TASK` lists them)")
            if exc.referenced_by:
                fix = f"the tree's Makefile.toml refers to a task it does not define; fix {mf_path}"
            raise TargetError(str(exc), fix, sugg) from None
        except mk.CyclicDependency as exc:
            raise TargetError(f"{mf_path}: {exc}", "break the cycle in the tree's Makefile.toml") from None
        except mk.MakefileError as exc:
            raise TargetError(f"{mf_path}: {exc}", "check the tree's Makefile.toml") from None
        if ipxe_source:
            notes.append(f"ipxe_source={ipxe_source!r} is for the sandbox only: a carbide tree builds "
                         "its own pxe/ipxe/upstream")
        return Target("carbide", root, arch, tasks, root / "pxe", plan, mf, only_dirs, notes)

    root = paths.sandbox_workdir(workdir or None)
    if only_dirs:
        notes.append(AARCH64_NOTE + f": the sandbox creates {paths.artifacts_dir(root, arch)}")
        plan = mk.Plan([], [], "sandbox", notes=[AARCH64_NOTE])
        return Target("sandbox", root, arch, [], paths.repo_root(), plan, None, True, notes)
    if arch != "x86_64":
        raise TargetError(f"the embedded sandbox builds x86_64 only, not {arch}",
                          "use arch='x86_64', or point carbide_root_dir at a carbide checkout")
    tasks = split_tasks(task) or default_tasks(variant, arch)
    try:
        plan = sandbox_plan(tasks)
    except mk.UnknownTask as exc:
        raise TargetError(str(exc).replace("in this Makefile.toml", "by the sandbox"),
                          f"set task={exc.suggestions[0]!r}" if exc.suggestions
                          else "use one of the sandbox tasks", exc.suggestions) from None
    except ImportError as exc:
        raise TargetError(f"the embedded sandbox is not available: {exc}",
                          "reinstall the project (pip install -e .)") from None
    return Target("sandbox", root, arch, tasks, paths.repo_root(), plan, None, False, notes,
                  ipxe_source=ipxe_source)


def _plan_env(env: dict[str, str] | None, root: Path) -> dict[str, str]:
    out = dict(os.environ if env is None else env)
    out.setdefault("REPO_ROOT", str(root))
    out.setdefault("CARGO_MAKE_WORKING_DIRECTORY", str(root / "pxe"))
    return out
