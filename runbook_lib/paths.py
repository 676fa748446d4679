"""Where things live by default (XDG locations), shared by every step."""

from __future__ import annotations

import os
from pathlib import Path

APP = "carbide-runbooks"
ARTIFACT_SUBDIR = Path("pxe/static/blobs/internal")


def _xdg(var: str, fallback: str) -> Path:
    raw = os.environ.get(var)
    return Path(raw) if raw else Path.home() / fallback


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / APP


def cache_dir() -> Path:
    """mkosi package cache, iPXE source/build trees, downloaded iPXE packages."""
    return _xdg("XDG_CACHE_HOME", ".cache") / APP


def sandbox_workdir(override: str | os.PathLike[str] | None = None) -> Path:
    """The sandbox's tree root: holds pxe/static/blobs/internal/<arch>/ like a carbide checkout."""
    if override:
        return Path(override).expanduser().resolve()
    return data_dir() / "sandbox"


def artifacts_dir(root: str | os.PathLike[str], arch: str = "x86_64") -> Path:
    """`<root>/pxe/static/blobs/internal/<arch>` for a carbide checkout or the sandbox workdir."""
    return Path(root) / ARTIFACT_SUBDIR / arch


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
