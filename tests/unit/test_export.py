from __future__ import annotations

import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from runbook_lib.report.export import bound_outputs, redact_notebook, summarize, write_reports
from runbook_lib.result import RESULT_MIME, Status, StepResult


def _nb(results, error=False, secret="s3cr3t-pw"):
    nb = new_notebook()
    nb.metadata["papermill"] = {"parameters": {"root_password": secret, "mode": "sandbox"}}
    inj = new_code_cell(f'root_password = "{secret}"\n', metadata={"tags": ["injected-parameters"]})
    cells = [inj]
    for r in results:
        cells.append(new_code_cell("r", outputs=[new_output("display_data", data=r._repr_mimebundle_())]))
    cells.append(new_code_cell("print(pw)", outputs=[new_output("stream", name="stdout", text=f"pw is {secret}\n")]))
    if error:
        cells.append(new_code_cell("boom()", outputs=[new_output("error", ename="RuntimeError",
                                                                 evalue="boom", traceback=["tb"])]))
    nb.cells = cells
    return nb


def test_redaction_covers_metadata_injected_cell_and_outputs():
    nb = redact_notebook(_nb([]), {"root_password": "s3cr3t-pw"})
    dumped = json.dumps(nb)
    assert "s3cr3t-pw" not in dumped
    assert nb.metadata["papermill"]["parameters"]["root_password"] == "***"


def test_summary_takes_the_worst_step_and_the_first_error():
    ok = StepResult("a", Status.PASS, "fine")
    bad = StepResult("b", Status.FAIL, "broken", cause="x", fix="y")
    s = summarize(_nb([ok, bad]), "nb")
    assert s.status is Status.FAIL and [st["step"] for st in s.steps] == ["a", "b"]
    s = summarize(_nb([ok], error=True), "nb")
    assert s.status is Status.ERROR and s.error["ename"] == "RuntimeError"


def test_no_result_is_an_error():
    s = summarize(_nb([]), "nb")
    assert s.status is Status.ERROR and s.error["ename"] == "NoResult"


def test_stream_outputs_are_bounded():
    nb = new_notebook()
    nb.cells = [new_code_cell("x", outputs=[new_output("stream", name="stdout", text="x" * 1000)])]
    out = bound_outputs(nb, limit=100).cells[0].outputs[0].text
    assert len(out) < 300 and "characters cut" in out


def test_write_reports_produces_three_files(tmp_path):
    path = tmp_path / "run.ipynb"
    nbformat.write(_nb([StepResult("a", Status.PASS, "<b>fine</b>")]), path)
    summary, paths = write_reports(path, "nb", {"root_password": "s3cr3t-pw"}, hide_code=True)
    assert summary.status is Status.PASS
    html = paths["html"].read_text()
    assert "s3cr3t-pw" not in html and "&lt;b&gt;fine&lt;/b&gt;" in html
    data = json.loads(paths["json"].read_text())
    assert data["status"] == "PASS" and data["exit_code"] == 0
    assert data["parameters"]["root_password"] == "***"


def test_cli_scrubs_a_real_secret_but_not_the_documented_default():
    from runbook_lib.params import STEP2

    assert STEP2.secret_values({"root_password": "Hunter2-xyz"}) == {"root_password": "Hunter2-xyz"}
    assert STEP2.secret_values({"root_password": STEP2.param("root_password").default}) == {"root_password": None}
    assert STEP2.secret_values({}) == {"root_password": None}
    nb = redact_notebook(_nb([], secret="carbide"), {"root_password": None})
    assert nb.metadata["papermill"]["parameters"]["root_password"] == "***"


def test_a_result_displayed_twice_counts_once():
    r = StepResult("boot", Status.PASS, "login prompt")
    assert len(summarize(_nb([r, r]), "nb").steps) == 1


def test_a_result_renders_its_tables_escaped():
    import pandas as pd

    r = StepResult("pre-flight", Status.PASS, "ready",
                   tables={"checks": pd.DataFrame([{"check": "<qemu>", "status": "ok"}])})
    page = r._repr_mimebundle_()["text/html"]
    assert "<b>checks</b> (1 rows)" in page and "&lt;qemu&gt;" in page and "<qemu>" not in page
