"""Make log text safe to show: ANSI escapes and control bytes removed, secrets redacted."""

from __future__ import annotations

import re
from typing import Iterable

# CSI / OSC / single-char escapes, as emitted by firmware, iPXE, systemd and cargo.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

_SECRET_PATTERNS = [
    # command-line flags: --root-password VALUE, --api-token='a b'
    re.compile(r"(?i)(--[\w-]*(?:password|passwd|token|secret)(?:=|\s+))('[^']*'|\"[^\"]*\"|[^\s*]\S*)"),
    re.compile(r"(?i)(Bearer\s+)([A-Za-z0-9._~+/-]+=*)"),
    # key=value / key: value for secret-looking keys (root_password=..., api_key: ...)
    re.compile(r"(?i)\b(\w*(?:password|passwd|token|secret|api[_-]?key)\s*[=:]\s*)([^\s*]\S*)"),
    re.compile(r"(?i)(https?://[^\s:/@]+:)([^\s@/]+)(@)"),
]

REDACTED = "***"


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def clean_text(text: str | bytes) -> str:
    """Decode (invalid UTF-8 replaced), drop ANSI escapes and control bytes except \\n and \\t."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = strip_ansi(text).replace("\r\n", "\n").replace("\r", "")
    return _CTRL.sub("", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values and secret-looking key=value pairs."""
    for value in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    for pat in _SECRET_PATTERNS:
        if pat.groups == 3:
            text = pat.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
        else:
            text = pat.sub(lambda m: m.group(1) + REDACTED, text)
    return text
