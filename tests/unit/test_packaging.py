"""pyproject.toml and environment.yml carry the same dependencies."""

from __future__ import annotations

import re
import tomllib


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject(repo):
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["test"]}
    env_text = (repo / "environment.yml").read_text()
    listed = {_name(m.group(1)) for m in re.finditer(r"^\s*-\s+([A-Za-z0-9_.\-]+[^\n#]*)", env_text, re.M)}
    missing = wanted - listed
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    assert "python=3.11" in env_text.replace(" ", "")
