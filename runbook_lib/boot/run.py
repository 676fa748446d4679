"""What a boot produced, as plain data: the pre-flight plan and the run.

Renderers (:mod:`.report`) and the step (:mod:`.step`) both read these; neither imports the
other's behaviour, so there is no import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..result import Status
from .analyze import Analysis
from .standin import Request


@dataclass
class Check:
    check: str
    status: str  # ok | warn | FAIL | ERROR
    detail: str
    fix: str = ""


@dataclass
class Plan:
    """What preflight decided, for :func:`runbook_lib.boot.step.boot`."""

    params: dict[str, Any]
    artifacts: Path
    accel: str
    checks: list[Check] = field(default_factory=list)
    status: Status = Status.PASS
    boot_path: Any = None  # artifact_set.BootPath: the first stage, the UKI, the command line

    def first_problem(self) -> Check | None:
        for level in ("ERROR", "FAIL"):
            for c in self.checks:
                if c.status == level:
                    return c
        return None


@dataclass
class BootRun:
    """Everything a boot produced; :func:`runbook_lib.boot.step.result` turns it into the StepResult."""

    status: Status
    summary: str
    cause: str | None
    fix: str | None
    command: str = ""
    analysis: Analysis | None = None
    requests: list[Request] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timing: dict[str, float | None] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    # trouble of the host/emulator, not of the image (a stalled VM that was booted again)
    infra_events: list[dict[str, Any]] = field(default_factory=list)
    # network = testnet: the network's description and what its DHCP server saw and answered
    testnet: list[tuple[str, str]] = field(default_factory=list)
    dhcp: list[Any] = field(default_factory=list)  # testnet.DhcpEvent
