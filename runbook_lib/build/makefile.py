"""Read a cargo-make ``Makefile.toml`` and resolve a task's run order the way cargo-make does.

cargo-make builds an execution plan before it runs anything: the requested task's
dependencies first (depth first, in the order written), each task once, then the
task itself. ``run_task`` starts a sub-flow when the task runs; ``condition`` may
skip a task's own action (its dependencies still run); ``{ name, path }``
dependencies run ``cargo make`` in another directory, outside this file. This
module reproduces that plan so it can be shown (and checked) before a 20-minute
build starts. Nothing here runs a command.
"""

from __future__ import annotations

import difflib
import os
import platform
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

# Tasks every cargo-make run knows without defining them (from its default Makefile).
BUILTIN_TASKS = frozenset({
    "build", "build-release", "test", "clean", "check", "clippy", "format", "docs", "default",
    "empty", "init", "end", "ci-flow", "workspace-ci-flow", "legacy-migration", "install",
})


class MakefileError(Exception):
    """The Makefile.toml cannot be read or the request cannot be planned (ERROR)."""


class UnknownTask(MakefileError):
    def __init__(self, name: str, known: Iterable[str], referenced_by: str | None = None) -> None:
        self.name = name
        self.suggestions = suggest(name, known)
        where = f" (a dependency of {referenced_by!r})" if referenced_by else ""
        hint = (f"; closest tasks: {', '.join(self.suggestions)}" if self.suggestions
                else "; no similarly named task exists")
        super().__init__(f"task {name!r}{where} is not defined in this Makefile.toml{hint}")
        self.referenced_by = referenced_by


