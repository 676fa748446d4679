"""Logs embedded in a report (`runbook report --embed-logs`): one HTML file to attach to a bug report.

The serial console and the HTTP request log of the run are embedded gzip-compressed as base64
``data:`` links (a download without any script); a small inline script (no external JS) decodes
one with the browser's ``DecompressionStream`` into a ``<pre>`` through ``textContent``, so log
text never becomes markup. Bounded: all embedded logs together take at most
:data:`EMBED_BUDGET` base64 characters; a log that does not fit keeps its head and its tail
(whole lines) and says how many bytes and lines were cut from the middle. The text is cleaned
(ANSI escapes and control bytes removed) and redacted (:mod:`.sanitize`) like every other log
text in a report.
"""

from __future__ import annotations

import base64
import gzip
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .sanitize import clean_text, redact

EMBED_BUDGET = 1_000_000  # base64 characters for all embedded logs together (~750 KB gzip)
MAX_WINDOW = 8 * 1024 * 1024  # raw bytes read from one log at most (head + tail)
MIN_WINDOW = 16 * 1024
# (name shown, path under the run's log directory, share of the budget)
EMBEDDED_LOGS: tuple[tuple[str, str, float], ...] = (
    ("serial console", "boot/serial.log", 0.8),
    ("http requests", "boot/requests.jsonl", 0.2),
)
SECTION_ID = "runbook-embedded-logs"


@dataclass
class EmbeddedLog:
    name: str
    anchor: str
    path: str
    size: int  # bytes on disk
    kept: int  # bytes of the original kept (head + tail)
    cut_bytes: int
    cut_lines: int
    b64: str  # gzip, base64

    @property
    def note(self) -> str:
        if not self.cut_bytes:
            return f"the whole log ({self.size} bytes)"
        return (f"head and tail kept ({self.kept} of {self.size} bytes): {self.cut_bytes} bytes "
                f"({self.cut_lines} lines) cut from the middle; the full log is {self.path}")


def _window(path: Path, raw: int) -> tuple[bytes, int, int]:
    """(head + marker + tail of at most `raw` bytes, bytes cut, lines cut), cut at line ends."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size <= raw:
            return fh.read(), 0, 0
        half = raw // 2
        head = fh.read(half)
        head = head[:head.rfind(b"\n") + 1] or head
        fh.seek(size - half)
        tail = fh.read(half)
        nl = tail.find(b"\n")
        tail = tail[nl + 1:] if 0 <= nl < len(tail) - 1 else tail
        cut_start, cut_end = len(head), size - len(tail)
        lines = 0
        fh.seek(cut_start)
        left = cut_end - cut_start
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            left -= len(chunk)
    cut = cut_end - cut_start
    marker = (f"\n… {cut} bytes ({lines} lines) cut here: the full log is {path} …\n\n").encode()
    return head + marker + tail, cut, lines


def embed_log(name: str, anchor: str, path: Path, budget: int,
              secrets: Iterable[str] = ()) -> EmbeddedLog:
    """One log, compressed into at most `budget` base64 characters (the window shrinks until it fits)."""
    secrets = tuple(secrets)
    size = path.stat().st_size
    raw = min(size, MAX_WINDOW)
    redacted = False  # the window is sized on cleaned text first: redaction is the slow part
    while True:
        data, cut, lines = _window(path, raw)
        text = clean_text(data)
        if redacted:
            text = redact(text, secrets)
        b64 = base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")
        if len(b64) <= budget or raw <= MIN_WINDOW:
            if redacted:
                return EmbeddedLog(name, anchor, str(path), size, size - cut, cut, lines, b64)
            redacted = True
            continue
        raw = max(MIN_WINDOW, int(raw * budget / len(b64) * 0.95))


def find_log_dir(log_dir: str | None, html_path: Path | None) -> Path | None:
    """The run's log directory: as recorded, else `<report>.logs` beside the report (a report
    moved or sent along with its logs)."""
    if html_path is not None:
        beside = Path(html_path).with_suffix(".logs")
        if beside.is_dir() and (not log_dir or not Path(log_dir).is_dir()):
            return beside
    if log_dir and Path(log_dir).is_dir():
        return Path(log_dir)
    return None


def embed_logs(log_dir: Path | None, secrets: Iterable[str] = (),
               budget: int = EMBED_BUDGET) -> list[EmbeddedLog]:
    """The serial console and request log of a run, if saved, within `budget` together."""
    if log_dir is None:
        return []
    found = [(name, log_dir / rel, share) for name, rel, share in EMBEDDED_LOGS if (log_dir / rel).is_file()]
    out: list[EmbeddedLog] = []
    left = budget
    for i, (name, path, share) in enumerate(found):
        later = sum(s for _, _, s in found[i + 1:])
        mine = int(left * share / (share + later))  # what an earlier log left unused goes on
        item = embed_log(name, f"runbook-embedded-log-{i}", path, mine, secrets)
        left -= len(item.b64)
        out.append(item)
    return out


_SCRIPT = """
<script>
(function () {
  async function show(link, pre) {
    const b64 = link.getAttribute("href").split(",", 2)[1];
    const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("gzip"));
    pre.textContent = await new Response(stream).text();
    pre.hidden = false;
    pre.dataset.loaded = "true";
  }
  document.querySelectorAll("button.runbook-embedded-show").forEach((button) => {
    button.addEventListener("click", () => {
      const box = button.closest(".runbook-embedded-log");
      show(box.querySelector("a.runbook-embedded-download"), box.querySelector("pre"))
        .catch((err) => { box.querySelector("pre").textContent = "could not decode: " + err; });
    });
  });
})();
</script>
"""


def section_html(logs: list[EmbeddedLog]) -> str:
    """The page's last section: one download link + show button per embedded log."""
    if not logs:
        return ""
    parts = [f"<section id='{SECTION_ID}' class='runbook-embedded' style='margin:24px 0;"
             "font-family:var(--jp-ui-font-family,sans-serif)'>",
             "<h2>Logs embedded in this report</h2>",
             "<p>Compressed in the page (gzip): <b>show</b> decodes one here, the link saves it.</p>"]
    for lg in logs:
        file_name = html.escape(os.path.basename(lg.path) + ".gz")
        parts.append(
            f"<div class='runbook-embedded-log' id='{lg.anchor}' data-log='{html.escape(lg.name)}'>"
            f"<h3>{html.escape(lg.name)}</h3><p class='runbook-embedded-note'>{html.escape(lg.note)}</p>"
            f"<p><button type='button' class='runbook-embedded-show'>show</button> "
            f"<a class='runbook-embedded-download' download='{file_name}' "
            f"href='data:application/gzip;base64,{lg.b64}'>save {file_name}</a> "
            f"({len(lg.b64) * 3 // 4} bytes compressed)</p>"
            "<pre hidden style='max-height:40em;overflow:auto;font-size:85%;white-space:pre-wrap'></pre>"
            "</div>")
    parts.append("</section>" + _SCRIPT)
    return "".join(parts)
