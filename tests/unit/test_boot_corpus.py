"""The analyzer against the corpus of real serial consoles (tests/fixtures/bootlogs).

`expectations.csv` is the table: one row per log, recorded on this project's machines
(stamped) or quoted from public issue threads (public/, provenance in PROVENANCE.md), with
the verdict, the first failure's kind and the warnings a reader of that log would name.
Every log is also replayed through the live console path in random chunk sizes, as a
serial port delivers them: live and offline must agree on the same bytes.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from runbook_lib.boot import console
from runbook_lib.boot.analyze import STAMP_RE, analyze_file

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "bootlogs"
ROWS = list(csv.DictReader(open(LOGS / "expectations.csv", newline="")))


def test_the_table_covers_every_log() -> None:
    listed = {r["file"] for r in ROWS}
    on_disk = {str(p.relative_to(LOGS)) for p in LOGS.rglob("*.log")}
    assert listed == on_disk
    assert all(r["verdict"] in ("PASS", "FAIL") for r in ROWS)
    assert all((r["verdict"] == "PASS") == (r["first_failure"] == "") for r in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_verdict_first_failure_and_warnings(row: dict[str, str]) -> None:
    an = analyze_file(LOGS / row["file"])
    ff = an.first_failure
    assert (an.verdict, ff.kind if ff else "") == (row["verdict"], row["first_failure"]), an.summary()
    expected = {w for w in row["warnings"].split(";") if w}
    assert expected <= {w.kind for w in an.warnings}
    if an.verdict == "PASS":
        assert an.failures == []


def _unstamped(data: bytes) -> bytes:
    """The serial bytes as the port delivered them (the stamps were added by the capture)."""
    out = []
    for ln in data.split(b"\n"):
        m = STAMP_RE.match(ln)
        out.append(ln[m.end():] if m else ln)
    return b"\n".join(out)


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_live_and_offline_agree_on_the_same_bytes(row: dict[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _unstamped((LOGS / row["file"]).read_bytes())
    rnd = random.Random(row["file"])
    pieces, i = [], 0
    while i < len(raw):
        n = rnd.choice((1, 7, 64, 333, 4096))
        pieces.append(raw[i:i + n])
        i += n
    delivered = {"n": 0}

    def serial_port(path: Path, offset: int, limit: int = 1 << 20) -> bytes:
        if delivered["n"] < len(pieces):
            delivered["n"] += 1
            return pieces[delivered["n"] - 1]
        return b""

    monkeypatch.setattr(console, "_read_from", serial_port)
    monkeypatch.setattr(console, "POLL_S", 0.0)
    log = tmp_path / "serial.log"
    out = console.watch(tmp_path / "serial.raw", log, t0=0.0, timeout_s=1e9,
                        is_running=lambda: delivered["n"] < len(pieces),
                        success_pattern=r"[\w.-]+ login:")
    live = out.analysis
    offline = analyze_file(log, ended=live.ended)
    assert (live.verdict, live.first_failure and (live.first_failure.kind, live.first_failure.line)) == \
        (offline.verdict, offline.first_failure and (offline.first_failure.kind, offline.first_failure.line))
    assert [(w.kind, w.line) for w in live.warnings] == [(w.kind, w.line) for w in offline.warnings]
    # and the live verdict is the table's (the live run may stop early at a fatal end: the
    # cause is then the same message)
    ff = live.first_failure
    if out.ended in ("success", "exit") and live.ended != "timeout":
        assert live.verdict == row["verdict"]
        if row["first_failure"] not in ("", "no_login"):
            assert ff is not None and ff.kind == row["first_failure"]