class CyclicDependency(MakefileError):
    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("circular dependency: " + " -> ".join(cycle))


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Closest task names, e.g. build-boot-artifacts-x86_64 -> build-boot-artifacts-x86-host."""
    names = sorted(set(known))
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    if not close:
        # Same leading words (build-boot-artifacts-*) catch renamed suffixes difflib scores low.
        stem = "-".join(re.split(r"[-_]", name)[:3])
        close = [k for k in names if k.startswith(stem)][:n]
    return close


@dataclass(frozen=True)
class Dependency:
    name: str
    path: str | None = None  # `{ name, path }`: a task of the Makefile.toml in another directory


@dataclass(frozen=True)
class RunTaskRef:
    names: tuple[str, ...]
    condition: str | None = None
    fork: bool = False


@dataclass
class TaskDef:
    name: str
    dependencies: list[Dependency] = field(default_factory=list)
    run_task: list[RunTaskRef] = field(default_factory=list)
    condition: dict[str, Any] | None = None
    condition_script: list[str] = field(default_factory=list)
    command: str | None = None
    args: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    script_runner: str = ""  # "@duckscript", "@shell", "@rust", a program; empty = the default shell
    cwd: str | None = None
    description: str = ""
    category: str = ""
    private: bool = False
    disabled: bool = False

    def action(self) -> str:
        """What the task itself executes, as one short line."""
        if self.command:
            return " ".join([self.command, *self.args])
        if self.script:
            lines = [ln.strip() for ln in "\n".join(self.script).splitlines() if ln.strip()]
            if not lines:
                return ""
            more = f"  (+{len(lines) - 1} more lines)" if len(lines) > 1 else ""
            return f"script: {lines[0]}{more}"
        return ""

    def texts(self) -> list[str]:
        return [*([self.command] if self.command else []), *self.args, *self.script]


@dataclass
class Makefile:
    path: Path
    tasks: dict[str, TaskDef]
    env: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the `[config]` table (min_version, ...)

    def __contains__(self, name: str) -> bool:
        return name in self.tasks

    def names(self) -> list[str]:
        return sorted(self.tasks)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _script_lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict):  # { file = "..." } or { main = [...], pre = [...] }
        if "file" in value:
            return [f"(script file {value['file']})"]
        out: list[str] = []
        for key in ("pre", "main", "post"):
            out += _script_lines(value.get(key))
        return out
    return [str(value)]


def _parse_run_task(value: Any) -> list[RunTaskRef]:
    if value is None or value is False:
        return []
    if isinstance(value, str):
        return [RunTaskRef((value,))]
    if isinstance(value, dict):
        names = tuple(str(n) for n in _as_list(value.get("name")))
        cond = value.get("condition")
        return [RunTaskRef(names, _condition_text(cond) if cond else None, bool(value.get("fork")))]
    if isinstance(value, list):  # routing: the first entry whose condition holds runs
        out: list[RunTaskRef] = []
        for entry in value:
            out += _parse_run_task(entry)
        return out
    raise MakefileError(f"run_task has an unsupported form: {value!r}")


def _parse_task(name: str, raw: Mapping[str, Any]) -> TaskDef:
    deps: list[Dependency] = []
    for d in _as_list(raw.get("dependencies")):
        if isinstance(d, str):
            deps.append(Dependency(d))
        elif isinstance(d, dict) and "name" in d:
            deps.append(Dependency(str(d["name"]), str(d["path"]) if d.get("path") else None))
        else:
            raise MakefileError(f"task {name!r}: unsupported dependency entry {d!r}")
    cond = raw.get("condition")
    return TaskDef(
        name=name,
        dependencies=deps,
        run_task=_parse_run_task(raw.get("run_task")),
        condition=dict(cond) if isinstance(cond, dict) else None,
        condition_script=_script_lines(raw.get("condition_script")),
        command=str(raw["command"]) if raw.get("command") else None,
        args=[str(a) for a in _as_list(raw.get("args"))],
        script=_script_lines(raw.get("script")),
        script_runner=str(raw.get("script_runner", "")),
        cwd=str(raw["cwd"]) if raw.get("cwd") else None,
        description=str(raw.get("description", "")),
        category=str(raw.get("category", "")),
        private=bool(raw.get("private", False)),
        disabled=bool(raw.get("disabled", False)),
    )


def load(path: str | os.PathLike[str], _seen: tuple[Path, ...] = ()) -> Makefile:
    """Parse a Makefile.toml (following `extend`); raises MakefileError with the file named."""
    p = Path(path)
    if p.is_dir():
        p = p / "Makefile.toml"
    p = p.resolve()
    if p in _seen:
        raise MakefileError(f"{p}: `extend` loops back to itself")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MakefileError(f"{p} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise MakefileError(f"{p} is not valid TOML: {exc}") from None
    tasks: dict[str, TaskDef] = {}
    env: dict[str, Any] = {}
    config: dict[str, Any] = {}
    ext = data.get("extend")
    if ext:
        ext_path = ext.get("path") if isinstance(ext, dict) else ext
        if ext_path:
            base = load(p.parent / str(ext_path), _seen + (p,))
            tasks.update(base.tasks)
            env.update(base.env)
            config.update(base.config)
    env.update(data.get("env", {}) or {})
    if isinstance(data.get("config"), dict):
        config.update(data["config"])
    raw_tasks = data.get("tasks", {}) or {}
    if not isinstance(raw_tasks, dict):
        raise MakefileError(f"{p}: [tasks] is not a table")
    for name, raw in raw_tasks.items():
        if not isinstance(raw, dict):
            raise MakefileError(f"{p}: [tasks.{name}] is not a table")
        tasks[name] = _parse_task(name, raw)
    return Makefile(p, tasks, env, config)


# ---- conditions -------------------------------------------------------------------------

def _condition_text(cond: Mapping[str, Any] | None, script: list[str] | None = None) -> str:
    parts = []
    for key, value in (cond or {}).items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}: {value}")
    if script:
        parts.append("condition_script: " + "; ".join(s.strip() for s in script if s.strip())[:80])
    return "; ".join(parts)


def evaluate_condition(cond: Mapping[str, Any] | None, env: Mapping[str, str],
                       cwd: Path) -> bool | None:
    """True/False when decidable before the run, None when only the run can tell."""
    if not cond:
        return True
    verdict = True
    for key, value in cond.items():
        if key == "platforms":
            host = {"Linux": "linux", "Darwin": "mac", "Windows": "windows"}.get(platform.system(), "")
            verdict &= host in [str(v) for v in _as_list(value)]
        elif key == "env_set":
            verdict &= all(env.get(str(v)) is not None for v in _as_list(value))
        elif key == "env_not_set":
            verdict &= all(env.get(str(v)) is None for v in _as_list(value))
        elif key == "env_true":
            verdict &= all(env.get(str(v), "").lower() in ("1", "true", "yes") for v in _as_list(value))
        elif key == "env_false":
            verdict &= all(env.get(str(v), "false").lower() in ("0", "false", "no", "")
                           for v in _as_list(value))
        elif key == "env" and isinstance(value, dict):
            verdict &= all(env.get(str(k)) == str(v) for k, v in value.items())
        elif key in ("files_exist", "files_not_exist"):
            paths = [_expand_known(str(v), env, cwd) for v in _as_list(value)]
            if any(x is None for x in paths):
                return None
            exists = [Path(x).exists() for x in paths if x is not None]
            verdict &= all(exists) if key == "files_exist" else not any(exists)
        else:  # rust_version, channels, profiles, ... : decided by cargo-make at run time
            return None
    return verdict


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_known(text: str, env: Mapping[str, str], cwd: Path) -> str | None:
    unknown = False

    def sub(m: re.Match[str]) -> str:
        nonlocal unknown
        if m.group(1) in env:
            return str(env[m.group(1)])
        unknown = True
        return m.group(0)

    out = _VAR.sub(sub, text)
    if unknown:
        return None
    return str(cwd / out) if not os.path.isabs(out) else out


# ---- the plan ---------------------------------------------------------------------------

@dataclass
class PlanStep:
    order: int
    task: str
    kind: str  # task | external | built-in | run_task
    depth: int = 0
    via: str = ""  # how it got into the plan: "requested", "dependency of X", "run_task of X"
    action: str = ""
    condition: str = ""
    will_run: str = "yes"  # yes | no (condition false) | at run time
    cwd: str = ""
    path: str = ""  # external dependency's directory (as written)
    description: str = ""

    def to_row(self) -> dict[str, Any]:
        return {
            "#": self.order, "task": ("  " * self.depth) + self.task, "kind": self.kind,
            "via": self.via, "runs": self.will_run, "condition": self.condition,
            "action": self.action[:120], "cwd": self.cwd or self.path,
        }


@dataclass
class Plan:
    requested: list[str]
    steps: list[PlanStep]
    source: str  # path of Makefile.toml, or "sandbox"
    notes: list[str] = field(default_factory=list)

    def task_names(self) -> list[str]:
        """Names that will print `Running Task:` in this process (the progress bar's units)."""
        seen: list[str] = []
        for s in self.steps:
            if s.kind in ("task", "built-in", "run_task") and s.task not in seen:
                seen.append(s.task)
        return seen

    def table(self):  # -> pandas.DataFrame
        import pandas as pd
        return pd.DataFrame([s.to_row() for s in self.steps],
                            columns=["#", "task", "kind", "via", "runs", "condition", "action", "cwd"])

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "source": self.source, "notes": self.notes,
                "steps": [s.to_row() for s in self.steps]}


