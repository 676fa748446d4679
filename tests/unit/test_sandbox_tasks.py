"""Sandbox task data: carbide's names, dependency order, expected artifacts."""

from __future__ import annotations

import pytest

from runbook_lib.sandbox import tasks


def test_carbide_task_names_and_dependencies() -> None:
    assert set(tasks.TASKS) == {"create-ephemeral-image", "ipxe-x86_64", "build-boot-artifacts-x86_64"}
    assert tasks.TASKS["build-boot-artifacts-x86_64"].dependencies == ["create-ephemeral-image", "ipxe-x86_64"]
    assert tasks.TASKS["create-ephemeral-image"].dependencies == []


def test_plan_runs_dependencies_first_once() -> None:
    assert tasks.plan("build-boot-artifacts-x86_64") == [
        "create-ephemeral-image", "ipxe-x86_64", "build-boot-artifacts-x86_64"]
    assert tasks.plan("ipxe-x86_64") == ["ipxe-x86_64"]


def test_plan_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="create-ephemeral-image"):
        tasks.plan("build-boot-artifacts-x86-host")


def test_plan_detects_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    cyclic = {"a": tasks.SandboxTask("a", "", ["b"]), "b": tasks.SandboxTask("b", "", ["a"])}
    monkeypatch.setattr(tasks, "TASKS", cyclic)
    with pytest.raises(ValueError, match="a -> b -> a"):
        tasks.plan("a")


def test_every_task_artifact_has_an_expected_size_band() -> None:
    expected = {a.name: a for a in tasks.EXPECTED_ARTIFACTS}
    for t in tasks.TASKS.values():
        for name in t.artifacts + t.optional_artifacts:
            assert name in expected, name
            assert expected[name].produced_by == t.name
    for a in tasks.EXPECTED_ARTIFACTS:
        assert 0 < a.min_bytes < a.max_bytes
    assert not expected["autoexec.ipxe"].required  # prebuilt path only
    assert {"carbide.efi", "carbide.root", "carbide.manifest", "ipxe.efi", "ipxe.kpxe"} <= set(
        tasks.artifacts_of("build-boot-artifacts-x86_64"))
