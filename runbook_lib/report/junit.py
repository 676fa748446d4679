"""JUnit XML for CI test-report views (`runbook run ... --junit-xml PATH`), written with junitparser.

Layout (the Jenkins/Ant JUnit dialect that GitLab, GitHub test-report actions and Jenkins read;
tests validate it against Jenkins xUnit's ``junit-10.xsd``):

* ``<testsuites>`` holds one ``<testsuite>`` per notebook run, named after the notebook, with the
  run's start time, duration, host, the summary's verdict/exit code/schema version as
  ``<properties>``, and the report paths in its ``<system-out>``.
* A **check** is one entry of the summary JSON's ``steps`` list: every step result the notebook
  showed, in order: each part (``step 3: boot: pre-flight``, ``step 3: boot: served``, ``step 3:
  boot: run``, ...) and the step's overall result (``step 3: boot``). Each check is one
  ``<testcase>`` (classname = notebook, name = the step part). PASS has no child element; FAIL
  gets ``<failure message="first cause">`` and ERROR ``<error message="first cause">``, each with
  the summary, cause and fix in its text; the check's ``<system-out>`` has its summary and the
  report path. ``time`` is set when the step measured the part (boot run, build run).
* A notebook that stopped without a step result explaining it (a cell error, a dead kernel, an
  interrupt, no step result at all) gets one more check, ``notebook run``, with ``<error>``: a
  run that did not finish never shows as green.
* A notebook that produced no report at all (missing notebook, unwritable report) is a suite with
  one ``notebook run`` ``<error>`` testcase; a notebook that `runbook run all` did not start
  because an earlier one did not pass is a suite with one ``<skipped>`` testcase.
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from junitparser import Error, Failure, JUnitXml, Skipped, SystemOut, TestCase, TestSuite

from .sanitize import clean_text

RUN_CHECK = "notebook run"


@dataclass(frozen=True)
class NotRun:
    """A notebook with no summary: it produced no report (`error`) or was not started (`skipped`)."""

    notebook: str
    reason: str
    skipped: bool = False


def _seconds(value: Any) -> float | None:
    """JUnit's time: at most 3 decimals (junit-10.xsd's SUREFIRE_TIME), never negative."""
    if not isinstance(value, (int, float)) or value < 0:
        return None
    return round(float(value), 3)


def _xml(value: Any) -> str:
    """Text XML 1.0 can carry: ANSI colours (cargo's, git's) and control bytes dropped."""
    return clean_text(str(value))


def _text(*lines: Any) -> str:
    return "\n".join(_xml(x) for x in lines if x not in (None, ""))


def _report_lines(summary: Mapping[str, Any]) -> list[str]:
    paths = summary.get("paths") or {}
    return [f"{k} report: {paths[k]}" for k in ("html", "ipynb", "json") if paths.get(k)] + \
        ([f"logs: {paths['log_dir']}"] if paths.get("log_dir") else [])


def _case(classname: str, step: Mapping[str, Any], report: list[str]) -> TestCase:
    case = TestCase(_xml(step.get("step") or "?"), classname, _seconds(step.get("duration_s")))
    status = step.get("status")
    cause, fix, summ = step.get("cause"), step.get("fix"), step.get("summary")
    body = _text(f"{status}: {summ}", f"cause: {cause}" if cause else None, f"fix: {fix}" if fix else None)
    if status == "FAIL":
        case.result = [Failure(_xml(cause or summ or "FAIL"), "FAIL")]
        case.result[0].text = body
    elif status != "PASS":
        case.result = [Error(_xml(cause or summ or "ERROR"), _xml(status or "ERROR"))]
        case.result[0].text = body
    case.system_out = _text(body, *report)
    return case


def _run_check(summary: Mapping[str, Any]) -> TestCase | None:
    """The extra ``notebook run`` check of a notebook that stopped without a result explaining it."""
    err, steps = summary.get("error"), summary.get("steps") or []
    if err is None or summary.get("status") == "PASS":
        return None
    explained = summary.get("status") == "FAIL" and any(s.get("status") == "FAIL" for s in steps)
    if explained:
        return None
    cell = err.get("cell")
    message = _xml(f"{err.get('ename')}: {err.get('evalue')}")
    case = TestCase(RUN_CHECK, _xml(summary.get("notebook")))
    case.result = [Error(message, _xml(err.get("ename") or "ERROR"))]
    case.result[0].text = _text(message, f"stopped in cell {cell}" if cell is not None else None,
                                "fix: open the report; the cell that stopped is marked")
    return case


def suite_from_summary(summary: Mapping[str, Any]) -> TestSuite:
    """One notebook run (a summary JSON as written by :mod:`.export`) as a ``<testsuite>``."""
    name = _xml(summary.get("notebook") or "?")
    suite = TestSuite(name)
    report = _report_lines(summary)
    host = summary.get("host") or {}
    suite.hostname = _xml(host.get("hostname") or socket.gethostname())
    if summary.get("started"):
        suite.timestamp = str(summary["started"])
    for key in ("status", "exit_code", "schema_version"):  # <properties> first, as Ant writes it
        if summary.get(key) is not None:
            suite.add_property(key, str(summary[key]))
    accel = host.get("accel") or {}
    if accel.get("used"):
        suite.add_property("accel", str(accel["used"]))
    for step in summary.get("steps") or []:
        suite.add_testcase(_case(name, step, report))
    extra = _run_check(summary)
    if extra is not None:
        suite.add_testcase(extra)
    suite.update_statistics()
    # after update_statistics (which sums the testcases): the suite's time is the whole run's
    run_time = _seconds(summary.get("duration_s"))
    if run_time is not None:
        suite.time = run_time
    suite.append(SystemOut(_text(f"{summary.get('status')} {name}", *report)))
    return suite


def suite_not_run(item: NotRun) -> TestSuite:
    suite = TestSuite(item.notebook)
    case = TestCase(RUN_CHECK, item.notebook)
    case.result = [Skipped(_xml(item.reason)) if item.skipped else Error(_xml(item.reason), "ERROR")]
    suite.add_testcase(case)
    suite.hostname = socket.gethostname()
    suite.update_statistics()
    suite.append(SystemOut(_xml(item.reason)))
    return suite


def build(runs: Iterable[Mapping[str, Any] | NotRun], name: str = "runbook") -> JUnitXml:
    xml = JUnitXml(name)
    suites = [suite_not_run(run) if isinstance(run, NotRun) else suite_from_summary(run) for run in runs]
    for suite in suites:
        xml.add_testsuite(suite)
    # not xml.update_statistics(): it would recount each suite and lose the run's own duration
    xml.tests = sum(s.tests for s in suites)
    xml.failures = sum(s.failures for s in suites)
    xml.errors = sum(s.errors for s in suites)
    xml.time = round(sum(float(s.time or 0) for s in suites), 3)
    return xml


def _strip_undeclared(xml: JUnitXml) -> None:
    """junitparser puts ``skipped`` on ``<testsuites>``; junit-10.xsd declares it on suites only."""
    xml._elem.attrib.pop("skipped", None)


def write(runs: Iterable[Mapping[str, Any] | NotRun], path: str | os.PathLike[str],
          name: str = "runbook") -> Path:
    """Write the JUnit XML atomically (a temp file beside `path`, then renamed); returns `path`."""
    xml = build(runs, name)
    _strip_undeclared(xml)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        xml.write(tmp, pretty=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
