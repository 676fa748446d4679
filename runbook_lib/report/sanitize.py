"""Make log text safe to show: ANSI escapes and control bytes removed, secrets redacted.

:func:`redact` finds secrets three ways:

1. the values of secret parameters (exact text, wherever they occur);
2. detect-secrets' detectors: its token detectors (AWS, GitHub, GitLab, JWT, Slack, Stripe,
   npm, PyPI, OpenAI, basic-auth URLs, ...) and its keyword detector (``password = "..."``);
3. the shapes detect-secrets lacks in logs: private key blocks (multi-line), ``curl -u
   user:pass``, ``--password VALUE`` flags, unquoted ``key = value``, ``Bearer`` tokens and URL
   credentials.

Build logs are long (MBs) and every report output goes through here, so 2 and 3 only look at
lines that could hold a secret: a line with a secret-ish word (``pass``, ``token``, ``key``,
``@`` ...) or a run of 16 letters and digits (every token shape detect-secrets knows has one).
detect-secrets' high-entropy, IP-address and IBM/Cloudant/Softlayer detectors are not used:
they would mangle sha256 sums, addresses and paths, or cost seconds per 10 MB for shapes the
keyword rules already cover.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Iterable, Iterator

# CSI / OSC / single-char escapes, as emitted by firmware, iPXE, systemd and cargo.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

REDACTED = "***"

# (needles, pattern, caseless, in_code): the pattern runs on a line whose lower case holds one of
# the needles; its group `s` is the secret, the rest of the match stays readable. Caseless
# patterns are written in lower case and run on the lower-cased line (five times faster than
# re.I). Only `in_code` patterns run on program source (see :func:`redact`).
_PATTERN_SOURCES: tuple[tuple[tuple[str, ...], str, bool, bool], ...] = (
    # command-line flags: --root-password VALUE, --api-token='a b'
    (("--",), r"--[\w-]*(?:password|passwd|token|secret)(?:=|\s+)(?P<s>'[^']*'|\"[^\"]*\"|[^\s*]\S*)",
     True, False),
    # curl -u user:pass, --user=user:pass (the user name stays)
    (("-u",), r"(?<![\w-])(?:-u\s*|--user(?:=|\s+))['\"]?[^\s:'\"]+:(?P<s>[^\s'\"]+)", False, False),
    (("bearer",), r"\bbearer\s+(?P<s>[a-z0-9._~+/-]+=*)", True, True),
    (("authorization",), r"\bauthorization:\s*(?:basic|token)\s+(?P<s>[^\s'\"]+)", True, True),
    # key=value / key: value for secret-looking keys (root_password=..., api_key: ...,
    # aws_secret_access_key = ..., "password": "..."); not password_file=PATH
    (("pass", "token", "secret", "key"),
     r"(?:password|passwd|token|secret|api[_-]?key)(?:_?access)?(?:_?key)?['\"]?\s*[=:]\s*"
     r"(?P<s>'[^']*'|\"[^\"]*\"|[^\s*'\"][^\s'\"]*)", True, False),
    # scheme://user:password@host
    (("@",), r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<s>[^\s@/]+)@", True, True),
)
# (needles, pattern, the same with re.I for a line whose lower case changes its length; None
# when the pattern is case-sensitive and runs on the line itself)
_SECRET_PATTERNS = tuple((needles, re.compile(src), re.compile(src, re.I) if caseless else None,
                          in_code)
                         for needles, src, caseless, in_code in _PATTERN_SOURCES)

# Multi-line: a whole private key block (or the rest of the text when its end was cut off).
_KEY_BLOCK = re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----"
                        r".*?(?:-----END (?P=kind)-----|\Z)", re.S)
# The tail of a block whose beginning was cut off: key-material lines before an END marker.
_KEY_TAIL = re.compile(r"(?:^[A-Za-z0-9+/=]{16,}\r?\n)+(?=-----END [A-Z0-9 ]*PRIVATE KEY)", re.M)

# Lines that could hold a secret (searched in lower-cased text: case-insensitive alternation is
# five times slower in Python's re).
_GATE_WORDS = re.compile(r"pass|pwd|token|secret|key|bearer|authorization|contras|xox|aws"
                         r"|(?<![\w-])-u|--user|@")
_GATE_TOKEN = re.compile(r"[A-Za-z0-9]{16}")
_TOKEN_CHARS = re.compile(r"[\w.=+/-]*")
_LEADING_SEP = " \t=:\"'"

# Token detectors of detect-secrets (module, class); see the module docstring for those left out.
_DETECTOR_CLASSES = (
    ("aws", "AWSKeyDetector"), ("artifactory", "ArtifactoryDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"), ("basic_auth", "BasicAuthDetector"),
    ("discord", "DiscordBotTokenDetector"), ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"), ("jwt", "JwtTokenDetector"),
    ("mailchimp", "MailchimpDetector"), ("npm", "NpmDetector"), ("openai", "OpenAIDetector"),
    ("private_key", "PrivateKeyDetector"), ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"), ("slack", "SlackDetector"),
    ("square_oauth", "SquareOAuthDetector"), ("stripe", "StripeDetector"),
    ("telegram_token", "TelegramBotTokenDetector"), ("twilio", "TwilioKeyDetector"),
)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def clean_text(text: str | bytes) -> str:
    """Decode (invalid UTF-8 replaced), drop ANSI escapes and control bytes except \\n and \\t."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = strip_ansi(text).replace("\r\n", "\n").replace("\r", "")
    return _CTRL.sub("", text)


@lru_cache(maxsize=1)
def _detectors() -> tuple[Any, ...]:
    import importlib

    return tuple(getattr(importlib.import_module(f"detect_secrets.plugins.{mod}"), cls)()
                 for mod, cls in _DETECTOR_CLASSES)


