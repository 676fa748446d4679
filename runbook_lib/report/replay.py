"""A saved serial console replayed through step 3's report views: a boot report from a log.

:func:`replayed_run` analyzes a serial log (and optionally a stand-in request log) exactly as a
live boot's logs are analyzed, and puts both where a boot leaves them (``<log_dir>/boot/``,
with ``result.json``), so the report writer finds the same facts and logs. :func:`notebook`
builds a small notebook whose cells show step 3's sections for that log (result, timeline,
chart, excerpts, requests); `runbook run` executes it with papermill like any runbook. The
report-size test and benchmark (a 100 MB console) and the browser tests (markup planted in a
console) use it; a teammate can use it on a log someone sent without booting anything.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat

from ..boot.analyze import DEFAULT_SUCCESS, analyze_file
from ..boot.run import BootRun
from ..result import Status


def replayed_run(serial_log: str | Path, log_dir: str | Path, requests_log: str | Path | None = None,
                 success_pattern: str = DEFAULT_SUCCESS) -> BootRun:
    """The boot a saved console shows: analysis, verdict, first failure, requests."""
    from ..boot import step
    from ..boot.standin import read_request_log

    run_dir = Path(log_dir) / "boot"
    run_dir.mkdir(parents=True, exist_ok=True)
    serial = run_dir / "serial.log"
    if Path(serial_log).resolve() != serial.resolve():
        shutil.copyfile(serial_log, serial)
    logs = {"serial console": str(serial)}
    requests = []
    if requests_log:
        req = run_dir / "requests.jsonl"
        if Path(requests_log).resolve() != req.resolve():
            shutil.copyfile(requests_log, req)
        logs["http requests"] = str(req)
        requests = read_request_log(req)
    an = analyze_file(serial, success_pattern)
    login = an.milestone("login_prompt")
    run = BootRun(Status.ERROR, "", None, None, command=f"(replayed from the saved console {serial_log})",
                  analysis=an, requests=requests, logs=logs,
                  notes=[f"replayed from {Path(serial_log).name}: no VM was started"],
                  timing={"boot_s": an.duration_s, "login_prompt_s": login.seconds if login else None})
    run = step._verdict(run, None)
    res = step.result(run)
    (run_dir / "result.json").write_text(json.dumps(res.to_dict(), indent=2, default=str))
    return run


_CELLS: tuple[tuple[str, str], ...] = (
    ("markdown", "# Step 3 replayed: a saved serial console\n\nThe boot below was not run here: its "
                 "serial console (and request log) were analyzed as step 3 analyzes a live boot."),
    ("code", "from runbook_lib.boot import report as view\nfrom runbook_lib.boot import step as boot_step\n"
             "from runbook_lib.report.replay import replayed_run\n\n"
             "run = replayed_run(serial_log, log_dir, requests_log or None)\nboot_step.result(run)"),
    ("markdown", "## Timeline"),
    ("code", "view.timeline_table(run)"),
    ("code", "view.timeline_chart(run)"),
    ("markdown", "## Serial console excerpts"),
    ("code", "view.excerpts(run)"),
    ("markdown", "## HTTP request log"),
    ("code", "view.requests_table(run.requests)"),
    ("markdown", "## Result"),
    ("code", "boot_step.result(run)"),
)


def notebook(serial_log: str | Path, requests_log: str | Path | None = None) -> Any:
    """A notebook showing step 3's report views for `serial_log` (its parameters cell names it;
    ``log_dir`` comes from `runbook run`)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(
        f"serial_log = {str(serial_log)!r}\nrequests_log = {str(requests_log or '')!r}\nlog_dir = ''",
        metadata={"tags": ["parameters"]})
    cells = [nbformat.v4.new_markdown_cell(_CELLS[0][1]), params]
    for kind, source in _CELLS[1:]:
        cells.append(nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source))
    nb.cells = cells
    return nb


def write_notebook(path: str | Path, serial_log: str | Path, requests_log: str | Path | None = None) -> Path:
    path = Path(path)
    nbformat.write(notebook(serial_log, requests_log), path)
    return path
