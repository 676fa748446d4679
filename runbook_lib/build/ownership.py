"""Give ``pxe/static`` back to the user after a root build.

mkosi runs as root, so after a build the files under ``pxe/static`` belong to root
and the next docker-compose build cannot write them. carbide's docs say
``sudo chown -R `whoami` pxe/static/*``; this module finds the paths that need it,
shows the exact command, runs it (through sudo/doas only when not root) and checks
the result. When nothing needs it, it says so and does nothing.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path

from .. import shell


class OwnershipError(Exception):
    pass


@dataclass
class TargetUser:
    name: str
    uid: int
    gid: int
    source: str  # parameter | SUDO_USER | current user


def invoking_user(chown_user: str = "", environ: dict[str, str] | None = None) -> TargetUser:
    """The user the tree should belong to: the parameter, else SUDO_USER, else whoever runs us."""
    env = os.environ if environ is None else environ
    if chown_user:
        name, source = chown_user, "parameter chown_user"
    elif env.get("SUDO_USER"):
        name, source = env["SUDO_USER"], "SUDO_USER"
    else:
        name, source = pwd.getpwuid(os.getuid()).pw_name, "current user"
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise OwnershipError(f"user {name!r} (from {source}) does not exist on this machine") from None
    return TargetUser(pw.pw_name, pw.pw_uid, pw.pw_gid, source)


def foreign_paths(static_dir: str | os.PathLike[str], uid: int, limit: int = 10000) -> list[Path]:
    """Paths under `static_dir` (itself included) not owned by `uid` (symlinks not followed)."""
    root = Path(static_dir)
    out: list[Path] = []
    if not root.exists():
        return out
    if root.lstat().st_uid != uid:
        out.append(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            try:
                if p.lstat().st_uid != uid:
                    out.append(p)
            except FileNotFoundError:
                continue
            if len(out) >= limit:
                return out
    return out


def chown_argv(user: TargetUser, static_dir: str | os.PathLike[str]) -> list[str]:
    """`chown -R user:group DIR` (-R does not follow symlinks: -P is chown's default)."""
    try:
        group = grp.getgrgid(user.gid).gr_name
    except KeyError:
        group = str(user.gid)
    return ["chown", "-R", f"{user.name}:{group}", os.fspath(static_dir)]


@dataclass
class OwnershipReport:
    static_dir: Path
    user: TargetUser | None
    before: list[str] = field(default_factory=list)
    command: str = ""
    ran: bool = False
    after: list[str] = field(default_factory=list)
    skipped_reason: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.after

    def summary(self) -> str:
        if self.error:
            return self.error
        if self.skipped_reason:
            return self.skipped_reason
        who = self.user.name if self.user else "?"
        if self.after:
            return f"{len(self.after)} path(s) under {self.static_dir} still not owned by {who}"
        return f"chowned {len(self.before)} path(s) under {self.static_dir} back to {who}; verified"


def fix(static_dir: str | os.PathLike[str], chown_user: str = "", *, dry_run: bool = False,
        log_path: str | os.PathLike[str] | None = None, timeout: float = 300.0,
        environ: dict[str, str] | None = None) -> OwnershipReport:
    sd = Path(static_dir)
    try:
        user = invoking_user(chown_user, environ)
    except OwnershipError as exc:
        return OwnershipReport(sd, None, error=str(exc))
    rep = OwnershipReport(sd, user)
    if not sd.exists():
        rep.skipped_reason = f"{sd} does not exist: nothing to chown"
        return rep
    before = foreign_paths(sd, user.uid)
    rep.before = [str(p) for p in before]
    argv = chown_argv(user, sd)
    if not before:
        rep.skipped_reason = (f"nothing to do: everything under {sd} already belongs to "
                              f"{user.name} (uid {user.uid}, from {user.source})")
        rep.command = shell.quote(argv)
        return rep
    try:
        rr = shell.run(argv, timeout=timeout, elevate=True, dry_run=dry_run, log_path=log_path)
    except (shell.ElevationUnavailable, shell.CommandNotFound) as exc:
        rep.command = shell.quote(argv)
        rep.error = f"cannot run chown: {exc}"
        return rep
    rep.command = rr.command
    rep.ran = not dry_run
    if dry_run:
        rep.skipped_reason = f"dry run: would run {rr.command}"
        rep.after = []
        return rep
    if not rr.ok:
        rep.error = f"chown exited {rr.returncode}: {rr.tail_text(5)}"
    rep.after = [str(p) for p in foreign_paths(sd, user.uid)]
    return rep
