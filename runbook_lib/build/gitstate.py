"""A carbide checkout's git state, its submodules, and its Makefile's ``[env]`` scripts.

Read with git itself (``rev-parse``, ``status --porcelain``, ``tag``, ``.gitmodules`` through
``git config -f``, ``submodule status``) and, for the ``[env]`` table, by running each
``{ script = [...] }`` entry the way cargo-make does before any task: with ``sh`` in the
Makefile's directory, earlier entries already in the environment, the output (trimmed) as the
value. A failing entry (``cargo locate-project`` outside a workspace, ``git`` missing) is what
makes a build die minutes later with an error far from its cause.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import shell

GIT_TIMEOUT_S = 30.0
ENV_SCRIPT_TIMEOUT_S = 60.0


def _git(root: Path, *args: str, timeout: float = GIT_TIMEOUT_S) -> shell.RunResult:
    return shell.capture(["git", "-C", str(root), *args], timeout=timeout)


@dataclass
class GitState:
    is_repo: bool
    commit: str = ""
    branch: str = ""
    dirty: list[str] = field(default_factory=list)  # `git status --porcelain` lines (tracked files)
    tags: int = 0
    describe: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"is_repo": self.is_repo, "commit": self.commit, "branch": self.branch,
                "dirty": len(self.dirty), "dirty_files": self.dirty[:20], "tags": self.tags,
                "describe": self.describe, "error": self.error}


def git_state(root: Path) -> GitState:
    if not shutil.which("git"):
        return GitState(False, error="git is not installed")
    top = _git(root, "rev-parse", "--show-toplevel")
    if not top.ok:
        return GitState(False, error=(top.tail[0] if top.tail else f"exit {top.returncode}"))
    toplevel = Path(top.tail[0].strip()) if top.tail else root
    if toplevel.resolve() != root.resolve():
        return GitState(False, error=f"{root} is not the top of a git clone: it lies inside the "
                                     f"repository {toplevel}")
    head = _git(root, "rev-parse", "HEAD")
    if not head.ok:
        return GitState(False, error=(head.tail[0] if head.tail else f"exit {head.returncode}"))
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--ignore-submodules=all")
    tags = _git(root, "tag", "--list")
    desc = _git(root, "describe", "--tags", "--first-parent", "--always", "--long")
    return GitState(
        True, commit=head.tail[0].strip() if head.tail else "",
        branch=branch.tail[0].strip() if branch.ok and branch.tail else "",
        dirty=[ln for ln in status.tail if ln.strip()] if status.ok else [],
        tags=len([t for t in tags.tail if t.strip()]) if tags.ok else 0,
        describe=desc.tail[0].strip() if desc.ok and desc.tail else "")


@dataclass
class Submodule:
    name: str
    path: str  # relative to the repository root, as in .gitmodules
    url: str = ""
    state: str = "unknown"  # ok | not initialised | wrong commit | conflict | unknown
    commit: str = ""  # the checked-out commit (or the recorded one when not initialised)
    recorded: str = ""  # the commit the superproject records
    describe: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "url": self.url, "state": self.state,
                "commit": self.commit, "recorded": self.recorded, "describe": self.describe}


def gitmodules(root: Path) -> list[Submodule]:
    """The submodules `.gitmodules` declares, in file order (none when it is absent)."""
    if not (root / ".gitmodules").is_file():
        return []
    res = shell.capture(["git", "config", "-f", str(root / ".gitmodules"), "--get-regexp",
                         r"^submodule\..*\.(path|url)$"], timeout=GIT_TIMEOUT_S)
    subs: dict[str, Submodule] = {}
    for ln in res.tail if res.ok else []:
        key, _, value = ln.partition(" ")
        name, _, attr = key[len("submodule."):].rpartition(".")
        sub = subs.setdefault(name, Submodule(name, ""))
        if attr == "path":
            sub.path = value.strip()
        elif attr == "url":
            sub.url = value.strip()
    return [s for s in subs.values() if s.path]


_STATES = {" ": "ok", "-": "not initialised", "+": "wrong commit", "U": "conflict"}


def submodule_status(root: Path, subs: list[Submodule]) -> list[Submodule]:
    """Fill each submodule's state from `git submodule status` (recorded commit from the index)."""
    if not subs:
        return subs
    res = _git(root, "submodule", "status", "--", *[s.path for s in subs])
    by_path = {s.path: s for s in subs}
    for ln in res.tail if res.ok else []:
        if len(ln) < 42:
            continue
        flag, sha, rest = ln[0], ln[1:41], ln[42:]
        path, _, desc = rest.partition(" ")
        sub = by_path.get(path)
        if sub is None:
            continue
        sub.state = _STATES.get(flag, "unknown")
        sub.commit = sha
        sub.describe = desc.strip("() ")
    for sub in subs:
        rec = _git(root, "ls-tree", "HEAD", "--", sub.path)
        if rec.ok and rec.tail and rec.tail[0].split()[1:2] == ["commit"]:
            sub.recorded = rec.tail[0].split()[2]
        if sub.state == "unknown" and not res.ok:
            sub.describe = res.tail[0] if res.tail else ""
    return subs


