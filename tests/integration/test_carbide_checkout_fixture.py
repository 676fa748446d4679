"""The carbide checkout factory (tests/fixtures/carbide_tree/checkout.py) makes what it claims.

Every case is checked with the real tools a checker will use on it: git (submodule status,
describe, status), the pinned mkosi launcher, cargo locate-project, tomllib, patch and make.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.needs_tool("git", "the factory creates real git repositories and submodules")]

MKOSI, IPXE = "pxe/mkosi", "pxe/ipxe/upstream"


def run(root: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(argv), cwd=root, capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, f"{argv} exited {out.returncode}: {out.stderr}"
    return out


def submodule_prefixes(root: Path) -> dict[str, str]:
    lines = run(root, "git", "submodule", "status").stdout.splitlines()
    return {line[1:].split()[1]: line[0] for line in lines}


def recorded_commit(root: Path, path: str) -> str:
    return run(root, "git", "ls-tree", "HEAD", path).stdout.split()[2]


FACTORY = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree" / "checkout.py"


def factory():
    """The factory module, loaded by path under the name the carbide_checkout fixture uses."""
    name = "carbide_tree_checkout_factory"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FACTORY)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_default_checkout_is_initialised_tagged_clean_and_fast(carbide_checkout):
    t0 = time.monotonic()
    root = carbide_checkout()
    elapsed = time.monotonic() - t0
    print(f"\nmake_checkout() default: {elapsed:.2f} s")
    assert elapsed < 5.0  # the brief's budget is well under 2 s; 5 s leaves room for a loaded CI host

    assert root.name == "carbide" and (root / ".git").is_dir()
    gitmodules = run(root, "git", "config", "-f", ".gitmodules", "--get-regexp", r"\.path$").stdout
    assert sorted(line.split()[1] for line in gitmodules.splitlines()) == [IPXE, MKOSI]
    assert submodule_prefixes(root) == {MKOSI: " ", IPXE: " "}
    for path in (MKOSI, IPXE):  # at the recorded commit, which is the upstream's FIRST commit
        head = run(root / path, "git", "rev-parse", "HEAD").stdout.strip()
        assert head == recorded_commit(root, path)
        assert run(root / path, "git", "rev-list", "--count", "HEAD").stdout.strip() == "1"
        assert run(root / path, "git", "rev-list", "--count", "--all").stdout.strip() == "2"

    # what the Makefile's [env] runs for PKG_VERSION / IPXE_BANNER_VERSION
    described = run(root, "git", "describe", "--tags", "--first-parent", "--always", "--long").stdout.strip()
    assert re.fullmatch(r"v2025\.11\.0-0-g[0-9a-f]+", described), described
    assert run(root, "git", "cat-file", "-t", "v2025.11.0").stdout.strip() == "tag"  # annotated
    assert run(root, "git", "status", "--porcelain").stdout == ""

    assert run(root, "pxe/mkosi/bin/mkosi", "--version").stdout.strip() == "mkosi 25.3"
    pyproject = tomllib.loads((root / MKOSI / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.9"
    assert (root / MKOSI / "mkosi" / "__init__.py").is_file()


@pytest.mark.needs_tool("cargo", "REPO_ROOT in the fixture's Makefile comes from cargo locate-project")
def test_cargo_finds_the_workspace_root_and_the_toolchain_file_works(carbide_checkout):
    root = carbide_checkout()
    for cwd in (root, root / "pxe"):  # cargo-make runs [env] scripts from pxe/
        out = run(cwd, "cargo", "locate-project", "--workspace", "--message-format", "plain")
        assert Path(out.stdout.strip()) == root / "Cargo.toml"
    channel = tomllib.loads((root / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    assert channel == factory().local_rust_channel()
    # the default channel is one this machine's rustc runs under (rustup honours the file)
    inside = run(root, "rustc", "--version", check=False)
    assert inside.returncode == 0 and inside.stdout.startswith("rustc "), inside.stderr


def test_toolchain_param_sets_the_channel(carbide_checkout):
    root = carbide_checkout(toolchain="1.88.0")
    assert tomllib.loads((root / "rust-toolchain.toml").read_text()) == {"toolchain": {"channel": "1.88.0"}}


def test_missing_submodules_look_like_a_clone_without_recurse(carbide_checkout):
    root = carbide_checkout(submodules="missing")
    assert submodule_prefixes(root) == {MKOSI: "-", IPXE: "-"}
    for path in (MKOSI, IPXE):
        assert (root / path).is_dir() and not any((root / path).iterdir())
    assert not (root / ".git" / "modules").exists()
    assert not (root / MKOSI / "bin" / "mkosi").exists()
    assert run(root, "git", "status", "--porcelain").stdout == ""


def test_wrong_commit_moves_pxe_mkosi_only(carbide_checkout):
    root = carbide_checkout(submodules="wrong_commit")
    assert submodule_prefixes(root) == {MKOSI: "+", IPXE: " "}
    head = run(root / MKOSI, "git", "rev-parse", "HEAD").stdout.strip()
    assert head != recorded_commit(root, MKOSI)
    # the launcher is still there and runnable: only the commit is wrong
    assert run(root, "pxe/mkosi/bin/mkosi", "--version").stdout.strip() == "mkosi 25.3"


def test_no_tags_makes_git_describe_tags_fail(carbide_checkout):
    root = carbide_checkout(tags=False)
    out = run(root, "git", "describe", "--tags", check=False)
    assert out.returncode != 0 and "No names found" in out.stderr
    # the Makefile's --always form still answers, with a bare commit id
    always = run(root, "git", "describe", "--tags", "--first-parent", "--always", "--long").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{7,40}", always), always
    assert submodule_prefixes(root) == {MKOSI: " ", IPXE: " "}


def test_dirty_modifies_a_tracked_file(carbide_checkout):
    root = carbide_checkout(dirty=True)
    assert run(root, "git", "status", "--porcelain").stdout.splitlines() == [" M pxe/mkosi.conf"]


def test_mkosi_version_param_is_what_the_pinned_launcher_prints(carbide_checkout):
    root = carbide_checkout(mkosi_version="24.3")
    assert run(root, "pxe/mkosi/bin/mkosi", "--version").stdout.strip() == "mkosi 24.3"


def test_makefile_has_the_structure_of_todays_carbide(carbide_checkout):
    root = carbide_checkout()
    data = tomllib.loads((root / "pxe" / "Makefile.toml").read_text())
    assert data["config"]["min_version"] == "0.37.0"
    env = data["env"]
    assert "cargo locate-project" in env["REPO_ROOT"]["script"][0] and "--workspace" in env["REPO_ROOT"]["script"][0]
    for key in ("PKG_VERSION", "IPXE_BANNER_VERSION"):
        assert "git describe --tags --first-parent --always --long" in env[key]["script"][0]
    assert "${REPO_ROOT}" in env["ROOT_CA_PATH"]["value"] and "sudo" in env["ELEVATE"]["script"][0]
    tasks = data["tasks"]
    top = tasks["build-boot-artifacts-x86-host"]["dependencies"]
    assert {"name": "package-fixture-cli-x86_64", "path": "${REPO_ROOT}"} in top
    assert tasks["cleanup-pxe-submodule"]["cwd"] == "${REPO_ROOT}/pxe/ipxe/upstream"
    assert tasks["mkosi-generate-build-tmpdir"]["script_runner"] == "@duckscript"
    pinned = "${REPO_ROOT}/pxe/mkosi/bin/mkosi"
    assert pinned in tasks["mkosi-build-scout-x86_64"]["script"]
    assert tasks["mkosi-build-scout-loader-x86_64"]["command"] == "/bin/bash"
    assert pinned in tasks["mkosi-build-scout-loader-x86_64"]["args"][1]
    assert tasks["mkosi-clean-scout-x86_64"]["command"] == pinned
    assert tasks["copy-root-ca-x86_64"]["condition"] == {"env_not_set": ["SA_ENABLEMENT"]}
    build = tasks["ipxe-build-efi-x86_64"]
    assert build["cwd"] == "ipxe/upstream/src" and "bin-x86_64-efi/snponly.efi" in build["script"]
    assert 'if [ -n "${SA_ENABLEMENT}" ]' in build["script"]
    aarch64 = tasks["ipxe-build-efi-aarch64"]["script"]
    assert aarch64.index('if [ -n "${SA_ENABLEMENT}" ]') < aarch64.index("docker run") < aarch64.index("else")
    assert "dpkg-scanpackages" in tasks["setup-apt-repo-amd64"]["script"]
    copied = {Path(t["args"][-1]).name for t in tasks.values() if t.get("command") == "cp"}
    assert {"scout.efi", "scout.cpio.zst", "qcow-imager.efi"} <= copied
    # the workspace-level task the { name, path } dependency reaches
    assert "package-fixture-cli-x86_64" in tomllib.loads((root / "Makefile.toml").read_text())["tasks"]
    # mkosi configuration a checker reads for formats and distributions
    scout = (root / "pxe/mkosi.profiles/scout-oss-x86_64/mkosi.conf").read_text()
    loader = (root / "pxe/mkosi.profiles/scout-loader-x86_64/mkosi.conf").read_text()
    assert "Format=cpio" in scout and "ToolsTree=default" in scout and "Distribution=ubuntu" in scout
    assert "Format=uki" in loader and "Bootable=yes" in loader


@pytest.mark.parametrize("count", [7, 1000])
def test_extra_tasks_are_appended_and_hooked_into_the_requested_task(carbide_checkout, count):
    t0 = time.monotonic()
    root = carbide_checkout(makefile_extra_tasks=count)
    print(f"\nmake_checkout(makefile_extra_tasks={count}): {time.monotonic() - t0:.2f} s")
    data = tomllib.loads((root / "pxe" / "Makefile.toml").read_text())
    names = factory().extra_task_names(count)
    tasks = data["tasks"]
    assert set(names) <= set(tasks)
    assert tasks["fixture-extra-tasks"]["dependencies"] == names
    assert tasks["build-boot-artifacts-x86-host"]["dependencies"][0] == "fixture-extra-tasks"
    for i, name in enumerate(names):
        task = tasks[name]
        assert "script" in task or "command" in task
        assert all(names.index(dep) < i for dep in task.get("dependencies", []))
    assert any(tasks[n].get("dependencies") for n in names[1:])
    assert any("condition" in tasks[n] for n in names) and any("cwd" in tasks[n] for n in names)
    assert run(root, "git", "status", "--porcelain").stdout == ""  # part of the committed tree


@pytest.mark.needs_tool("patch", "the fixture's iPXE patch tasks run patch -p1 --forward")
@pytest.mark.needs_tool("make", "the fixture's iPXE build task runs make in ipxe/upstream/src")
def test_ipxe_patches_apply_and_the_stand_in_make_builds(carbide_checkout):
    root = carbide_checkout()
    upstream = root / IPXE
    for patch in sorted((root / "pxe/ipxe/local").glob("*.patch")):
        run(upstream, "patch", "-p1", "--forward", "-i", str(patch))
    assert (upstream / "src/config/tpm.h").is_file()
    run(upstream / "src", "make", "-j", "bin-x86_64-efi/snponly.efi", "VERSION=v1", "DEBUG=tls",
        f"EMBED={root}/pxe/ipxe/local/embed.ipxe")
    assert (upstream / "src/bin-x86_64-efi/snponly.efi").read_bytes().startswith(b"MZ")


def test_factory_refuses_a_used_destination_and_bad_options(tmp_path):
    make = factory().make_checkout
    with pytest.raises(ValueError):
        make(tmp_path / "x", submodules="sometimes")
    make(tmp_path / "y")
    with pytest.raises(FileExistsError):
        make(tmp_path / "y")
    assert os.access(tmp_path / "y" / "carbide" / MKOSI / "bin" / "mkosi", os.X_OK)
