"""Expected boot artifacts against what is in ``pxe/static/blobs/internal/<arch>/``.

The expected set comes from the tree (file names its planned tasks write under the
artifact directory) plus a named profile: ``docs`` (the set carbide's docs list),
``scout`` (newer carbide trees) or ``sandbox`` (the embedded builder's own list).
Each file gets size + expected band, mtime, fresh/stale against the build start,
owner, mode and a status. Sizes in the docs are "similar to", so bands are wide:
they catch empty and truncated files, not a few MB of drift.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..report.render import human_size

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

    def band(self) -> str:
        hi = human_size(self.max_bytes) if self.max_bytes else "∞"
        return f"{human_size(self.min_bytes)} – {hi}" + (f" (docs: {self.about})" if self.about else "")


PROFILES: dict[str, tuple[ArtifactSpec, ...]] = {
    "docs": (
        ArtifactSpec("carbide.efi", 5 * M, 500 * M, "55M"),
        ArtifactSpec("carbide.manifest", 100, 20 * M, "26k"),
        ArtifactSpec("carbide.root", 10 * M, 4096 * M, "298M"),
        ArtifactSpec("ipxe.efi", 64 * K, 8 * M, "1.1M"),
        ArtifactSpec("ipxe.kpxe", 32 * K, 4 * M, "402k"),
    ),
    "scout": (
        ArtifactSpec("scout.efi", 5 * M, 1024 * M),
        ArtifactSpec("scout.cpio.zst", 5 * M, 2048 * M),
        ArtifactSpec("qcow-imager.efi", 5 * M, 1024 * M),
        ArtifactSpec("ipxe.efi", 64 * K, 8 * M, "1.1M"),
        ArtifactSpec("golan.efi", 64 * K, 8 * M),
    ),
}


def sandbox_profile() -> tuple[ArtifactSpec, ...]:
    """The embedded builder's EXPECTED_ARTIFACTS as specs."""
    from ..sandbox.tasks import EXPECTED_ARTIFACTS

    return tuple(ArtifactSpec(a.name, a.min_bytes, a.max_bytes, required=a.required,
                              produced_by=a.produced_by) for a in EXPECTED_ARTIFACTS)


def profile(name: str) -> tuple[ArtifactSpec, ...]:
    if name == "sandbox":
        return sandbox_profile()
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown artifact profile {name!r}; known: docs, scout, sandbox") from None


def pick_profile(named_in_tree: Iterable[str], mentioned: str = "") -> str:
    """The named profile that fits the tree best (most names in common), docs when unsure."""
    names = set(named_in_tree)
    best, score = "docs", 0
    for pname, specs in PROFILES.items():
        s = len(names & {a.name for a in specs}) + (2 if pname == "scout" and "scout" in mentioned else 0)
        if s > score:
            best, score = pname, s
    return best


def expected_set(profile_specs: Iterable[ArtifactSpec], named_in_tree: Iterable[str]) -> list[ArtifactSpec]:
    """The profile's files plus any other file the tree's planned tasks write there."""
    specs = list(profile_specs)
    known = {a.name for a in specs}
    every = {a.name: a for p in PROFILES.values() for a in p}
    for n in named_in_tree:
        if n not in known:
            specs.append(every.get(n, ArtifactSpec(n)))
            known.add(n)
    return specs


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


def read_provenance(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sandbox's ``ipxe.provenance.json`` (how iPXE was produced), if present."""
    p = Path(directory) / "ipxe.provenance.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
