"""What the README's test command collects: the committed notebooks (nbval), never the fixture
notebooks that end badly on purpose (a dead kernel, sys.exit, an exception)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_nbval_collects_the_runbooks_and_no_fixture_notebook(repo):
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval-lax",
                          "-p", "no:cacheprovider"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    items = res.stdout.splitlines()
    assert not [i for i in items if "fixtures/" in i], [i for i in items if "fixtures/" in i][:5]
    for nb in ("00_start_here", "01_install_build_tools", "02_build_ipxe_image", "03_pxe_boot_vm", "04_validate"):
        assert any(i.startswith(f"notebooks/{nb}.ipynb::") for i in items), nb
