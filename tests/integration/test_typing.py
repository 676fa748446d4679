"""The library is typed: mypy must find no errors in runbook_lib."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_mypy_is_clean(repo):
    from mypy import api

    out, err, status = api.run(["--ignore-missing-imports", "--cache-dir", str(repo / ".mypy_cache"),
                                str(repo / "runbook_lib")])
    assert status == 0, out + err
