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
    for count, cell in enumerate(cells, start=1):  # executed, as papermill leaves them
        cell.execution_count = count
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


# --- a run that did not finish is never PASS (issue 13, defect 2) ---

def _cells(*specs):
    """A notebook from (source, outputs, executed) triples."""
    nb = new_notebook()
    for n, (source, outputs, executed) in enumerate(specs, start=1):
        nb.cells.append(new_code_cell(source, outputs=outputs, execution_count=n if executed else None))
    return nb


def _shown(result):
    return [new_output("display_data", data=result._repr_mimebundle_())]


def _raised(ename, evalue):
    return [new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])]


PASSED = StepResult("step x: demo", Status.PASS, "ok")
FAILED = StepResult("step x: demo", Status.FAIL, "broken", cause="c", fix="f")


def test_a_cell_that_never_finished_is_an_error_even_after_a_pass():
    # what papermill leaves when the kernel dies: no error output, the dying cell has no count
    nb = _cells(("r", _shown(PASSED), True), ("import os; os._exit(1)", [], False))
    s = summarize(nb, "nb")
    assert s.status is Status.ERROR and s.error["ename"] == "NotFinished" and s.error["cell"] == 1


def test_a_dead_kernel_says_so():
    from runbook_lib.report.export import RunFailure
    from nbclient.exceptions import DeadKernelError

    nb = _cells(("r", _shown(PASSED), True), ("import os; os._exit(1)", [], False))
    s = summarize(nb, "nb", RunFailure.from_exception(DeadKernelError("Kernel died")))
    assert s.status is Status.ERROR and "kernel died" in s.error["evalue"]
    assert s.to_dict()["run_failure"]["kind"] == "kernel died"


def test_a_fail_shown_before_an_exception_stays_fail():
    nb = _cells(("r", _shown(FAILED), True), ("raise RuntimeError", _raised("RuntimeError", "x"), True))
    assert summarize(nb, "nb").status is Status.FAIL


def test_an_exception_after_a_pass_is_an_error_not_a_fail():
    nb = _cells(("r", _shown(PASSED), True), ("raise ValueError", _raised("ValueError", "bug"), True))
    s = summarize(nb, "nb")
    assert s.status is Status.ERROR and s.error["ename"] == "ValueError"


def test_an_interrupt_is_an_error_even_after_a_fail():
    nb = _cells(("r", _shown(FAILED), True),
                ("raise KeyboardInterrupt", _raised("KeyboardInterrupt", ""), True))
    assert summarize(nb, "nb").status is Status.ERROR


def test_sys_exit_0_midway_is_an_error_but_at_the_end_it_is_not():
    exit0 = ("import sys; sys.exit(0)", _raised("SystemExit", "0"), True)
    midway = summarize(_cells(("r", _shown(PASSED), True), exit0, ("r2", [], False)), "nb")
    assert midway.status is Status.ERROR and midway.error["ename"] == "SystemExit"
    assert "did not run" in midway.error["evalue"]
    assert summarize(_cells(("r", _shown(PASSED), True), exit0), "nb").status is Status.PASS


def test_sys_exit_1_is_an_error():
    nb = _cells(("r", _shown(PASSED), True), ("sys.exit(1)", _raised("SystemExit", "1"), True))
    assert summarize(nb, "nb").status is Status.ERROR


# --- redaction of values, not serializations; all three files or none (defect 3) ---

def test_redaction_walks_values_not_the_serialization():
    r = StepResult("step 3: boot", Status.FAIL, "download failed",
                   cause="GET http://10.0.2.2:8080/carbide.efi?token=abc", fix="check s3cr3t-pw")
    nb = redact_notebook(_nb([r]), {"root_password": "s3cr3t-pw"})
    payload = nb.cells[1].outputs[0].data[RESULT_MIME]
    assert payload["cause"] == "GET http://10.0.2.2:8080/carbide.efi?token=***"
    assert payload["fix"] == "check ***" and payload["step"] == "step 3: boot"


def test_write_reports_writes_all_three_files_or_none(tmp_path):
    import pytest

    scratch = tmp_path / "private" / "run.ipynb"
    scratch.parent.mkdir()
    nbformat.write(_nb([PASSED]), scratch)
    final = tmp_path / "reports" / "run.ipynb"
    final.parent.mkdir()
    final.with_suffix(".html").mkdir()  # the .html cannot be written
    with pytest.raises(OSError):
        write_reports(scratch, "nb", {"root_password": "s3cr3t-pw"}, output=final)
    assert sorted(p.name for p in final.parent.iterdir()) == ["run.html"]  # just the blocking dir


def test_write_reports_to_another_path_leaves_the_source_alone(tmp_path):
    scratch = tmp_path / "scratch.ipynb"
    nbformat.write(_nb([PASSED]), scratch)
    before = scratch.read_text()
    final = tmp_path / "out" / "run.ipynb"
    final.parent.mkdir()
    summary, paths = write_reports(scratch, "nb", {"root_password": "s3cr3t-pw"}, output=final)
    assert scratch.read_text() == before and paths["ipynb"] == final
    assert all(p.exists() and "s3cr3t-pw" not in p.read_text() for p in paths.values())


# --- planted secrets never reach a report; ordinary output is kept (defect 15) ---

def _fixture_lines(name):
    from pathlib import Path

    path = Path(__file__).parent.parent / "fixtures" / "secrets" / name
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def _log(name):
    from pathlib import Path

    return (Path(__file__).parent.parent / "fixtures" / "secrets" / name).read_text()


def test_no_planted_secret_reaches_any_report_and_ordinary_output_survives(tmp_path):
    import html as html_lib

    build, serial = _log("cargo_make_build.log"), _log("serial_console.log")
    planted, ordinary = _fixture_lines("planted.txt"), _fixture_lines("ordinary.txt")
    assert all(p in build + serial for p in planted) and all(o in build + serial for o in ordinary)
    failing = StepResult("step 2: build", Status.FAIL, "cargo make failed",
                         cause=build.splitlines()[12], fix="rerun with " + serial.splitlines()[17])
    nb = new_notebook()
    nb.metadata["papermill"] = {"parameters": {"carbide_root_dir": "https://deploy:Pa55w0rd-URL@git.example.com/c"}}
    nb.cells = [
        new_code_cell("step2.run()", execution_count=1, outputs=[
            new_output("stream", name="stdout", text=build),
            new_output("display_data", data={"text/plain": serial,
                                             "text/html": "<pre>" + html_lib.escape(serial) + "</pre>"})]),
        new_code_cell("step2.result()", execution_count=2,
                      outputs=[new_output("display_data", data=failing._repr_mimebundle_())]),
        new_code_cell("boom()", execution_count=3, outputs=_raised(
            "RuntimeError", "auth failed for " + build.splitlines()[11])),
    ]
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    summary, paths = write_reports(path, "02_build_ipxe_image", {"root_password": None})
    texts = {kind: p.read_text() for kind, p in paths.items()}
    texts["html"] = html_lib.unescape(texts["html"])
    outputs = nbformat.reads(texts["ipynb"], as_version=4).cells[0].outputs
    for kind, text in texts.items():
        leaked = [p for p in planted if p in text]
        assert not leaked, (kind, leaked)
    for fragment in ordinary:
        assert fragment in outputs[0].text + outputs[1].data["text/plain"], fragment
        assert fragment in texts["html"], fragment
    assert summary.status is Status.FAIL  # the FAIL shown before the exception explains it
