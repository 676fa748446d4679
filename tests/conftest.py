"""Shared fixtures: the repo root, a guard that no test leaves a child process behind, and
the `needs_tool` marker.

Processes are tracked, not guessed by name: every child that ``runbook_lib.shell.spawn``
starts is recorded in the registry directory ``$RUNBOOK_PROC_REGISTRY`` (``.ci/run`` creates
one per run; a plain ``pytest`` run gets its own here). ``no_leftover_processes`` checks and
stops only what was registered during its test, never the machine's own qemu or dnsmasq.
"""

from __future__ import annotations

import re

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from runbook_lib import shell

REPO = Path(__file__).resolve().parent.parent
_OWN_REGISTRY: Path | None = None


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    global _OWN_REGISTRY
    config.addinivalue_line(
        "markers", "needs_tool(name, why): skip when the program is not on PATH; under CI=true "
                   "fail instead (scripts/test.sh installs every test dependency)")
    if not os.environ.get(shell.REGISTRY_ENV):
        _OWN_REGISTRY = Path(tempfile.mkdtemp(prefix="runbook-procs-"))
        os.environ[shell.REGISTRY_ENV] = str(_OWN_REGISTRY)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With a registry of our own (no .ci/run around us), check it at the end like .ci/run does."""
    if _OWN_REGISTRY is None:
        return
    left = shell.registry_leftovers(_OWN_REGISTRY)
    if left:
        shell.stop_leftovers(left)
        print("\nprocesses left running by the tests (now stopped):\n"
              + "\n".join(lo.describe() for lo in left))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(_OWN_REGISTRY, ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers(name="needs_tool"):
        name = mark.args[0]
        why = mark.args[1] if len(mark.args) > 1 else mark.kwargs.get("why", "")
        if shutil.which(name) is None:
            msg = f"needs {name} on PATH{': ' + why if why else ''}"
            if in_ci():
                pytest.fail(f"{msg} (CI=true: a missing test dependency is a failure; "
                            "scripts/test.sh installs it)", pytrace=False)
            pytest.skip(msg)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def no_leftover_processes():
    """Fail the test if a process it started through shell.spawn is still running afterwards."""
    registry = Path(os.environ[shell.REGISTRY_ENV])
    before = set(registry.glob("*.json"))
    yield
    new = [p for p in registry.glob("*.json") if p not in before]
    left = shell.registry_leftovers(registry, new)
    if left:
        shell.stop_leftovers(left)
        pytest.fail("processes left running (now stopped):\n" + "\n".join(lo.describe() for lo in left))


PINNED_IPXE = "ipxe-d7e58c5a812988c341ec4ad19f79faf067388d58.tar.gz"  # the commit carbide pins


def shared_data_dir() -> Path | None:
    """The workplace's third-party test inputs (``../shared/data`` beside the work tree)."""
    for cand in (os.environ.get("RUNBOOK_SHARED_DATA"), REPO.parent / "shared" / "data",
                 Path("/work/shared/data")):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def pinned_ipxe_source() -> Path:
    """The iPXE source at the commit carbide pins, as a tarball (no download works here)."""
    data = shared_data_dir()
    path = data / PINNED_IPXE if data else None
    if path is None or not path.is_file():
        msg = (f"the pinned iPXE source {PINNED_IPXE} is not in ../shared/data "
               "(set RUNBOOK_SHARED_DATA to the directory that holds it)")
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def needs_root() -> None:
    """Network namespaces (the testnet) need root: skipped without it locally, a failure in CI."""
    if os.geteuid() != 0:
        msg = "the test network needs root (network namespaces)"
        if in_ci():
            pytest.fail(f"{msg} (CI=true: CI runs as root; a skip here would hide the test)", pytrace=False)
        pytest.skip(msg)


def load_fixture_module(relpath: str):
    """A module under tests/fixtures/, loaded by path once per process (fixture dirs are not
    packages; benchmarks load the same files the same way)."""
    import importlib.util
    import sys

    name = "fixture_" + re.sub(r"\W", "_", relpath.removesuffix(".py"))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "fixtures" / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fixture_module():
    """`fixture_module("big_serial_log.py")`: a helper module under tests/fixtures/."""
    return load_fixture_module


@pytest.fixture(scope="session")
def junit_schema():
    """The JUnit XSD CI systems read (Jenkins xUnit's junit-10.xsd, fetched once and sha256-pinned
    by tests/fixtures/junit_xsd.py), compiled with lxml."""
    from lxml import etree

    try:
        path = load_fixture_module("junit_xsd.py").junit_xsd()
    except RuntimeError as exc:
        if in_ci():
            pytest.fail(f"junit-10.xsd not available (CI=true: PyPI must be reachable): {exc}", pytrace=False)
        pytest.skip(f"junit-10.xsd not available: {exc}")
    return etree.XMLSchema(etree.parse(str(path)))


@pytest.fixture
def carbide_checkout(tmp_path_factory):
    """A callable ``(**opts) -> Path``: a fresh carbide-like git checkout with real submodules.

    Options as ``make_checkout`` in tests/fixtures/carbide_tree/checkout.py: submodules
    ("init" | "missing" | "wrong_commit"), tags, dirty, mkosi_version, toolchain,
    makefile_extra_tasks. Each call builds in its own new temporary directory.
    """
    factory = load_fixture_module("carbide_tree/checkout.py")

    def make(**opts):
        return factory.make_checkout(tmp_path_factory.mktemp("carbide_checkout"), **opts)

    return make


@pytest.fixture(autouse=True)
def _no_run_history_by_default(request, monkeypatch):
    """Steps 2 and 3 record every run in the user's run history (~/.local/share/...): tests do
    not, unless they ask for the `run_history` fixture (records under a temporary XDG_DATA_HOME)."""
    if "run_history" not in request.fixturenames:
        monkeypatch.setenv("RUNBOOK_HISTORY", "off")


@pytest.fixture
def run_history(tmp_path, monkeypatch):
    """Run history on, kept under this test's own XDG_DATA_HOME (returned)."""
    monkeypatch.delenv("RUNBOOK_HISTORY", raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data