MAX_PLAN_STEPS = 20000


class PlanTooLarge(MakefileError):
    pass


def resolve(mf: Makefile, requested: str | list[str], env: Mapping[str, str] | None = None,
            max_depth: int = 20) -> Plan:
    """The run order for `requested` (one task, or several run one after another)."""
    names = [requested] if isinstance(requested, str) else list(requested)
    env = dict(os.environ if env is None else env)
    env.setdefault("CARGO_MAKE_WORKING_DIRECTORY", str(mf.path.parent))
    steps: list[PlanStep] = []
    notes: list[str] = []
    for name in names:
        if name not in mf.tasks:
            raise UnknownTask(name, mf.tasks)
        # Each `cargo make NAME` is its own flow: tasks run once per flow.
        _flow(mf, name, env, steps, depth=0, via="requested", max_depth=max_depth)
    for i, s in enumerate(steps, 1):
        s.order = i
    if any(s.kind == "external" for s in steps):
        notes.append("external dependencies ({ name, path }) run `cargo make` in another "
                     "directory; their own tasks are not expanded here")
    if any(s.will_run == "no" for s in steps):
        notes.append("tasks whose condition is false are skipped by cargo-make "
                     "(their dependencies still run)")
    return Plan(names, steps, str(mf.path), notes)