def submodule_containing(subs: list[Submodule], root: Path, path: Path | str) -> Submodule | None:
    """The submodule whose directory holds `path` (absolute, or relative to the root)."""
    p = Path(path)
    try:
        rel = (p if not p.is_absolute() else p.resolve().relative_to(root.resolve())).as_posix()
    except ValueError:
        return None
    for sub in subs:
        if rel == sub.path or rel.startswith(sub.path.rstrip("/") + "/"):
            return sub
    return None


@dataclass
class EnvEntry:
    name: str
    kind: str  # script | value | plain
    source: str  # the script or value as written
    value: str = ""
    ok: bool = True
    error: str = ""  # first stderr line / exit code of a failing script

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "source": self.source, "value": self.value,
                "ok": self.ok, "error": self.error}


def _expand(text: str, env: Mapping[str, str]) -> str:
    from .plan_tools import expand

    return expand(text, env)


def run_env(mf_env: Mapping[str, Any], cwd: Path, base_env: Mapping[str, str] | None = None,
            timeout: float = ENV_SCRIPT_TIMEOUT_S) -> tuple[dict[str, str], list[EnvEntry]]:
    """Evaluate a Makefile's `[env]` table like cargo-make: in order, scripts run with `sh`.

    Returns the resulting variables (only those the table defines, plus CARGO_MAKE_*) and one
    entry per variable. Tables that are profiles (`[env.development]`) are skipped.
    """
    env: dict[str, str] = dict(os.environ if base_env is None else base_env)
    env.setdefault("CARGO_MAKE_WORKING_DIRECTORY", str(cwd))
    defined: dict[str, str] = {"CARGO_MAKE_WORKING_DIRECTORY": env["CARGO_MAKE_WORKING_DIRECTORY"]}
    entries: list[EnvEntry] = []
    for name, raw in mf_env.items():
        if isinstance(raw, dict) and "script" in raw:
            lines = raw["script"] if isinstance(raw["script"], list) else [str(raw["script"])]
            script = "\n".join(str(x) for x in lines)
            with tempfile.NamedTemporaryFile(prefix="runbook-env-", suffix=".err") as errf:
                res = shell.capture(["sh", "-c", _expand(script, env)], timeout=timeout, cwd=cwd,
                                    env=env, stderr_path=errf.name)
                err = [ln for ln in Path(errf.name).read_text(errors="replace").splitlines()
                       if ln.strip()]
            value = "\n".join(res.tail).strip()
            ok = res.ok and not err
            why = ""
            if not ok:
                why = err[0].strip() if err else (
                    f"timed out after {timeout:.0f}s" if res.timed_out else f"exit code {res.returncode}")
            entry = EnvEntry(name, "script", script.strip(), value, ok, why)
        elif isinstance(raw, dict) and "value" in raw:
            entry = EnvEntry(name, "value", str(raw["value"]), _expand(str(raw["value"]), env))
        elif isinstance(raw, (str, int, float, bool)):
            entry = EnvEntry(name, "plain", str(raw), _expand(str(raw), env))
        else:
            continue  # profile tables, conditional values, lists: not needed for the checks
        env[name] = entry.value
        defined[name] = entry.value
        entries.append(entry)
    return defined, entries
