"""The programs a cargo-make plan will call, read from the plan itself.

Each task of the plan contributes the first word of its ``command`` and of every command in its
``script`` (split on ``;``, ``&&``, ``||``, ``|``, newlines and ``$(...)``), with the task's own
``cwd``. ``/bin/bash -c "..."`` is read as a script. A task whose ``condition`` is false, or
decided only when cargo-make runs, needs its programs only under that condition; so does a
command inside a script's ``if [ -n "${X}" ]`` branch. Those uses are optional, with the
condition shown. ``script_runner = "@duckscript"`` scripts run inside cargo-make and call
nothing. So a task added upstream is checked without a code change here.

Nothing here runs a command: :func:`tool_uses` only reads the plan.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .makefile import Makefile, Plan, TaskDef

# Present on every Debian/Ubuntu host (coreutils and the Essential set) or shell syntax: not rows.
BASICS = frozenset("""
[ [[ ]] { } ! : . source alias bg break builtin cd command continue declare echo eval exec exit export
false fg getopts hash jobs kill let local logout popd printf pushd pwd read readonly return set shift
shopt test times trap true type typeset ulimit umask unalias unset wait
cp mv rm mkdir rmdir ln cat ls chmod chown chgrp touch dirname basename cut tr head tail sort uniq wc tee
date env sleep mktemp readlink realpath stat du df id whoami uname nproc yes seq expr printenv dd sync
install truncate split md5sum sha256sum sha1sum base64 od nl fold paste comm join csplit tac shuf
sed grep egrep fgrep find xargs tar gzip gunzip zcat sh bash dash diff cmp which hostname
""".split())
KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for",
                      "case", "esac", "in", "function", "select", "time", "coproc"})
# Words that run the next word as the command.
WRAPPERS = frozenset({"sudo", "doas", "nice", "nohup", "time", "exec", "env", "command", "stdbuf",
                      "ionice", "setsid", "timeout"})

# Debian packages for programs tasks commonly call (a hint for the fix; anything else is named
# as a program to install).
PACKAGES = {
    "patch": "patch", "make": "make", "gcc": "gcc", "cc": "gcc", "ld": "binutils", "ld.bfd": "binutils",
    "objcopy": "binutils", "docker": "docker.io", "wget": "wget", "curl": "curl", "jq": "jq",
    "unzip": "unzip", "zip": "zip", "dpkg-scanpackages": "dpkg-dev", "openssl": "openssl",
    "python3": "python3", "fakeroot": "fakeroot", "xz": "xz-utils", "git": "git", "zstd": "zstd",
    "cpio": "cpio", "perl": "perl", "file": "file", "mformat": "mtools", "rsync": "rsync",
    "cargo": "cargo", "rustc": "rustc", "kubectl": "", "kind": "", "helm": "", "mkosi": "mkosi",
    "debootstrap": "debootstrap", "ukify": "systemd-ukify", "qemu-img": "qemu-utils",
    "isohybrid": "syslinux-utils", "genisoimage": "genisoimage", "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class ToolUse:
    """One program called by one task of the plan."""

    word: str  # as the plan calls it, variables expanded where known ("make", "/t/pxe/mkosi/bin/mkosi")
    task: str
    line: str  # the command line it came from (shortened)
    required: bool
    condition: str = ""  # why it is optional ("" when required)
    args: tuple[str, ...] = ()  # the words after it on its command (e.g. mkosi's --profile P)
    cwd: str = ""

    @property
    def name(self) -> str:
        return self.word.rsplit("/", 1)[-1]

    @property
    def is_path(self) -> bool:
        return "/" in self.word


@dataclass
class _Ctx:
    task: str
    required: bool
    condition: str
    cwd: str
    env: Mapping[str, str]
    out: list[ToolUse] = field(default_factory=list)


def expand(text: str, env: Mapping[str, str]) -> str:
    """${VAR}, ${VAR:-default} and $VAR replaced where the value is known; others stay as written."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name in env and str(env[name]) != "":
            return str(env[name])
        if m.group(2) is not None:
            return m.group(2)
        return m.group(0)
    return _VAR.sub(sub, text)


_HEREDOC = re.compile(r"(?<!<)<<(?!<)(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def _join_continuations(lines: Iterable[str]) -> list[str]:
    """Logical lines: backslash continuations joined, here-document bodies left out (data)."""
    out: list[str] = []
    buf = ""
    end: str | None = None
    for ln in "\n".join(lines).splitlines():
        if end is not None:
            if ln.strip() == end:
                end = None
            continue
        m = _HEREDOC.search(ln)
        if m:
            end = m.group(3)
        if ln.rstrip().endswith("\\"):
            buf += ln.rstrip()[:-1] + " "
            continue
        out.append(buf + ln)
        buf = ""
    if buf:
        out.append(buf)
    return out


def _substitutions(line: str) -> tuple[str, list[str]]:
    """`$(...)` and backtick bodies taken out of `line` (they are commands too)."""
    inner: list[str] = []
    out = []
    i = 0
    while i < len(line):
        if line.startswith("$(", i) and not line.startswith("$((", i):
            depth, j = 1, i + 2
            while j < len(line) and depth:
                depth += {"(": 1, ")": -1}.get(line[j], 0)
                j += 1
            inner.append(line[i + 2:j - 1])
            out.append(" _SUBST_ ")
            i = j
            continue
        if line[i] == "`":
            j = line.find("`", i + 1)
            if j > i:
                inner.append(line[i + 1:j])
                out.append(" _SUBST_ ")
                i = j + 1
                continue
        out.append(line[i])
        i += 1
    return "".join(out), inner


def _tokens(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError:  # unbalanced quotes: fall back to plain words
        return line.split()


_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&"}
_REDIRECTS = {">", ">>", "<", "<<", "<<<", ">&", "<&", "&>", "&>>", ">|"}


def _decide_test(tokens: list[str], env: Mapping[str, str]) -> bool | None:
    """`[ -n "${X}" ]`, `[ -z "${X}" ]`, `[ "${X}" = "v" ]` with X known (set or not): their value."""
    t = [x for x in tokens if x not in ("[", "]", "[[", "]]", "test")]
    neg = False
    if t[:1] == ["!"]:
        neg, t = True, t[1:]

    def val(word: str) -> str | None:
        m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", word)
        if m:
            return str(env.get(m.group(1), ""))
        return None if "$" in word else word

    res: bool | None = None
    if len(t) == 2 and t[0] in ("-n", "-z"):
        v = val(t[1])
        if v is not None:
            res = bool(v) if t[0] == "-n" else not v
    elif len(t) == 3 and t[1] in ("=", "==", "!="):
        a, b = val(t[0]), val(t[2])
        if a is not None and b is not None:
            res = (a == b) if t[1] != "!=" else (a != b)
    if res is None:
        return None
    return not res if neg else res


def _scan_script(lines: list[str], ctx: _Ctx) -> None:
    """Walk a shell script's commands, tracking `if` branches."""
    # stack of (branch_active: bool|None, condition text, decided)
    stack: list[tuple[bool | None, str]] = []
    pending_if: list[str] | None = None

    def emit(words: list[str], raw: str) -> None:
        if not words:
            return
        active = [s for s in stack]
        required = ctx.required
        cond = ctx.condition
        for branch, text in active:
            if branch is False:
                required, cond = False, (cond + "; " if cond else "") + f"only when {text}"
            elif branch is None:
                required, cond = False, (cond + "; " if cond else "") + f"only when {text} (decided at run time)"
        _command(words, raw, ctx, required, cond)

    for raw in _join_continuations(lines):
        line, subs = _substitutions(raw)
        for s in subs:
            _scan_script([s], ctx)
        toks = _tokens(line)
        cmd: list[str] = []
        i = 0
        while i <= len(toks):
            tok = toks[i] if i < len(toks) else ";"
            if tok in _SEPARATORS or i == len(toks):
                if pending_if is not None and cmd:
                    pending_if += cmd
                else:
                    emit(cmd, raw.strip())
                cmd = []
                i += 1
                continue
            if tok in _REDIRECTS:
                i += 2
                continue
            if not cmd and tok in KEYWORDS:
                if tok == "if" or (tok == "elif"):
                    if tok == "elif" and stack:
                        stack.pop()
                        stack.append((None, "an elif branch"))
                        stack.append((None, "an elif branch"))
                    pending_if = []
                elif tok == "then" and pending_if is not None:
                    decided = _decide_test(pending_if, ctx.env)
                    text = " ".join(pending_if)[:80]
                    stack.append((decided, text))
                    pending_if = None
                elif tok == "else" and stack:
                    b, text = stack.pop()
                    stack.append((None if b is None else not b, f"not ({text})"))
                elif tok == "fi" and stack:
                    stack.pop()
                    if stack and stack[-1][1] == "an elif branch":
                        stack.pop()
                elif tok in ("for", "case", "select"):
                    # skip to `do` / `in ... )` : words until the next separator are not commands
                    while i + 1 < len(toks) and toks[i + 1] not in _SEPARATORS:
                        i += 1
                i += 1
                continue
            cmd.append(tok)
            i += 1


def _command(words: list[str], raw: str, ctx: _Ctx, required: bool, cond: str) -> None:
    w = [x for x in (expand(word, ctx.env) for word in words) if x != ""]
    while w:
        if _ASSIGN.match(w[0]):
            w.pop(0)
            continue
        if w[0] in WRAPPERS:
            wrapper = w.pop(0)
            if wrapper in ("sudo", "doas"):  # the wrapper itself must exist too
                _record([wrapper], raw, ctx, required, cond)
            while w and (w[0].startswith("-") or _ASSIGN.match(w[0])
                         or (wrapper == "timeout" and re.fullmatch(r"[\d.]+[smhd]?", w[0]))):
                w.pop(0)
            continue
        break
    if not w:
        return
    word = w[0]
    if word in ("bash", "sh", "/bin/bash", "/bin/sh", "/usr/bin/bash") and len(w) >= 3 and w[1] == "-c":
        _scan_script([w[2]], ctx)
        return
    _record([word, *w[1:]], raw, ctx, required, cond)


def _record(w: list[str], raw: str, ctx: _Ctx, required: bool, cond: str) -> None:
    word = w[0]
    if word == "_SUBST_" or "$" in word or word in BASICS or word in KEYWORDS:
        return  # shell syntax, a basic tool, or a program named by a variable the plan cannot know
    ctx.out.append(ToolUse(word, ctx.task, raw[:160], required, "" if required else cond,
                           tuple(w[1:]), ctx.cwd))


def _task_condition(step_runs: str, condition: str) -> tuple[bool, str]:
    if step_runs == "yes":
        return True, ""
    if step_runs == "no":
        return False, f"only when the task's condition holds ({condition}); false now"
    return False, f"only when {condition or 'its condition'} holds (decided at run time)"


def task_uses(task: TaskDef, env: Mapping[str, str], required: bool = True,
              condition: str = "") -> list[ToolUse]:
    """The programs one task calls."""
    ctx = _Ctx(task.name, required, condition, expand(task.cwd or "", env), env)
    if task.command:
        cmd = [task.command, *task.args]
        raw = " ".join(cmd)
        _command(cmd, raw, ctx, required, condition)
    if task.script and task.script_runner not in ("@duckscript", "@rust"):
        if task.script_runner and not task.script_runner.startswith("@"):
            _command([task.script_runner], f"script_runner = {task.script_runner}", ctx, required,
                     condition)
        _scan_script(task.script, ctx)
    return ctx.out


def tool_uses(mf: Makefile, plan: Plan, env: Mapping[str, str]) -> list[ToolUse]:
    """Every program the plan's own tasks call, in plan order (external tasks run elsewhere)."""
    out: list[ToolUse] = []
    seen: set[str] = set()
    for step in plan.steps:
        if step.kind not in ("task", "run_task") or step.task in seen:
            continue
        seen.add(step.task)
        task = mf.tasks.get(step.task)
        if task is None or task.disabled:
            continue
        required, cond = _task_condition(step.will_run, step.condition)
        out += task_uses(task, env, required, cond)
    return out


@dataclass
class ToolNeed:
    """One program, with every task that calls it: required if any required use calls it."""

    word: str
    uses: list[ToolUse]

    @property
    def required(self) -> bool:
        return any(u.required for u in self.uses)

    @property
    def tasks(self) -> list[str]:
        out: list[str] = []
        for u in self.uses:
            if u.task not in out:
                out.append(u.task)
        return out

    @property
    def condition(self) -> str:
        if self.required:
            return ""
        conds: list[str] = []
        for u in self.uses:
            if u.condition and u.condition not in conds:
                conds.append(u.condition)
        return "; ".join(conds)


def group(uses: Iterable[ToolUse]) -> list[ToolNeed]:
    needs: dict[str, ToolNeed] = {}
    for u in uses:
        needs.setdefault(u.word, ToolNeed(u.word, [])).uses.append(u)
    return list(needs.values())


def under(path: str, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False
