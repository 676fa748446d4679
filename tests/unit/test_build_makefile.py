"""Plan resolution from Makefile.toml, as cargo-make orders tasks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runbook_lib.build import makefile as mk
from runbook_lib.build.target import TargetError, resolve

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "Makefile.toml"
    p.write_text(textwrap.dedent(text))
    return p


def order(plan: mk.Plan) -> list[str]:
    return [s.task for s in plan.steps]


def test_dependencies_first_each_once_in_written_order(tmp_path):
    mf = mk.load(write(tmp_path, """
        [tasks.all]
        dependencies = ["a", "b", "a"]
        [tasks.a]
        dependencies = ["common"]
        command = "echo"
        args = ["a"]
        [tasks.b]
        dependencies = ["common", "a"]
        script = "echo b"
        [tasks.common]
        script = ["echo one", "echo two"]
    """))
    plan = mk.resolve(mf, "all", env={})
    assert order(plan) == ["common", "a", "b", "all"]
    assert plan.steps[1].action == "echo a"
    assert plan.steps[0].action.startswith("script: echo one")
    assert "+1 more" in plan.steps[0].action
    assert [s.order for s in plan.steps] == [1, 2, 3, 4]
    assert plan.task_names() == ["common", "a", "b", "all"]


def test_path_dependencies_are_external_and_not_expanded(tmp_path):
    mf = mk.load(write(tmp_path, """
        [tasks.top]
        dependencies = [{ name = "build-cli", path = "${REPO_ROOT}" }, "local"]
        [tasks.local]
        script = "true"
    """))
    plan = mk.resolve(mf, "top", env={})
    assert order(plan) == ["build-cli", "local", "top"]
    ext = plan.steps[0]
    assert ext.kind == "external" and ext.path == "${REPO_ROOT}"
    assert "build-cli" not in plan.task_names()  # runs in another cargo make: not a progress unit
    assert any("external" in n for n in plan.notes)


def test_run_task_is_shown_as_a_nested_flow(tmp_path):
    mf = mk.load(write(tmp_path, """
        [tasks.entry]
        env = { "X" = "1" }
        run_task = "internal"
        [tasks.internal]
        dependencies = ["dep"]
        [tasks.dep]
        script = "true"
        [tasks.routed]
        run_task = [{ name = "dep", condition = { platforms = ["linux"] } }, { name = "internal" }]
        [tasks.many]
        run_task = { name = ["dep", "internal"], fork = true }
    """))
    plan = mk.resolve(mf, "entry", env={})
    assert order(plan) == ["entry", "dep", "internal"]
    assert plan.steps[0].kind == "run_task" and "internal" in plan.steps[0].action
    assert plan.steps[1].depth == 1 and plan.steps[1].via == "dependency of internal"
    assert plan.steps[2].via == "run_task of entry"
    assert "platforms: linux" in mk.resolve(mf, "routed", env={}).steps[0].action
    # each name of a run_task list is its own sub-flow
    assert order(mk.resolve(mf, "many", env={})) == ["many", "dep", "dep", "internal"]


def test_conditions_are_shown_and_evaluated_when_decidable(tmp_path):
    (tmp_path / "present").write_text("x")
    mf = mk.load(write(tmp_path, """
        [tasks.all]
        dependencies = ["when-set", "when-unset", "when-file", "when-missing-file", "rusty", "scripted"]
        [tasks.when-set]
        condition = { env_set = ["CI"] }
        script = "true"
        [tasks.when-unset]
        condition = { env_not_set = ["CI"], platforms = ["linux"] }
        script = "true"
        [tasks.when-file]
        condition = { files_exist = ["${CARGO_MAKE_WORKING_DIRECTORY}/present"] }
        script = "true"
        [tasks.when-missing-file]
        condition = { files_exist = ["${CARGO_MAKE_WORKING_DIRECTORY}/absent"] }
        script = "true"
        [tasks.rusty]
        condition = { rust_version = { min = "1.70.0" } }
        script = "true"
        [tasks.scripted]
        condition_script = ["test -e /"]
        script = "true"
    """))
    runs = {s.task: s.will_run for s in mk.resolve(mf, "all", env={}).steps}
    assert runs["when-set"] == "no"
    assert runs["when-unset"] == "yes"
    assert runs["when-file"] == "yes"
    assert runs["when-missing-file"] == "no"
    assert runs["rusty"] == "at run time"
    assert runs["scripted"] == "at run time"
    step = {s.task: s for s in mk.resolve(mf, "all", env={"CI": "1"}).steps}
    assert step["when-set"].will_run == "yes" and step["when-set"].condition == "env_set: CI"


def test_cycle_is_reported_with_its_path(tmp_path):
    mf = mk.load(write(tmp_path, """
        [tasks.a]
        dependencies = ["b"]
        [tasks.b]
        dependencies = ["c"]
        [tasks.c]
        dependencies = ["a"]
    """))
    with pytest.raises(mk.CyclicDependency) as exc:
        mk.resolve(mf, "a", env={})
    assert exc.value.cycle == ["a", "b", "c", "a"]


def test_run_task_cycle_is_bounded(tmp_path):
    mf = mk.load(write(tmp_path, """
        [tasks.a]
        run_task = "b"
        [tasks.b]
        run_task = "a"
    """))
    with pytest.raises(mk.CyclicDependency):
        mk.resolve(mf, "a", env={})


def test_unknown_task_suggests_the_renamed_task():
    mf = mk.load(FIXTURES / "host_era" / "pxe" / "Makefile.toml")
    with pytest.raises(mk.UnknownTask) as exc:
        mk.resolve(mf, "build-boot-artifacts-x86_64", env={})
    assert exc.value.suggestions[0] == "build-boot-artifacts-x86-host"
    assert "build-boot-artifacts-x86-host" in str(exc.value)


def test_unknown_dependency_names_the_referencing_task_and_builtins_are_known(tmp_path):
    mf = mk.load(write(tmp_path, """
        [tasks.top]
        dependencies = ["build", "missing-one"]
    """))
    with pytest.raises(mk.UnknownTask) as exc:
        mk.resolve(mf, "top", env={})
    assert exc.value.referenced_by == "top"
    mf2 = mk.load(write(tmp_path, """
        [tasks.top]
        dependencies = ["build"]
    """))
    assert mk.resolve(mf2, "top", env={}).steps[0].kind == "built-in"


def test_invalid_toml_and_missing_file_raise_makefile_error(tmp_path):
    bad = tmp_path / "Makefile.toml"
    bad.write_text("[tasks.a\n")
    with pytest.raises(mk.MakefileError, match="not valid TOML"):
        mk.load(bad)
    with pytest.raises(mk.MakefileError, match="does not exist"):
        mk.load(tmp_path / "nope" / "Makefile.toml")


def test_extend_merges_the_base_file(tmp_path):
    (tmp_path / "base.toml").write_text('[tasks.shared]\nscript = "true"\n')
    mf = mk.load(write(tmp_path, """
        extend = "base.toml"
        [tasks.top]
        dependencies = ["shared"]
    """))
    assert order(mk.resolve(mf, "top", env={})) == ["shared", "top"]


def test_fixture_tree_plan_and_named_artifacts():
    mf = mk.load(FIXTURES / "docs_era" / "pxe")
    plan = mk.resolve(mf, ["create-ephemeral-image", "ipxe-x86_64"], env={})
    names = order(plan)
    # two flows, like `cargo make a && cargo make b`: mkdir-static runs once in each
    assert names.count("mkdir-static-x86_64") == 2
    assert names.index("upload-boot-artifacts-ci") < names.index("ipxe-x86_64")
    assert mk.artifact_names(mf, plan, "x86_64") == ["ipxe.efi", "ipxe.kpxe"]
    host = mk.load(FIXTURES / "host_era" / "pxe")
    hplan = mk.resolve(host, "build-boot-artifacts-x86-host", env={})
    assert set(mk.artifact_names(host, hplan, "x86_64")) == {
        "scout.efi", "scout.cpio.zst", "qcow-imager.efi", "ipxe.efi", "golan.efi"}


def test_target_errors_name_the_path_and_what_was_expected(tmp_path):
    with pytest.raises(TargetError) as exc:
        resolve(str(tmp_path / "nowhere"), "x86_64", "full")
    assert "does not exist" in exc.value.cause and "nowhere" in exc.value.cause
    (tmp_path / "not-carbide").mkdir()
    with pytest.raises(TargetError) as exc:
        resolve(str(tmp_path / "not-carbide"), "x86_64", "full")
    assert "pxe/Makefile.toml" in exc.value.cause and "not a carbide checkout" in exc.value.cause


def test_docs_task_name_on_a_newer_tree_is_an_error_with_suggestion():
    with pytest.raises(TargetError) as exc:
        resolve(str(FIXTURES / "host_era"), "x86_64", "full")
    assert exc.value.suggestions[0] == "build-boot-artifacts-x86-host"
    assert exc.value.fix == "set task='build-boot-artifacts-x86-host'"


def test_variants_and_aarch64_on_x86_64_host():
    full = resolve(str(FIXTURES / "docs_era"), "x86_64", "full", host="x86_64")
    assert full.tasks == ["build-boot-artifacts-x86_64"]
    assert full.commands() == [["cargo", "make", "build-boot-artifacts-x86_64"]]
    pkg = resolve(str(FIXTURES / "docs_era"), "x86_64", "package-only", host="x86_64")
    assert pkg.tasks == ["create-ephemeral-image", "ipxe-x86_64"]
    arm = resolve(str(FIXTURES / "docs_era"), "aarch64", "full", host="x86_64")
    assert arm.only_dirs and arm.tasks == ["mkdir-static-aarch64"]
    assert any("cannot be built on an x86_64 host" in n for n in arm.notes)


def test_shell_looking_task_override_is_plain_data(tmp_path):
    # The parameter pattern refuses it; resolve() given it anyway treats it as task names only.
    from runbook_lib.params import STEP2, ParamError
    with pytest.raises(ParamError):
        STEP2.validate({"task": "x; rm -rf ~"})
    with pytest.raises(TargetError) as exc:
        resolve(str(FIXTURES / "docs_era"), "x86_64", "full", task="x; rm -rf ~")
    assert "not defined" in exc.value.cause
    home_marker = Path.home()
    assert home_marker.exists()


def test_shell_looking_carbide_root_dir_is_just_a_missing_path(tmp_path):
    with pytest.raises(TargetError) as exc:
        resolve("x; rm -rf ~", "x86_64", "full")
    assert "'x; rm -rf ~' does not exist" in exc.value.cause


def test_generated_thousand_task_file_plans(tmp_path):
    lines = []
    for i in range(1000):
        deps = ", ".join(f'"t{j}"' for j in (i - 1, i - 7, i - 31) if j >= 0)
        lines.append(f"[tasks.t{i}]\ndependencies = [{deps}]\nscript = \"echo {i}\"\n")
    p = tmp_path / "Makefile.toml"
    p.write_text("\n".join(lines))
    plan = mk.resolve(mk.load(p), "t999", env={})
    assert len(plan.steps) == 1000
    assert plan.steps[0].task == "t0" and plan.steps[-1].task == "t999"


def test_runaway_plan_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(mk, "MAX_PLAN_STEPS", 50)
    body = "".join(f'[tasks.t{i}]\nrun_task = {{ name = ["t{i + 1}", "t{i + 1}"] }}\n' for i in range(12))
    mf = mk.load(write(tmp_path, body + "[tasks.t12]\nscript = 'true'\n"))
    with pytest.raises(mk.PlanTooLarge):
        mk.resolve(mf, "t0", env={})


def test_shell_looking_parameters_are_rejected_or_inert(tmp_path):
    from runbook_lib.build.step import BuildStep
    from runbook_lib.params import STEP2, ParamError
    with pytest.raises(ParamError):
        STEP2.validate({"chown_user": "x; rm -rf ~"})
    with pytest.raises(ParamError):
        STEP2.validate({"arch": "x86_64; reboot"})
    # a path parameter is only ever a path: the plan says it does not exist, nothing runs
    res = BuildStep({"carbide_root_dir": "$(touch /tmp/pwned-by-runbook)"}, log_dir=tmp_path / "logs").preflight()
    assert res.status.value == "ERROR" and "does not exist" in res.cause
    assert not Path("/tmp/pwned-by-runbook").exists()
