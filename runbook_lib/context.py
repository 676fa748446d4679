"""What a notebook needs to start: validated parameters and a log directory."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .params import NotebookSpec

LOG_DIR_ENV = "RUNBOOK_LOG_DIR"


@dataclass
class RunContext:
    spec: NotebookSpec
    params: dict[str, Any]
    log_dir: Path

    def log(self, name: str) -> Path:
        return self.log_dir / name

    def __getitem__(self, key: str) -> Any:
        return self.params[key]


def default_log_dir(name: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Path.cwd() / "runs" / f"{stamp}-{name}"


def start(spec: NotebookSpec, ns: Mapping[str, Any]) -> RunContext:
    """Validate the parameters found in `ns` (a notebook's globals()) and make the log dir."""
    params = spec.from_namespace(ns)
    raw = params.get("log_dir") or os.environ.get(LOG_DIR_ENV) or ""
    log_dir = Path(raw).expanduser() if raw else default_log_dir(spec.name)
    log_dir.mkdir(parents=True, exist_ok=True)
    params["log_dir"] = str(log_dir)
    return RunContext(spec, params, log_dir)
