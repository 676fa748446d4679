"""Step-2 results render bounded, escaped and without the root password."""

from __future__ import annotations

import pandas as pd

from runbook_lib.build.driver import scrub_file
from runbook_lib.report.sanitize import redact
from runbook_lib.build.render import MAX_ROWS, BuildResult
from runbook_lib.result import RESULT_MIME, Status


def test_html_escapes_log_excerpt_and_tables_and_bounds_rows():
    df = pd.DataFrame({"package": [f"<pkg{i}>" for i in range(500)]})
    r = BuildResult("step 2: run", Status.FAIL, "task 'x' failed", cause="exit 1", fix="fix x",
                    tables={"packages": df}, excerpt="\x1b[31m<script>alert(1)</script>\x1b[0m")
    html = r._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "\x1b" not in html
    assert "&lt;pkg0&gt;" in html and "&lt;pkg499&gt;" in html and "&lt;pkg250&gt;" not in html
    assert html.count("<tr>") <= MAX_ROWS + 3
    bundle = r._repr_mimebundle_()
    assert bundle[RESULT_MIME]["status"] == "FAIL"
    assert "log excerpt" in str(r)


def test_root_password_is_hidden_in_commands_and_logs(tmp_path):
    assert redact("builder --root-password hunter2 --force") == "builder --root-password *** --force"
    assert redact("x --root-password='a b'") == "x --root-password=***"
    log = tmp_path / "build.log"
    log.write_text("$ python -m runbook_lib.sandbox build --root-password carbide\ncarbide.efi ok\n")
    scrub_file(log)
    text = log.read_text()
    assert "--root-password ***" in text and "carbide.efi ok" in text  # only the value is hidden
