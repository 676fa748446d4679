"""The catalogue of console messages, one entry at a time: each real example line is
classified as its own entry (and not as an earlier, more generic one)."""

from __future__ import annotations

import pytest

from runbook_lib.boot.analyze import BootLogAnalyzer
from runbook_lib.boot.catalogue import BENIGN, ENTRIES, LOOP_HINTS, MILESTONES, RANK, SEVERITIES


def _classify(line: str, addressed: bool = False) -> tuple[list[str], list[str]]:
    """(milestones, message kinds) the analyzer finds on one line (after a firmware address line
    when `addressed`)."""
    an = BootLogAnalyzer()
    an.feed_chunk(b"\n")  # line 1 is taken as the firmware start; test the last line
    if addressed:
        an.feed_line(">>Start PXE over IPv4.")
        an.feed_line("  Station IP address is 10.0.2.15")
    events = an.feed_line(line)
    ms = [e.name for e in events if e.__class__.__name__ == "Milestone"]
    return ms, [e.kind for e in events if e.__class__.__name__ == "Failure"]


@pytest.mark.parametrize("i", range(len(ENTRIES)), ids=[f"{e.kind}-{i}" for i, e in enumerate(ENTRIES)])
def test_each_entry_classifies_its_own_example(i: int) -> None:
    entry = ENTRIES[i]
    assert entry.severity in SEVERITIES
    assert entry.recovery in ("progress", "fetch", "success")
    raw = entry.example.encode()
    assert any(a in raw for a in entry.anchors), "the example must contain one of the anchors"
    assert entry.rx.search(raw)
    first = next(j for j, e in enumerate(ENTRIES) if e.rx.search(raw) and any(a in raw for a in e.anchors))
    assert first == i, f"classified as entry {first} ({ENTRIES[first].kind}) instead"
    _, kinds = _classify(entry.example, addressed=bool(entry.unaddressed))
    assert kinds == [entry.kind]
    if entry.unaddressed:  # the same line in an attempt that never got an address
        _, kinds = _classify(">>Start PXE over IPv4.\n" + entry.example)
        assert kinds == [entry.unaddressed]


@pytest.mark.parametrize("m", MILESTONES, ids=[m.name for m in MILESTONES])
def test_each_milestone_matches_its_example(m) -> None:
    ms, _ = _classify(m.example)
    assert m.name in ms


def test_benign_lines_are_never_the_cause() -> None:
    an = BootLogAnalyzer()
    for e in ENTRIES:
        if e.severity == BENIGN:
            an.feed_line(e.example)
    res = an.finish()
    assert res.verdict == "FAIL" and res.first_failure.kind == "no_login"
    assert {w.kind for w in res.warnings} == {e.kind for e in ENTRIES if e.severity == BENIGN}


def test_ranks_follow_the_table_and_loops_have_hints() -> None:
    assert [RANK[m.name] for m in MILESTONES] == list(range(len(MILESTONES)))
    assert set(LOOP_HINTS) == {"chain_loop", "banner_loop", "carbide_menu_loop"}


@pytest.mark.parametrize("line", [
    "[    1.089966] PCI: Using host bridge windows from ACPI; if necessary, use \"pci=nocrs\" and report a bug",
    "[   14.894738] AMD-Vi: AMD IOMMUv2 functionality not available on this system - This is not a bug.",
    "[    0.000000] Kernel command line: console=ttyS0,115200 panic=-1",
    "  Downloading...100%TcpOnAppAbort: connection reset issued by application for TCB 7851D62198",
    "EFI stub: Loaded initrd from LINUX_EFI_INITRD_MEDIA_GUID device path",
    "net60: fe80::3209:f9ff:fe22:43c1/64 (inaccessible)",
    "BdsDxe: starting Boot0005 \"EFI Internal Shell\" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)",
    "[    0.123456] RAS: Correctable Errors collector initialized.",
])
def test_routine_lines_are_not_messages(line: str) -> None:
    """Real lines with scary words that mean nothing (from this project's and public consoles)."""
    _, kinds = _classify(line)
    assert kinds == []
