"""The one artifact model: what a file should be (:class:`ArtifactSpec`: name, size band, who
writes it) and what it is (:class:`ArtifactRow` in an :class:`Inventory`: size, band status,
fresh or stale, owner, mode).

Step 2 checks the build's output with it, the sandbox builder its own outputs, and step 3 the
files it is about to boot, so a truncated ``carbide.efi`` is called the same thing everywhere.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .report.render import human_size

K = 1024
M = 1024 * 1024


@dataclass(frozen=True)
class ArtifactSpec:
    name: str
    min_bytes: int = 1
    max_bytes: int | None = None
    about: str = ""  # the size the docs show, for the table
    required: bool = True  # optional files (autoexec.ipxe) are reported, never a failure
    produced_by: str = ""  # task that writes it, when known
    description: str = ""

    def band(self) -> str:
        hi = human_size(self.max_bytes) if self.max_bytes else "∞"
        return f"{human_size(self.min_bytes)} – {hi}" + (f" (docs: {self.about})" if self.about else "")


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass
class ArtifactRow:
    name: str
    expected: bool
    status: str  # ok | missing | empty | truncated | too large | extra | dir | absent (optional)
    size: int | None = None
    band: str = ""
    mtime: float | None = None
    fresh: bool | None = None
    owner: str = ""
    group: str = ""
    mode: str = ""
    note: str = ""

    def problem(self, require_fresh: bool = False) -> str | None:
        """'missing', 'empty', 'truncated', 'too large', 'stale' (only with require_fresh) or None."""
        if self.status in ("missing", "empty", "truncated", "too large"):
            return self.status
        if require_fresh and self.fresh is False:
            return "stale"
        return None

    def to_row(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "expected": "yes" if self.expected else "no",
            "status": self.status,
            "size": human_size(self.size) if self.size is not None else "-",
            "bytes": self.size,
            "expected size": self.band,
            "modified": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.mtime)) if self.mtime else "-",
            "fresh": {True: "yes", False: "no", None: "-"}[self.fresh],
            "owner": f"{self.owner}:{self.group}" if self.owner else "-",
            "mode": self.mode or "-",
            "note": self.note,
        }


@dataclass
class Inventory:
    directory: Path
    rows: list[ArtifactRow]
    leftovers: list[str] = field(default_factory=list)  # .mkosi-* directories
    build_start: float | None = None
    source: str = ""  # where the expected set came from

    def problems(self, require_fresh: bool) -> list[ArtifactRow]:
        """Expected files that are wrong; with `require_fresh`, also those this build did not write."""
        return [r for r in self.rows if r.expected and r.problem(require_fresh)]

    def stale(self) -> list[ArtifactRow]:
        return [r for r in self.rows if r.expected and r.fresh is False]

    def table(self):  # -> pandas.DataFrame
        import pandas as pd
        cols = ["file", "expected", "status", "size", "bytes", "expected size", "modified", "fresh",
                "owner", "mode", "note"]
        return pd.DataFrame([r.to_row() for r in self.rows], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "source": self.source, "leftovers": self.leftovers,
                "rows": [r.to_row() for r in self.rows]}


# mtime granularity and clock skew between the builder and us
FRESH_SLACK_S = 2.0


def inventory(directory: str | os.PathLike[str], expected: Iterable[ArtifactSpec],
              build_start: float | None = None, source: str = "") -> Inventory:
    d = Path(directory)
    specs = list(expected)
    rows: list[ArtifactRow] = []
    present: dict[str, os.stat_result] = {}
    leftovers: list[str] = []
    if d.is_dir():
        for entry in sorted(d.iterdir()):
            try:
                present[entry.name] = entry.lstat()
            except FileNotFoundError:
                continue
            if entry.name.startswith(".mkosi-") and entry.is_dir():
                leftovers.append(entry.name)
    for spec in specs:
        st = present.get(spec.name)
        if st is None:
            if spec.required:
                rows.append(ArtifactRow(spec.name, True, "missing", band=spec.band(),
                                        note=f"not in {d}"))
            else:
                rows.append(ArtifactRow(spec.name, False, "absent (optional)", band=spec.band(),
                                        note="optional: only some build paths write it"))
            continue
        rows.append(_row(spec.name, st, spec, build_start))
    names = {s.name for s in specs}
    for name, st in present.items():
        if name in names or name in leftovers or name.startswith("."):
            continue  # .gitignore, builders' own bookkeeping
        row = _row(name, st, None, build_start)
        rows.append(row)
    return Inventory(d, rows, leftovers, build_start, source)


def _row(name: str, st: os.stat_result, spec: ArtifactSpec | None, build_start: float | None) -> ArtifactRow:
    fresh = None if build_start is None else st.st_mtime >= build_start - FRESH_SLACK_S
    row = ArtifactRow(name, spec is not None and spec.required, "ok", size=st.st_size,
                      band=spec.band() if spec else "", mtime=st.st_mtime, fresh=fresh,
                      owner=_owner(st.st_uid), group=_group(st.st_gid),
                      mode=stat.filemode(st.st_mode))
    if stat.S_ISDIR(st.st_mode):
        row.status = "dir" if spec is None else "missing"
        row.note = "a directory, not a file"
        return row
    if spec is None:
        row.status = "extra"
        row.note = "not in the expected set"
        return row
    if st.st_size == 0:
        row.status, row.note = "empty", "0 bytes: the build did not write it"
    elif st.st_size < spec.min_bytes:
        row.status = "truncated"
        row.note = f"smaller than {human_size(spec.min_bytes)}: an interrupted or failed write?"
    elif spec.max_bytes and st.st_size > spec.max_bytes:
        row.status, row.note = "too large", f"larger than {human_size(spec.max_bytes)}"
    elif fresh is False:
        row.note = "older than this build's start: not rewritten by this run"
    return row


