from __future__ import annotations

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
