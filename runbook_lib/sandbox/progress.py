"""Progress lines in cargo-make's format, so one parser follows carbide and the sandbox.

cargo-make prints ``[cargo-make] INFO - Running Task: NAME``; the sandbox prints
the same lines with the ``[sandbox]`` tag.
"""

from __future__ import annotations

import re
from typing import Sequence

from ..shell import quote

TAG = "[sandbox]"

LINE_RE = re.compile(r"^\[(?P<tool>sandbox|cargo-make)\](?:\[\d+\])? (?P<level>INFO|WARN|ERROR) - (?P<text>.*)$")


def line(level: str, text: str) -> str:
    return f"{TAG} {level} - {text}"


def info(text: str) -> str:
    return line("INFO", text)


def warn(text: str) -> str:
    return line("WARN", text)


def error(text: str) -> str:
    return line("ERROR", text)


def running_task(name: str) -> str:
    return info(f"Running Task: {name}")


def execute_command(argv: Sequence[str]) -> str:
    return info(f"Execute Command: {quote(argv)}")


def command_failed(code: int | None) -> str:
    return error(f"Error while executing command, exit code: {code if code is not None else -1}")


def build_failed() -> str:
    return warn("Build Failed.")


def build_done(seconds: float) -> str:
    return info(f"Build Done in {seconds:.2f} seconds.")
