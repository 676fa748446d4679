from __future__ import annotations

import nbformat
import papermill as pm
import pytest

from runbook_lib.params import NOTEBOOKS, STEP1, STEP2, STEP3, ParamError, resolve


def test_choices_error_names_parameter_and_allowed_values():
    with pytest.raises(ParamError) as exc:
        STEP1.validate({"mode": "nonsense"})
    msg = str(exc.value)
    assert "'mode'" in msg and "'sandbox'" in msg and "'carbide'" in msg


def test_unknown_parameter_suggests_close_names():
    with pytest.raises(ParamError) as exc:
        STEP1.validate({"install_mising": True})
    assert "install_missing" in str(exc.value)


@pytest.mark.parametrize("raw,expected", [("true", True), ("No", False), ("1", True), ("off", False)])
def test_bool_from_string(raw, expected):
    assert STEP1.validate({"install_missing": raw})["install_missing"] is expected


def test_bad_bool_and_number_rejected():
    with pytest.raises(ParamError, match="install_missing"):
        STEP1.validate({"install_missing": "maybe"})
    with pytest.raises(ParamError, match="min_free_gb"):
        STEP1.validate({"min_free_gb": "lots"})
    with pytest.raises(ParamError, match="minimum"):
        STEP1.validate({"min_free_gb": -1})


def test_native_types_checked_without_coercion_surprises():
    assert STEP1.validate({"min_free_gb": 3})["min_free_gb"] == 3.0
    with pytest.raises(ParamError):
        STEP1.validate({"install_missing": 1})


def test_shell_looking_values_are_plain_data_or_rejected():
    # a free-form string stays exactly what it is
    assert STEP1.validate({"workdir": "x; rm -rf ~"})["workdir"] == "x; rm -rf ~"
    # a value with a declared shape is refused, naming the parameter
    with pytest.raises(ParamError, match="task"):
        STEP2.validate({"task": "x; rm -rf ~"})


def test_resolve_by_name_alias_and_path():
    assert resolve("01") is STEP1
    assert resolve("notebooks/01_install_build_tools.ipynb") is STEP1
    assert resolve("boot") is STEP3
    with pytest.raises(ParamError, match="unknown notebook"):
        resolve("04_nothing")


def test_secret_default_hidden_in_description():
    secret = [p for p in STEP2.params if p.secret]
    assert secret and all(p.describe()["default"] == "***" for p in secret)


@pytest.mark.parametrize("spec", list(NOTEBOOKS.values()), ids=lambda s: s.name)
def test_notebook_parameters_cell_matches_spec(repo, spec):
    path = repo / "notebooks" / f"{spec.name}.ipynb"
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    found = pm.inspect_notebook(str(path))
    assert set(found) == {p.name for p in spec.params}
    for p in spec.params:
        default = found[p.name]["default"]
        assert eval(default) == p.default, p.name  # literal from the parameters cell


@pytest.mark.parametrize("spec", list(NOTEBOOKS.values()), ids=lambda s: s.name)
def test_committed_notebook_holds_only_its_parameters_cell(repo, spec):
    """An injected-parameters cell (papermill's) in a committed notebook would apply on every
    JupyterLab run and every nbval pass (notebook 02 once shipped `force = "True"`)."""
    nb = nbformat.read(repo / "notebooks" / f"{spec.name}.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert sum("parameters" in t for t in tags) == 1
    assert not any("injected-parameters" in t for t in tags)
    assert "papermill" not in nb.metadata or not nb.metadata["papermill"].get("parameters")


def test_one_parameter_has_one_meaning_across_steps():
    """A name shared by several steps must mean the same thing (same type and default), so
    `runbook run all -p NAME VALUE` sets one thing; timeouts have their own names."""
    seen: dict[str, tuple] = {}
    for spec in NOTEBOOKS.values():
        for p in spec.params:
            key = (p.type, p.default, p.choices if p.name != "arch" else None)
            if p.name in seen and p.name != "arch":
                assert seen[p.name] == key, f"{p.name} differs between steps"
            seen[p.name] = key
    assert "timeout_s" not in seen
    assert "build_timeout_s" in {p.name for p in STEP2.params}
    assert "boot_timeout_s" in {p.name for p in STEP3.params}
    assert "workdir" in {p.name for p in STEP3.params}  # step 3 boots what step 2 built there


@pytest.mark.parametrize("spec,name", [(STEP2, "ci_only_pattern"), (STEP3, "success_pattern")])
def test_regex_parameters_are_compiled_when_validated(spec, name):
    with pytest.raises(ParamError) as err:
        spec.validate({name: "login:(unclosed"})
    msg = str(err.value)
    assert name in msg and "not a valid regular expression" in msg and "missing )" in msg
    assert spec.validate({name: r"[\w.-]+ login:"})[name] == r"[\w.-]+ login:"


def test_run_all_rejects_a_parameter_no_step_declares(capsys):
    from runbook_lib import cli

    assert cli.main(["run", "all", "-p", "timeout_s", "60"]) == 2
    err = capsys.readouterr().err
    assert "timeout_s" in err and "no notebook takes this parameter" in err


def test_run_all_routes_workdir_to_build_and_boot():
    from runbook_lib import cli

    raw = {"workdir": "/tmp/X", "boot_timeout_s": "60"}
    chosen = {s.name: cli.params_for(s, raw, strict=False) for s in NOTEBOOKS.values()}
    assert chosen["02_build_ipxe_image"]["workdir"] == "/tmp/X"
    assert chosen["03_pxe_boot_vm"]["workdir"] == "/tmp/X"
    assert chosen["03_pxe_boot_vm"]["boot_timeout_s"] == 60
    assert "boot_timeout_s" not in chosen["02_build_ipxe_image"]
