"""The step protocol (runbook_lib/step.py): one shape, one registry, no import cycles, one
definition of each system path."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from runbook_lib import requirements as reqs
from runbook_lib.result import Status, StepResult
from runbook_lib.step import Step, combine, state_dir

PKG = Path(__file__).resolve().parents[2] / "runbook_lib"


def part(name: str, status: Status, cause: str | None = None) -> StepResult:
    return StepResult(f"step 2: build: {name}", status, f"{name} {status.value}", cause=cause,
                      fix=f"fix {name}" if cause else None)


def test_first_cause_is_the_earliest_failing_part_and_status_the_worst():
    res = combine("step 2: build", [part("pre-flight", Status.PASS),
                                   part("run", Status.FAIL, "task ipxe-x86_64 exited 2"),
                                   part("artifacts", Status.FAIL, "ipxe.efi missing"),
                                   part("ownership", Status.ERROR, "sudo refused")])
    assert res.status is Status.ERROR  # the exit code still reflects the worst
    assert res.cause == "task ipxe-x86_64 exited 2" and res.fix == "fix run"
    assert res.summary.startswith("run: run FAIL") and "then ownership: ERROR" in res.summary
    assert list(res.tables["parts"]["part"]) == ["pre-flight", "run", "artifacts", "ownership"]


def test_all_pass_and_nothing_ran():
    ok = combine("step 3: boot", [part("pre-flight", Status.PASS), part("run", Status.PASS)])
    assert ok.status is Status.PASS and ok.cause is None and ok.summary == "run PASS"
    three = combine("step 2: build", [part("run", Status.PASS), part("ownership", Status.PASS)])
    assert three.summary == "run PASS"  # the run part says what the step did, not the last part
    empty = combine("step 3: boot", [])
    assert empty.status is Status.ERROR and empty.fix


def test_state_dir_is_per_tree_under_xdg_data(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    a, b = state_dir(tmp_path / "carbide"), state_dir(tmp_path / "other" / "carbide")
    assert a != b and a.parent == b.parent == tmp_path / "data" / "carbide-runbooks" / "state"
    assert a.name.startswith("carbide-") and state_dir(tmp_path / "carbide") == a


class _Demo(Step):
    from runbook_lib.params import STEP1 as spec  # noqa: N811
    number, name = 9, "demo"
    registry_step = reqs.BOOT

    def __init__(self, params, log_dir, pre: Status) -> None:
        super().__init__(params, log_dir)
        self.pre, self.ran = pre, False

    def _preflight(self) -> StepResult:
        return StepResult(self.part_title("pre-flight"), self.pre, "checked", cause="x" if self.pre is not Status.PASS else None)

    def _run(self) -> StepResult:
        self.ran = True
        return StepResult(self.part_title("run"), Status.PASS, "done")


def test_run_after_a_failed_preflight_does_not_run(tmp_path):
    s = _Demo({}, tmp_path, Status.ERROR)
    res = s.run()
    assert not s.ran and res.status is Status.ERROR and res.summary.startswith("not run")
    assert s.result().status is Status.ERROR and s.result().step == "step 9: demo"
    ok = _Demo({}, tmp_path, Status.PASS)
    ok.run()
    assert ok.ran and [r.step for r in ok.sections()] == ["step 9: demo: pre-flight", "step 9: demo: run"]
    with pytest.raises(KeyError, match="no part 'nope'"):
        ok.section("nope")


def test_every_step_part_follows_the_naming_pattern(tmp_path):
    from runbook_lib.boot.step import BootStep
    from runbook_lib.build.step import BuildStep
    from runbook_lib.tools import ToolsStep

    for cls, title in ((ToolsStep, "step 1: tools"), (BuildStep, "step 2: build"), (BootStep, "step 3: boot")):
        s = cls({}, tmp_path / cls.__name__)
        assert s.title == title and s.part_title("run") == f"{title}: run"
        assert s.requires(), f"{title} declares no requirements"


def test_registry_entries_are_used_by_the_steps_that_name_them():
    names = {r.name for r in reqs.REGISTRY}
    assert len(names) == len(reqs.REGISTRY), "duplicate requirement names"
    boot = {r.name for r, _ in reqs.for_step(reqs.BOOT, reqs.Needs(firmware=frozenset({"bios"}), tpm=True))}
    assert {"qemu-system-x86_64", "SeaBIOS (BIOS firmware)", "swtpm", "stand-in port"} <= boot
    assert "OVMF (UEFI firmware)" not in boot and "mkosi" not in boot
    build = {r.name for r, _ in reqs.for_step(reqs.BUILD, reqs.Needs(mode="carbide"))}
    assert {"cargo", "cargo-make", "mkosi", "debootstrap"} <= build and "objcopy" not in build
    tools = reqs.for_step(reqs.TOOLS, reqs.Needs())
    assert len(tools) == len(reqs.REGISTRY)  # step 1 renders every entry


# ---- imports and paths ----------------------------------------------------------------------
def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(PKG.parent).with_suffix("").parts
        mods[".".join(rel[:-1] if rel[-1] == "__init__" else rel)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every runbook_lib module `name` imports, at any depth of the file (lazy ones too)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in mods)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                mod = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            for a in node.names:
                target = f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod
                if target in mods:
                    out.add(target)
    out.discard(name)
    return out


def test_no_import_cycle_inside_runbook_lib():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    # a cycle through a package's own __init__ re-exports is still a cycle: no exemption
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_cycle_check_can_fail(tmp_path):
    """The walker sees a lazy import inside a function (how the boot report/step cycle hid)."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from .b import g\n")
    assert _imports("pkg.a", a, {"pkg.a": a, "pkg.b": a}) == {"pkg.b"}


SYSTEM_PATHS = [r"/usr/share/OVMF", r"/usr/share/seabios", r"linuxx64\.efi\.stub", r"/etc/qemu/bridge\.conf",
                r"qemu-bridge-helper\"", r"/usr/lib/ipxe/qemu"]


@pytest.mark.parametrize("pattern", SYSTEM_PATHS)
def test_each_system_path_is_defined_once(pattern):
    hits = [p.relative_to(PKG).as_posix() for p in PKG.rglob("*.py")
            if re.search(r"Path\(\"[^\"]*" + pattern, p.read_text()) or
            re.search(r"= \"[^\"]*" + pattern, p.read_text())]
    assert hits == ["system_paths.py"], hits