def _flow(mf: Makefile, root: str, env: Mapping[str, str], steps: list[PlanStep], depth: int,
          via: str, max_depth: int) -> None:
    """One cargo-make flow: depth-first post-order over dependencies (iterative: deep chains are fine)."""
    done: set[str] = set()
    on_stack: set[str] = set()
    path: list[str] = []
    # frames: [task name, via text, iterator over its dependencies]
    frames: list[tuple[str, str, Any]] = []

    def enter(name: str, via_text: str, referenced_by: str | None) -> None:
        if name in on_stack:
            raise CyclicDependency(path[path.index(name):] + [name])
        if name in done:
            return
        task = mf.tasks.get(name)
        if task is None:
            if name in BUILTIN_TASKS:
                done.add(name)
                steps.append(PlanStep(0, name, "built-in", depth, via_text,
                                      action="cargo-make's default task of this name"))
                return
            raise UnknownTask(name, mf.tasks, referenced_by)
        on_stack.add(name)
        path.append(name)
        frames.append((name, via_text, iter(task.dependencies)))

    enter(root, via, None)
    while frames:
        name, via_text, deps = frames[-1]
        dep = next(deps, None)
        if dep is not None:
            if dep.path is not None:
                key = f"{dep.path}::{dep.name}"
                if key not in done:
                    done.add(key)
                    steps.append(PlanStep(0, dep.name, "external", depth, f"dependency of {name}",
                                          action=f"cargo make {dep.name} (in {dep.path})",
                                          path=dep.path))
                continue
            enter(dep.name, f"dependency of {name}", name)
            continue
        frames.pop()
        path.pop()
        on_stack.discard(name)
        done.add(name)
        _emit(mf, mf.tasks[name], env, steps, depth, via_text, max_depth)


def _emit(mf: Makefile, task: TaskDef, env: Mapping[str, str], steps: list[PlanStep], depth: int,
          via_text: str, max_depth: int) -> None:
    name = task.name
    decided = evaluate_condition(task.condition, env, mf.path.parent)
    if task.condition_script:
        decided = None if decided is not False else False
    will = {True: "yes", False: "no", None: "at run time"}[decided]
    if task.disabled:
        will = "no"
    step = PlanStep(0, name, "run_task" if task.run_task else "task", depth, via_text,
                    action=task.action(), will_run=will,
                    condition=_condition_text(task.condition, task.condition_script),
                    cwd=task.cwd or "", description=task.description)
    if task.run_task:
        targets = " | ".join(",".join(r.names) + (f" if {r.condition}" if r.condition else "")
                             for r in task.run_task)
        step.action = f"run_task -> {targets}"
    steps.append(step)
    if len(steps) > MAX_PLAN_STEPS:
        raise PlanTooLarge(f"the plan grew past {MAX_PLAN_STEPS} steps (run_task sub-flows re-run "
                           f"their whole dependency tree); last task added: {name!r}")
    if task.run_task and will != "no":
        if depth >= max_depth:
            raise CyclicDependency([name, f"... run_task nesting deeper than {max_depth} levels"])
        # A routing list runs the first matching entry; without evaluating, show the first.
        for target in task.run_task[0].names:
            if target not in mf.tasks and target not in BUILTIN_TASKS:
                raise UnknownTask(target, mf.tasks, name)
            _flow(mf, target, env, steps, depth + 1, f"run_task of {name}", max_depth)


def artifact_names(mf: Makefile, plan: Plan | None, arch: str) -> list[str]:
    """File names the (planned) tasks write under static/blobs/internal/<arch>/."""
    pat = re.compile(r"static/blobs/internal/" + re.escape(arch) + r"/([A-Za-z0-9_.+-]+)")
    wanted = set(plan.task_names()) if plan else set(mf.tasks)
    found: list[str] = []
    for name in sorted(wanted):
        task = mf.tasks.get(name)
        if not task:
            continue
        for text in task.texts():
            for m in pat.finditer(text):
                if m.group(1) not in found:
                    found.append(m.group(1))
    # `cwd = "static/blobs/internal/<arch>"` + `cp X NAME`: the last arg is the file name.
    for name in sorted(wanted):
        task = mf.tasks.get(name)
        if task and task.cwd and task.cwd.rstrip("/").endswith(f"static/blobs/internal/{arch}") \
                and task.command in ("cp", "mv") and task.args:
            base = os.path.basename(task.args[-1])
            if base and "$" not in base and base not in found:
                found.append(base)
    return found
