"""Notebook 00's form without a browser: widgets built from each NotebookSpec, the carbide_root_dir
box checked as you type (debounced), values handed to the launcher, what stops a Run early."""

from __future__ import annotations

import time
from pathlib import Path

import ipywidgets as w
import pytest

from runbook_lib import widgets
from runbook_lib.params import NOTEBOOKS, START, STEP1, STEP2, STEP3, STEP4

FIXTURE_TREES = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree"


@pytest.fixture
def form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return widgets.StartForm(report_dir=str(tmp_path / "reports"), workdir=str(tmp_path / "sandbox"),
                             debounce_s=0.2)


@pytest.mark.parametrize("spec", list(NOTEBOOKS.values()), ids=lambda s: s.name)
def test_every_parameter_gets_the_widget_its_type_asks_for(spec):
    for p in spec.params:
        wd = widgets.param_widget(p)
        assert wd.description == p.name and wd.tooltip == p.help
        assert f"runbook-param-{p.name}" in wd._dom_classes
        if p.choices:
            assert isinstance(wd, w.Dropdown) and list(wd.options) == list(p.choices) and wd.value == p.default
        elif p.type is bool:
            assert isinstance(wd, w.Checkbox) and wd.value is p.default
        elif p.type is int:
            assert isinstance(wd, w.BoundedIntText) and wd.value == p.default
            if p.minimum is not None:
                assert wd.min == p.minimum
        elif p.type is float:
            assert isinstance(wd, w.BoundedFloatText) and wd.value == p.default
        elif p.secret:
            assert isinstance(wd, w.Password)
        else:
            assert isinstance(wd, w.Text) and wd.value == p.default


def test_the_form_has_one_panel_per_step_with_every_parameter(form):
    assert [k for k in form.panels] == ["01", "02", "03", "04"]
    for key, spec in (("01", STEP1), ("02", STEP2), ("03", STEP3), ("04", STEP4)):
        panel = form.panel(key)
        names = {p.name for p in spec.params} - {"log_dir"} - set(widgets.SHARED)
        assert set(panel.inputs) == names
        assert f"runbook-run-{key}" in panel.run_button._dom_classes
        assert f"runbook-cancel-{key}" in panel.cancel_button._dom_classes and panel.cancel_button.disabled
        assert f"runbook-step-{key}" in panel.box._dom_classes
    assert form.panel("01").run_button.description == "Run step 1"
    assert form.panel("04").run_button.description == "Run validate"
    assert "runbook-start-form" in form.widget._dom_classes


def test_values_are_what_differs_from_the_defaults_shared_boxes_included(form, tmp_path):
    assert form.panel("02").values() == {"workdir": str(tmp_path / "sandbox")}
    form.panel("03").inputs["firmware"].value = "bios"
    form.panel("03").inputs["memory_mb"].value = 2048
    form.panel("03").inputs["tpm"].value = True
    vals = form.panel("03").values()
    assert vals == {"firmware": "bios", "memory_mb": 2048, "tpm": True, "workdir": str(tmp_path / "sandbox")}
    assert STEP3.validate(vals)["firmware"] == "bios"
    assert "firmware" not in form.panel("04").values()  # each panel has its own boxes


def test_root_box_is_checked_as_you_type_debounced(form, tmp_path):
    box, status_html = form.shared["carbide_root_dir"], form.root_status
    assert 'data-level="ok"' in status_html.value and "embedded sandbox" in status_html.value
    calls = form.root_debounce.calls
    for partial in ("/no", "/nowhere/x", str(tmp_path / "nope")):
        box.value = partial
    assert form.root_debounce.pending and 'data-level="ok"' in status_html.value  # not yet
    deadline = time.monotonic() + 5
    while form.root_debounce.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert form.root_debounce.calls == calls + 1  # three keystrokes, one check
    assert 'data-level="bad"' in status_html.value and "does not exist" in status_html.value


@pytest.mark.parametrize("tree,level,words", [
    ("docs_era", "ok", ["carbide checkout", "build-boot-artifacts-x86_64"]),
    ("current_era", "warn", ["build-boot-artifacts-x86_64", "is not defined",
                             "task=&#x27;build-boot-artifacts-x86-host&#x27;"]),
    ("", "ok", ["embedded sandbox"]),
])
def test_root_check_messages(form, tree, level, words):
    form.shared["carbide_root_dir"].value = str(FIXTURE_TREES / tree) if tree else ""
    form.root_debounce.flush()
    assert f'data-level="{level}"' in form.root_status.value, form.root_status.value
    for word in words:
        assert word in form.root_status.value


def test_a_directory_that_is_not_a_carbide_tree_says_why(tmp_path):
    (tmp_path / "pxe").mkdir()
    check = widgets.check_root(str(tmp_path))
    assert not check.ok and "no pxe/Makefile.toml" in check.message and "carbide_root_dir" in check.fix
    (tmp_path / "pxe" / "Makefile.toml").write_text("[tasks.x]\n")
    check = widgets.check_root(str(tmp_path))
    assert not check.ok and "Cargo.toml" in check.message


def test_step2s_task_box_changes_the_verdict_on_the_tree(form):
    form.shared["carbide_root_dir"].value = str(FIXTURE_TREES / "current_era")
    form.root_debounce.flush()
    assert form.root_check is not None and form.root_check.warning
    form.panel("02").inputs["task"].value = "build-boot-artifacts-x86-host"
    form.root_debounce.flush()
    assert form.root_check.level == "ok" and "build-boot-artifacts-x86-host" in form.root_check.message


def test_run_does_not_start_on_a_path_that_is_not_a_carbide_tree(form, tmp_path):
    form.shared["carbide_root_dir"].value = str(tmp_path / "missing")
    form.panel("02").run_button.click()  # flushes the pending check first
    panel = form.panel("02")
    assert panel.run is None
    assert 'data-verdict="ERROR"' in panel.verdict.value and "not a carbide tree" in panel.verdict.value


def test_run_does_not_start_with_a_bad_parameter(form):
    form.panel("02").inputs["task"].value = "build; rm -rf /"
    form.panel("02").run_button.click()
    panel = form.panel("02")
    assert panel.run is None and "parameter &#x27;task&#x27;" in panel.verdict.value


def test_headless_gets_a_note_instead_of_the_form(monkeypatch):
    monkeypatch.setenv("RUNBOOK_HEADLESS", "1")
    out = widgets.start_form(START.validate({}))
    assert isinstance(out, widgets.FormSkipped) and "JupyterLab" in str(out)
    assert 'class="runbook-form-skipped"' in out._repr_html_()


def test_debounce_flush_runs_a_pending_call_once():
    seen: list[str] = []
    d = widgets.Debounce(10.0, seen.append)
    d("a")
    d("ab")
    assert seen == [] and d.pending
    d.flush()
    d.flush()
    assert seen == ["ab"] and not d.pending and d.calls == 1