@lru_cache(maxsize=1)
def _keyword_regexes() -> tuple[re.Pattern[str], tuple[tuple[re.Pattern[str], int], ...]]:
    """detect-secrets' keyword list (for a quick check) and its quoted `keyword = "value"` rules."""
    from detect_secrets.plugins.keyword import DENYLIST, QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP

    return re.compile("|".join(DENYLIST)), tuple(QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items())


def _detected_span(m: re.Match[str]) -> tuple[int, int]:
    """The secret inside a detector's match, extended to the end of its token.

    A captured group that is not the match's prefix is the value (AWS secret key, basic-auth
    password); otherwise the whole match is (ghp_..., glpat-...: their group is the prefix only).
    Extending over token characters covers detectors whose regex stops early (JWT signatures).
    """
    inner = [i for i in range(1, m.re.groups + 1)
             if m.group(i) and m.start(i) > m.start() and len(m.group(i)) >= 3]
    start, end = m.span(inner[-1]) if inner else m.span()
    while start < end and m.string[start] in _LEADING_SEP:
        start += 1
    tail = _TOKEN_CHARS.match(m.string, end)
    return start, tail.end() if tail else end


def _detector_spans(line: str) -> Iterator[tuple[int, int]]:
    if _any_detector_hit().search(line) is None:  # one search instead of one per plugin
        return
    for plugin in _detectors():
        hits = [m for rx in plugin.denylist for m in rx.finditer(line)]
        # the plugin's own check too (JWT: the parts must decode); cheap, only on a hit
        if hits and any(True for _ in plugin.analyze_string(line)):
            yield from (_detected_span(m) for m in hits)


@lru_cache(maxsize=1)
def _any_detector_hit() -> re.Pattern[str]:
    """Every detector regex in one alternation (none of them uses a back-reference)."""
    def scoped(rx: re.Pattern[str]) -> str:
        return f"(?i:{rx.pattern})" if rx.flags & re.IGNORECASE else f"(?:{rx.pattern})"
    return re.compile("|".join(scoped(rx) for plugin in _detectors() for rx in plugin.denylist))


def _keyword_spans(line: str, code: bool) -> Iterator[tuple[int, int]]:
    low = line.lower()
    keywords, rules = _keyword_regexes()
    # detect-secrets' keyword rules want a quoted value (and cost ~90 us a line: check first)
    if not code and ("'" in line or '"' in line or "`" in line) and keywords.search(low):
        for rx, group in rules:
            for m in rx.finditer(line):
                if m.group(group):
                    yield m.span(group)
    same_length = len(low) == len(line)
    for needles, pat, caseless, in_code in _SECRET_PATTERNS:
        if (in_code or not code) and any(n in low for n in needles):
            if caseless is None:
                matches = pat.finditer(line)
            else:
                matches = pat.finditer(low) if same_length else caseless.finditer(line)
            for m in matches:
                yield m.span("s")


def _mask(line: str, spans: Iterable[tuple[int, int]]) -> str:
    """Replace the (possibly overlapping) spans of `line` with REDACTED."""
    out: list[str] = []
    pos = 0
    for start, end in sorted(spans):
        if end <= pos or line[max(start, pos):end].strip("*") == "":
            continue
        start = max(start, pos)
        out += [line[pos:start], REDACTED]
        pos = end
    out.append(line[pos:])
    return "".join(out)


def _candidate_lines(text: str) -> list[tuple[int, int, bool, bool]]:
    """(start, end, has_word, has_token) of every line a secret could be on."""
    low = text.lower()
    if len(low) != len(text):  # a character whose lower case is longer: look at every line
        return [(m.start(), m.end(), True, True) for m in re.finditer(r"[^\n]+", text)]
    found: dict[int, list[Any]] = {}
    for index, gate in enumerate((_GATE_WORDS, _GATE_TOKEN)):
        pos = 0
        while (m := gate.search(low, pos)) is not None:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            end = len(text) if end < 0 else end
            found.setdefault(start, [start, end, False, False])[2 + index] = True
            pos = end + 1
    return [tuple(found[k]) for k in sorted(found)]  # type: ignore[misc]


def _redact_line(line: str, has_word: bool, has_token: bool, code: bool) -> str:
    spans: list[tuple[int, int]] = []
    if has_token or "@" in line:
        spans += _detector_spans(line)
    if has_word:
        spans += _keyword_spans(line, code)
    return _mask(line, spans) if spans else line


def _redact_key_blocks(text: str) -> str:
    if "PRIVATE KEY" not in text:
        return text
    text = _KEY_BLOCK.sub(lambda m: f"-----BEGIN {m['kind']}-----\n{REDACTED}\n"
                                    f"-----END {m['kind']}-----", text)
    return _KEY_TAIL.sub(REDACTED + "\n", text)


def redact(text: str, secrets: Iterable[str] = (), code: bool = False) -> str:
    """Replace known secret values, private key blocks, and secrets the detectors find.

    With `code`, `text` is program source (a notebook cell): `name = value` assignments and
    command-line flags are left alone, so the code still runs and a parameters cell keeps its
    documented defaults; secret values, tokens, keys and URL credentials are still redacted.
    """
    for value in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    text = _redact_key_blocks(text)
    pieces: list[str] = []
    pos = 0
    for start, end, has_word, has_token in _candidate_lines(text):
        pieces += [text[pos:start], _redact_line(text[start:end], has_word, has_token, code)]
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def redact_tree(obj: Any, secrets: Iterable[str] = ()) -> Any:
    """`obj` with :func:`redact` applied to every string in it (dicts, lists, tuples)."""
    secrets = tuple(secrets)
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        return {k: redact_tree(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_tree(v, secrets) for v in obj)
    return obj
