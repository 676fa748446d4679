"""`runbook validate`: the repeated loop on real builds and real boots (TCG).

1. `runbook validate` twice on the sandbox (cached build): exit 0 both times; the first report's
   top says what was rebuilt and that there was no earlier good run, the second says "compared with
   the last good run: no artifact changed" and has the milestone deltas.
2. A carbide-like tree whose build (`cargo make`, the fixture's cargo-make stand-in) installs the
   sandbox's real artifacts and, when the developer adds `pxe/initrd/`, packs it into the UKI's
   `.initrd` with cpio + objcopy: a PASS, then an init that cannot run -> the kernel panics -> FAIL,
   the comparison names carbide.efi and where the runs diverge.
About 5 minutes (four boots under TCG).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from runbook_lib.boot.standin import free_port
from runbook_lib.paths import artifacts_dir, sandbox_workdir
from runbook_lib.result import Status
from runbook_lib.validate import ValidateStep

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("no_leftover_processes", "run_history")]

SANDBOX = sandbox_workdir()  # before run_history moves XDG_DATA_HOME: the suite's cached sandbox
ART = artifacts_dir(SANDBOX)
FIXTURE_BIN = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_tree" / "bin"
COPIED = ("ipxe.efi", "ipxe.kpxe", "autoexec.ipxe", "carbide.efi", "carbide.root", "carbide.manifest")


@pytest.fixture(scope="module")
def sandbox_art() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the sandbox build (mkosi) needs root")
    if any(not (ART / n).is_file() for n in COPIED):
        from runbook_lib.sandbox import build

        res = build()
        assert res.status is Status.PASS, f"sandbox build for the validate test failed: {res}"
    return ART


def validate_cli(report_dir: Path, *params: str) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    argv = [sys.executable, "-m", "runbook_lib.cli", "validate", "--report-dir", str(report_dir), "--quiet",
            "-p", "workdir", str(SANDBOX), "-p", "accel", "tcg", "-p", "port", str(free_port()),
            "-p", "boot_timeout_s", "200", *params]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=1200, env=dict(os.environ))
    (js,) = sorted(report_dir.glob("*-04_validate.json"))
    (nb,) = sorted(report_dir.glob("*-04_validate.ipynb"))
    return res, json.loads(js.read_text()), nb


def top_of(nb_path: Path) -> str:
    """The text of the report's first output (the pinned summary, updated at the end)."""
    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.get("outputs"):
            out = cell.outputs[0]
            return str(out.get("data", {}).get("text/plain", "")) + str(out.get("data", {}).get("text/html", ""))
    return ""


def test_validate_twice_on_the_sandbox(tmp_path, sandbox_art):
    res, data, nb = validate_cli(tmp_path / "r1")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    top = top_of(nb)
    assert "PASS" in top and "rebuilt" in top
    assert "nothing: the build was up to date" in top or "carbide.efi" in top
    assert "no earlier good run" in top

    res, data, nb = validate_cli(tmp_path / "r2")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    top = top_of(nb)
    assert "compared with the last good run: no artifact changed" in top, top
    text = nb.read_text()
    assert "delta s" in text and "login prompt" in text  # the milestone table with its deltas


def make_tree(root: Path, art: Path) -> Path:
    (root / "pxe").mkdir(parents=True)
    (root / "Cargo.toml").write_text("[workspace]\nmembers = []\n")
    files = " ".join(COPIED)
    (root / "pxe" / "Makefile.toml").write_text(f'''
[tasks.build-boot-artifacts-x86_64]
dependencies = ["install-artifacts", "set-uki-initrd"]

[tasks.install-artifacts]
script = """
set -e
mkdir -p static/blobs/internal/x86_64
for f in {files}; do cp "{art}/$f" static/blobs/internal/x86_64/; done
"""

[tasks.set-uki-initrd]
condition = {{ files_exist = ["${{CARGO_MAKE_WORKING_DIRECTORY}}/initrd"] }}
script = """
set -e
(cd initrd && find . | cpio -o -H newc --quiet) > initrd.cpio
objcopy --remove-section .initrd --add-section .initrd=initrd.cpio \\
  --change-section-vma .initrd=0x3000000 static/blobs/internal/x86_64/carbide.efi uki.tmp
mv uki.tmp static/blobs/internal/x86_64/carbide.efi
"""
''')
    return root


@pytest.mark.needs_tool("cargo", "the tree is built with `cargo make` (the fixture's cargo-make stand-in)")
@pytest.mark.needs_tool("objcopy", "the tree's build rewrites the UKI's .initrd")
@pytest.mark.needs_tool("cpio", "the tree's build packs the new initrd")
def test_an_init_that_panics_is_named_against_the_last_good_run(tmp_path, sandbox_art, monkeypatch):
    monkeypatch.setenv("PATH", f"{FIXTURE_BIN}{os.pathsep}{os.environ['PATH']}")
    tree = make_tree(tmp_path / "carbide", sandbox_art)
    # uki_cmdline auto: not sandbox artifacts (no provenance file), so the UKI's own .cmdline is
    # passed explicitly (iPXE would otherwise hand it the image name): the kernel console is on ttyS0
    params = {"carbide_root_dir": str(tree), "accel": "tcg", "boot_timeout_s": 200}

    def run(name: str) -> ValidateStep:
        step = ValidateStep(dict(params, port=free_port()), log_dir=tmp_path / name)
        step.preflight()
        step.run()
        step.result()
        return step

    good = run("good")
    assert good.result().status is Status.PASS, good.result()
    assert good.boot.plan is not None and good.boot.plan.boot_path.cmdline == "console=tty0 console=ttyS0,115200"
    assert good.boot.run_ is not None and good.boot.run_.analysis is not None
    reached = [m.name for m in good.boot.run_.analysis.milestones]
    assert "linux_version" in reached, reached  # the kernel printed on ttyS0: its own cmdline arrived

    # the developer's change: an initrd whose /init cannot run (no shell in it): the kernel panics
    init = tree / "pxe" / "initrd" / "init"
    init.parent.mkdir()
    init.write_text("#!/bin/sh\necho this init has no shell to run it\n")
    init.chmod(0o755)
    bad = run("bad")
    res = bad.result()
    assert res.status is Status.FAIL, res
    assert "panic" in (res.cause or "").lower() + res.summary.lower(), res
    c = bad.comparison
    assert c is not None and c.last_good is not None and c.last_good.verdict == "PASS"
    assert [a.name for a in c.artifacts] == ["carbide.efi"], c.sentence
    assert c.sentence.startswith("last good "), c.sentence
    assert "it reached login prompt; this run stopped at" in c.sentence and "carbide.efi" in c.sentence
    assert c.first_difference, c.to_dict()
    rows = dict(bad.summary_rows())
    assert rows["compared with last good"].startswith("last good ")
    assert rows["verdict"].startswith("FAIL")
