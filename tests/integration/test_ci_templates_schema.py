"""ci/ passes check-jsonschema's vendored GitHub Actions and GitLab CI schemas, offline; a broken
copy of each does not (so the check can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CASES = [("github-actions.yml", "vendor.github-workflows"), ("gitlab-ci.yml", "vendor.gitlab-ci")]


def check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its built-in schema; as root in a network namespace of its own (no
    network at all), which proves the check never needs to download anything."""
    argv = [str(Path(sys.executable).with_name("check-jsonschema")), "--builtin-schema", schema, str(path)]
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--net", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name, schema", CASES)
def test_template_is_valid_offline(repo, name, schema):
    res = check(schema, repo / "ci" / name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok -- validation done" in res.stdout


BREAKAGES = {
    # a job without runs-on, and a step key GitHub does not know
    "github-actions.yml": [("    runs-on: ubuntu-24.04\n    timeout-minutes: 60\n", "    timeout-minutes: 60\n"),
                           ("      - uses: actions/checkout@v4\n", "      - usees: actions/checkout@v4\n")],
    # artifacts kept 'sometimes', and a cache policy GitLab does not know
    "gitlab-ci.yml": [("    when: always\n", "    when: sometimes\n"),
                      ("    policy: pull\n", "    policy: sometimes\n")],
}


@pytest.mark.parametrize("name, schema", CASES)
@pytest.mark.parametrize("which", [0, 1])
def test_a_broken_template_fails(repo, tmp_path, name, schema, which):
    old, new = BREAKAGES[name][which]
    text = (repo / "ci" / name).read_text()
    assert old in text
    broken = tmp_path / name
    broken.write_text(text.replace(old, new, 1))
    res = check(schema, broken)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "validation errors" in (res.stdout + res.stderr).lower() or "error" in res.stdout.lower()
