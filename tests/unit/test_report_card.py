"""The report's summary card (escaped, links relative to the report), long tables folded, logs
embedded within a budget (head + tail, the cut said), and a page that fetches nothing."""

from __future__ import annotations

import base64
import gzip
import re

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from runbook_lib.report import card, embed
from runbook_lib.report.export import render_html
from runbook_lib.result import Status, StepResult

MARKUP = "<img src=x onerror=alert(1)>"


def _summary(tmp_path, **kw):
    base = {"notebook": "03_pxe_boot_vm", "title": "Step 3: PXE boot", "status": "FAIL",
            "started": "2026-11-26T18:01:28.751062Z", "duration_s": 83.4,
            "host": {"hostname": "vm", "distro": "Debian 12", "kernel": "6.1",
                     "accel": {"used": "tcg", "why": "KVM unusable, falling back to TCG"}},
            "first_failure": {"step": "step 3: boot: run", "status": "FAIL", "summary": "no login prompt",
                              "cause": f"http_not_found at serial line 33: {MARKUP}", "fix": f"rebuild {MARKUP}"},
            "steps": [{"step": "step 3: boot: run", "status": "FAIL"}],
            "paths": {"log_dir": str(tmp_path / "run.logs")},
            "logs": [{"name": "boot/qemu.log", "size": 10}, {"name": "boot/serial.log", "size": 5000}]}
    base.update(kw)
    return base


def test_the_card_escapes_everything_and_links_the_logs_relative_to_the_report(tmp_path):
    html = card.card_html(_summary(tmp_path), html_path=tmp_path / "run.html",
                          sections=[("Boot", "Boot <i>now</i>")], result_anchors={"step 3: boot: run": "runbook-result-0"})
    assert MARKUP not in html and html.count("&lt;img src=x onerror=alert(1)&gt;") == 2
    assert "data-verdict='FAIL'" in html and card.VERDICT_COLOURS["FAIL"] in html
    assert "2026-11-26 18:01:28 UTC" in html and "1 min 23 s" in html and "tcg" in html
    assert "href='#runbook-result-0'" in html and "href='#Boot'" in html and "Boot &lt;i&gt;now&lt;/i&gt;" in html
    logs = re.findall(r"class='runbook-card-log' href='([^']+)'", html)
    assert logs == ["run.logs/boot/serial.log", "run.logs/boot/qemu.log"]  # the serial console first


def test_long_tables_fold_and_results_get_anchors():
    import pandas as pd

    long = StepResult("step 3: boot: run", Status.PASS, "ok", tables={"timeline": pd.DataFrame({"a": range(40)})})
    short = StepResult("step 3: boot: pre-flight", Status.PASS, "ok", tables={"checks": pd.DataFrame({"a": range(5)})})
    nb = new_notebook(cells=[new_code_cell("x", outputs=[new_output("display_data", data=r._repr_mimebundle_())])
                             for r in (short, long)])
    anchors = card.prepare_outputs(nb)
    assert anchors == {"step 3: boot: pre-flight": "runbook-result-0", "step 3: boot: run": "runbook-result-1"}
    first, second = (c.outputs[0].data["text/html"] for c in nb.cells)
    assert "runbook-long-table" not in first and "id='runbook-result-0'" in first
    assert "<details class='runbook-long-table'><summary>table of 40 rows" in second


def test_an_embedded_log_keeps_head_and_tail_within_its_budget(tmp_path):
    log = tmp_path / "serial.log"
    lines = [f"[+{i:8.3f}s] line {i} {'x' * (i % 50)} {MARKUP if i == 5 else ''}\n" for i in range(60000)]
    log.write_text("".join(lines))
    item = embed.embed_log("serial console", "a", log, budget=40_000)
    assert len(item.b64) <= 40_000 and item.cut_bytes > 0 and item.cut_lines > 0
    text = gzip.decompress(base64.b64decode(item.b64)).decode()
    assert text.startswith(lines[0]) and text.endswith(lines[-1]) and MARKUP in text  # the page shows it as text
    assert f"{item.cut_bytes} bytes ({item.cut_lines} lines) cut here" in text
    assert "cut from the middle" in item.note and str(log.stat().st_size) in item.note
    whole = embed.embed_log("serial console", "a", log, budget=10_000_000)
    assert whole.cut_bytes == 0 and gzip.decompress(base64.b64decode(whole.b64)).decode() == "".join(lines)
    page = embed.section_html([item])
    assert MARKUP not in page and "DecompressionStream" in page and "<script src" not in page


def test_the_page_opens_with_the_card_and_fetches_nothing(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("# Title\n\n## Boot"),
                             new_code_cell("r", outputs=[new_output("display_data", data=StepResult(
                                 "step 3: boot: run", Status.FAIL, "no login", cause=MARKUP)._repr_mimebundle_())])])
    nbformat.validate(nb)
    page = render_html(nb, summary=_summary(tmp_path), html_path=tmp_path / "run.html")
    assert (page.index("id='runbook-summary-card'") < page.index('<div class="jp-Cell jp-CodeCell')
            < re.search(r"id=[\"']runbook-result-0", page).start())  # type: ignore[union-attr]
    assert not re.search(r"<script[^>]+src=", page) and "cdnjs" not in page and "unpkg" not in page
    assert MARKUP not in page
    assert "href='#Title'" in page and "href='#Boot'" in page
