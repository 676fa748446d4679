"""mkosi's JSON manifest (``carbide.manifest``) as a package table, diffed against the last build.

mkosi writes ``{"manifest_version": 1, "config": {...}, "packages": [{"type", "name",
"version", "architecture"}, ...]}``. The previous build's manifest is kept in a state
directory beside the reports, so each run can say which packages were added, removed
or changed since the last one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str = ""
    type: str = ""


def parse(text: str) -> dict[str, Package]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("packages"), list):
        raise ManifestError("no `packages` list: not an mkosi JSON manifest")
    out: dict[str, Package] = {}
    for p in data["packages"]:
        if not isinstance(p, dict) or "name" not in p:
            continue
        pkg = Package(str(p["name"]), str(p.get("version", "")), str(p.get("architecture", "")),
                      str(p.get("type", "")))
        key = pkg.name if pkg.name not in out else f"{pkg.name}:{pkg.architecture}"
        out[key] = pkg
    return out


def load(path: str | os.PathLike[str]) -> dict[str, Package]:
    return parse(Path(path).read_text(encoding="utf-8", errors="replace"))


@dataclass
class ManifestDiff:
    added: list[Package] = field(default_factory=list)
    removed: list[Package] = field(default_factory=list)
    changed: list[tuple[Package, Package]] = field(default_factory=list)  # (before, after)
    previous_found: bool = True

    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        if not self.previous_found:
            return "first build here: no previous manifest to compare with (this one is kept for next time)"
        if self.empty():
            return "no package changes since the previous build"
        return (f"{len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.changed)} changed since the previous build")

    def table(self):  # -> pandas.DataFrame
        import pandas as pd
        rows = [{"change": "added", "package": p.name, "before": "", "after": p.version} for p in self.added]
        rows += [{"change": "removed", "package": p.name, "before": p.version, "after": ""} for p in self.removed]
        rows += [{"change": "changed", "package": b.name, "before": b.version, "after": a.version}
                 for b, a in self.changed]
        return pd.DataFrame(rows, columns=["change", "package", "before", "after"])


def diff(before: dict[str, Package] | None, after: dict[str, Package]) -> ManifestDiff:
    if before is None:
        return ManifestDiff(previous_found=False)
    d = ManifestDiff()
    for k in sorted(after.keys() - before.keys()):
        d.added.append(after[k])
    for k in sorted(before.keys() - after.keys()):
        d.removed.append(before[k])
    for k in sorted(before.keys() & after.keys()):
        if before[k].version != after[k].version:
            d.changed.append((before[k], after[k]))
    return d


def packages_table(pkgs: dict[str, Package]):  # -> pandas.DataFrame
    import pandas as pd
    return pd.DataFrame([{"package": p.name, "version": p.version, "arch": p.architecture,
                          "type": p.type} for p in sorted(pkgs.values(), key=lambda p: p.name)],
                        columns=["package", "version", "arch", "type"])


def state_key(tree: str | os.PathLike[str], arch: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(Path(tree).resolve()).strip("/"))[-80:]
    return f"{slug}--{arch}"


def previous_path(state_dir: str | os.PathLike[str], tree: str | os.PathLike[str], arch: str) -> Path:
    return Path(state_dir) / f"{state_key(tree, arch)}.manifest.json"


def remember(current: str | os.PathLike[str], state_dir: str | os.PathLike[str],
             tree: str | os.PathLike[str], arch: str) -> Path:
    """Keep this build's manifest as the next build's 'previous'."""
    dest = previous_path(state_dir, tree, arch)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(current, dest)
    return dest


def compare_with_previous(current: str | os.PathLike[str], state_dir: str | os.PathLike[str],
                          tree: str | os.PathLike[str], arch: str) -> tuple[dict[str, Package], ManifestDiff]:
    now = load(current)
    prev_path = previous_path(state_dir, tree, arch)
    before: dict[str, Package] | None = None
    if prev_path.exists():
        try:
            before = load(prev_path)
        except ManifestError:
            before = None
    return now, diff(before, now)


def summarize(pkgs: dict[str, Package]) -> dict[str, Any]:
    return {"packages": len(pkgs)}
