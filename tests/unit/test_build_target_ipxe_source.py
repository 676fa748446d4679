"""Step 2 hands ipxe_source to the sandbox builder and shows how iPXE's source was chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.build import step as build_step
from runbook_lib.build.target import resolve


def test_sandbox_command_carries_an_absolute_ipxe_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    t = resolve("", "x86_64", "full", "ipxe-x86_64", str(tmp_path / "wd"), host="x86_64",
                ipxe_source="data/ipxe.tar.gz")
    (cmd,) = t.commands()
    i = cmd.index("--ipxe-source")
    assert cmd[i + 1] == str(tmp_path / "data" / "ipxe.tar.gz")
    assert t.to_dict()["ipxe_source"] == "data/ipxe.tar.gz"


def test_no_ipxe_source_no_flag(tmp_path: Path) -> None:
    t = resolve("", "x86_64", "full", "", str(tmp_path / "wd"), host="x86_64")
    assert all("--ipxe-source" not in c for c in t.commands())


def test_carbide_tree_ignores_it_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "pxe").mkdir()
    (tmp_path / "pxe" / "Makefile.toml").write_text('[tasks.build-boot-artifacts-x86_64]\nscript = "true"\n')
    t = resolve(str(tmp_path), "x86_64", "full", "", host="x86_64", ipxe_source="/x/ipxe.tar.gz")
    assert t.commands() == [["cargo", "make", "build-boot-artifacts-x86_64"]]
    assert any("sandbox only" in n for n in t.notes)


def test_resolution_table_lists_each_source_with_its_reason() -> None:
    rows = [{"source": "ipxe_source", "used": False, "why": "not given"},
            {"source": "apt-get source ipxe", "used": False, "why": "E: 404 Not Found"},
            {"source": "Debian prebuilt", "used": True, "why": "used: no iPXE source was available"}]
    df = build_step._resolution_table(rows)
    assert list(df.columns) == ["source", "used", "why"]
    assert df["used"].tolist() == ["no", "no", "yes"] and df["why"][1] == "E: 404 Not Found"
