"""Input hashing: a task is rebuilt only when what goes into it changed.

A task's key covers its part of the shipped config tree (paths, contents and
executable bits), its parameters and the versions of the tools that build it.
Secrets enter only through a keyed digest (HMAC-SHA256), never in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

_SECRET_SALT = b"carbide-sandbox-input-v1"


def tree_digest(root: Path, skip: Callable[[tuple[str, ...]], bool] | None = None) -> str:
    """sha256 over every file below `root`: relative path, executable bit, content.

    `skip(relative parts)` leaves out a file or a whole directory (build outputs, local config).
    """
    h = hashlib.sha256()
    entries: list[tuple[str, ...]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).parts
        keep = [d for d in dirnames if not (skip and skip(rel_dir + (d,)))]
        # a symlink to a directory is an entry of its own (os.walk does not descend into it)
        entries += [rel_dir + (d,) for d in keep if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in keep if not os.path.islink(os.path.join(dirpath, d))]
        entries += [rel_dir + (f,) for f in filenames if not (skip and skip(rel_dir + (f,)))]
    for rel in sorted(entries):
        p = root.joinpath(*rel)
        h.update("/".join(rel).encode() + b"\0")
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode() + b"\0")
            continue
        h.update(b"X" if os.access(p, os.X_OK) else b"-")
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def secret_digest(value: str) -> str:
    """A keyed digest that changes with the secret and does not contain it.

    It only feeds a cache key that never leaves this machine (the key names a cache
    directory; stamps and reports show the secret's entry as ``***``), so no key
    stretching is needed. Deterministic: the same secret gives the same key in every run.
    """
    return hmac.new(_SECRET_SALT, value.encode(), hashlib.sha256).hexdigest()


def input_key(task: str, parts: dict[str, Any]) -> str:
    """Stable key of a task's inputs (order-independent JSON of `parts`)."""
    blob = json.dumps({"task": task, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def describe_parts(parts: dict[str, Any], secret_names: Iterable[str] = ()) -> dict[str, Any]:
    """`parts` for display/provenance with secret-derived entries masked."""
    hidden = set(secret_names)
    return {k: ("***" if k in hidden else v) for k, v in parts.items()}
