"""Expected boot artifacts against what is in ``pxe/static/blobs/internal/<arch>/``.

The expected set comes from the tree (file names its planned tasks write under the
artifact directory) plus a named profile: ``docs`` (the set carbide's docs list),
``scout`` (newer carbide trees) or ``sandbox`` (the embedded builder's own list).
Each file gets size + expected band, mtime, fresh/stale against the build start,
owner, mode and a status. Sizes in the docs are "similar to", so bands are wide:
they catch empty and truncated files, not a few MB of drift.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..artifact_model import (FRESH_SLACK_S, K, M, ArtifactRow, ArtifactSpec,  # noqa: F401
                              Inventory, inventory)


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

    return tuple(EXPECTED_ARTIFACTS)


def profile(name: str) -> tuple[ArtifactSpec, ...]:
    if name == "sandbox":
        return sandbox_profile()
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown artifact profile {name!r}; known: docs, scout, sandbox") from None


def spec_for(name: str) -> ArtifactSpec:
    """The widest known spec for a file name (docs, then scout, then sandbox), else >= 1 byte."""
    for specs in (*PROFILES.values(), sandbox_profile()):
        for spec in specs:
            if spec.name == name:
                return spec
    return ArtifactSpec(name)


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


def read_provenance(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sandbox's ``ipxe.provenance.json`` (how iPXE was produced), if present."""
    p = Path(directory) / "ipxe.provenance.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
