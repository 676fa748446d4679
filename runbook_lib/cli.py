"""`runbook`: list, describe and run the notebooks headlessly (papermill), plus step tools.

Exit codes everywhere: 0 PASS, 1 FAIL, 2 ERROR (environment or usage).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .params import NOTEBOOKS, NotebookSpec, ParamError, resolve
from .paths import repo_root
from .result import Status, StepResult

if TYPE_CHECKING:
    from .report.export import RunFailure, Summary

EXIT_USAGE = 2


def notebooks_dir() -> Path:
    env = os.environ.get("RUNBOOK_NOTEBOOKS_DIR")
    return Path(env) if env else repo_root() / "notebooks"


def _err(msg: str) -> int:
    print(f"runbook: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def cmd_list(args: argparse.Namespace) -> int:
    for spec in NOTEBOOKS.values():
        present = (notebooks_dir() / f"{spec.name}.ipynb").exists()
        flag = "" if present else "  (notebook file missing)"
        print(f"{spec.name:28} {spec.description}{flag}")
    print(f"{'all':28} the main job: every notebook above, in order, on the embedded default")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    try:
        spec = resolve(args.notebook)
    except ParamError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps([p.describe() for p in spec.params], indent=2))
        return 0
    print(f"{spec.name}: {spec.title}")
    for p in spec.params:
        d = p.describe()
        choices = f" one of {', '.join(map(str, p.choices))}" if p.choices else ""
        print(f"  {p.name:18} {p.type_name():6} default {d['default']!r}{choices}")
        print(f"  {'':18} {p.help}")
    return 0


def parse_overrides(pairs: Sequence[Sequence[str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs:
        out[key] = value
    return out


def params_for(spec: NotebookSpec, raw: dict[str, str], strict: bool) -> dict[str, Any]:
    """Validated values for `spec`. In `all` mode (strict=False) keys of other notebooks are skipped."""
    chosen: dict[str, Any] = {}
    known = {p.name for p in spec.params}
    for key, value in raw.items():
        if key in known:
            chosen[key] = spec.param(key).check(value)
        elif strict:
            spec.param(key)  # raises with suggestions
    return chosen


def check_report_dir(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        return f"report dir {path} is not writable: {exc.strerror or exc}"
    return None


def resolve_notebook(name: str) -> tuple[NotebookSpec, Path]:
    """A registered notebook (name, alias or file name), else a notebook file outside the registry.

    The latter is a path to an existing .ipynb, or NAME.ipynb in the notebooks directory
    (RUNBOOK_NOTEBOOKS_DIR); it takes no -p parameters.
    """
    try:
        spec = resolve(name)
        return spec, notebooks_dir() / f"{spec.name}.ipynb"
    except ParamError:
        for path in (Path(name), notebooks_dir() / f"{name}.ipynb"):
            if path.suffix == ".ipynb" and path.is_file():
                return NotebookSpec(name=path.stem, title=path.stem, description=str(path),
                                    params=(), in_main_job=False), path
        raise


def _execute(source: Path, output: Path, params: dict[str, Any], quiet: bool,
             timeout: int | None) -> RunFailure | None:
    """Run the notebook with papermill into `output`; how the run ended when it did not finish."""
    import papermill as pm

    from .report.export import RunFailure

    try:
        pm.execute_notebook(
            str(source), str(output), parameters=params, cwd=str(source.parent),
            kernel_name="python3", log_output=not quiet, progress_bar=(not quiet and sys.stderr.isatty()),
            request_save_on_cell_execute=True, execution_timeout=timeout,
        )
    except (Exception, KeyboardInterrupt) as exc:  # cell error, dead kernel, Ctrl-C, bad notebook
        return RunFailure.from_exception(exc)
    return None


def _print_summary(summary: Summary, failure: RunFailure | None) -> None:
    for step in summary.steps:
        print(f"   {step['status']:5} {step['step']}: {step['summary']}")
        if step.get("status") != "PASS":
            if step.get("cause"):
                print(f"         cause: {step['cause']}")
            if step.get("fix"):
                print(f"         fix:   {step['fix']}")
    if summary.error:
        print(f"   stopped in cell {summary.error.get('cell')}: {summary.error.get('ename')}: "
              f"{summary.error.get('evalue')}")
    if failure is not None and failure.kind != "cell error":  # a cell error is the line above
        print(f"   run ended early: {failure.describe()}")


def run_one(spec: NotebookSpec, values: dict[str, Any], report_dir: Path, hide_code: bool,
            quiet: bool, timeout: int | None, source: Path | None = None) -> tuple[Status, dict[str, Path]]:
    """Execute one notebook and write its reports; the status is ERROR for any run that did not finish.

    papermill writes into a private directory; only the redacted notebook reaches `report_dir`
    (with its .html and .json), and if the reports cannot be written nothing is left behind.
    """
    from .report.export import write_reports
    from .report.sanitize import redact

    source = source or notebooks_dir() / f"{spec.name}.ipynb"
    if not source.exists():
        print(f"runbook: error: notebook {source} is missing", file=sys.stderr)
        return Status.ERROR, {}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    output = report_dir / f"{stamp}-{spec.name}.ipynb"
    log_dir = report_dir / f"{stamp}-{spec.name}.logs"
    params = dict(values)
    if not params.get("log_dir"):
        params["log_dir"] = str(log_dir.resolve())
    print(f"== {spec.name}: {spec.title}", flush=True)
    print(f"   report: {output}", flush=True)
    t0 = time.monotonic()
    secrets = spec.secret_values(params)
    with tempfile.TemporaryDirectory(prefix="runbook-run-") as private:
        executed = Path(private) / output.name
        failure = _execute(source, executed, params, quiet, timeout)
        if not executed.exists():
            reason = redact(failure.describe(), [str(v) for v in secrets.values() if v]) if failure else "?"
            print(f"runbook: error: no executed notebook was written ({reason})", file=sys.stderr)
            return Status.ERROR, {}
        try:
            summary, paths = write_reports(executed, spec.name, secrets, hide_code=hide_code,
                                           output=output, failure=failure, gather=True)
        except Exception as exc:
            print(f"runbook: error: the report of {spec.name} could not be written "
                  f"({type(exc).__name__}: {exc}); the unredacted notebook was removed",
                  file=sys.stderr)
            return Status.ERROR, {}
    _print_summary(summary, failure)
    print(f"== {summary.status.value} {spec.name} in {time.monotonic() - t0:.1f}s")
    for kind, path in paths.items():
        print(f"   {kind:5} {path}")
    return summary.status, paths


def cmd_run(args: argparse.Namespace) -> int:
    from .live import HEADLESS_ENV

    # The kernels papermill starts inherit this: steps print progress lines instead of widgets.
    os.environ.setdefault(HEADLESS_ENV, "1")
    raw = parse_overrides(args.p)
    source: Path | None = None
    try:
        if args.notebook == "all":
            specs = [s for s in NOTEBOOKS.values() if s.in_main_job
                     and (notebooks_dir() / f"{s.name}.ipynb").exists()]
            chosen = [(s, params_for(s, raw, strict=False)) for s in specs]
            used = {k for _, v in chosen for k in v}
            unknown = sorted(set(raw) - used)
            if unknown:
                names = sorted({p.name for s in specs for p in s.params})
                raise ParamError(unknown[0], f"no notebook takes this parameter (known: {', '.join(names)})")
        else:
            spec, source = resolve_notebook(args.notebook)
            chosen = [(spec, params_for(spec, raw, strict=True))]
    except ParamError as exc:
        return _err(str(exc))
    report_dir = Path(args.report_dir)
    problem = check_report_dir(report_dir)
    if problem:
        return _err(problem + " (choose another with --report-dir)")
    statuses: list[Status] = []
    runs: list[Any] = []  # per notebook: its summary JSON's path, or why there is none (JUnit)
    for spec, values in chosen:
        status, paths = run_one(spec, values, report_dir, args.hide_code, args.quiet, args.cell_timeout,
                                source if args.notebook != "all" else None)
        statuses.append(status)
        runs.append(paths.get("json") or (spec.name, "no report was written (see the job log)", False))
        if status != Status.PASS and args.notebook == "all":
            print(f"runbook: stopping after {spec.name} ({status.value}); later steps need it")
            runs += [(s.name, f"not run: {spec.name} ended {status.value}", True) for s, _ in chosen[len(runs):]]
            break
    if getattr(args, "junit_xml", None) and not _write_junit(Path(args.junit_xml), runs):
        statuses.append(Status.ERROR)
    return Status.worst(statuses).exit_code


def _write_junit(path: Path, runs: list[Any]) -> bool:
    """`--junit-xml`: one testsuite per notebook (:mod:`runbook_lib.report.junit`)."""
    from .report import junit

    try:
        items = [junit.NotRun(*r) if isinstance(r, tuple) else json.loads(Path(r).read_text()) for r in runs]
        junit.write(items, path)
    except (OSError, ValueError) as exc:
        print(f"runbook: error: the JUnit XML {path} could not be written: {exc}", file=sys.stderr)
        return False
    print(f"   junit {path}")
    return True


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild .html and .json for an executed notebook someone sent you."""
    from .report.export import write_reports

    path = Path(args.notebook)
    if not path.exists():
        return _err(f"{path} does not exist")
    try:
        summary, paths = write_reports(path, path.stem, {}, hide_code=args.hide_code,
                                       embed_logs=args.embed_logs)
    except Exception as exc:  # unreadable notebook, unwritable directory: nothing half-written
        return _err(f"the reports of {path} could not be written ({type(exc).__name__}: {exc})")
    print(f"{summary.status.value} {path.stem}")
    for kind, p in paths.items():
        print(f"   {kind:5} {p}")
    return summary.status.exit_code


def cmd_tools(args: argparse.Namespace) -> int:
    from . import tools

    echo = (lambda ln: print(ln, flush=True))
    if args.action == "packages":
        print(" ".join(tools.all_packages()))
        return 0
    if args.action == "install":
        # Every package any step can use, in one apt transaction (what the setup script runs).
        missing = tools.missing_packages(tools.all_packages())
        outcome = tools.install_packages(missing, dry_run=args.dry_run, on_line=echo)
        print(f"{outcome.status.value}: {outcome.message}")
        if outcome.status is not Status.PASS:
            print(f"  command: {outcome.command}")
        return outcome.status.exit_code
    result = tools.run_step1(mode=args.mode, want_bridge=args.bridge, want_tpm=True, on_line=echo,
                             carbide_root_dir=args.tree or "", task=args.task or "", arch=args.arch)
    import pandas as pd

    parts: list[StepResult] = [result]
    if result.report is not None and result.report.tree is not None:
        parts.append(tools.tree_result(result.report.tree))
    with pd.option_context("display.max_colwidth", 90, "display.width", 250):
        print(result.tables["tools"].to_string(index=False))
        for part in parts[1:]:
            print(f"\nyour tree ({args.tree}):")
            print(part.tables["your tree"].to_string(index=False))
    for part in parts:
        print(part)
    return Status.worst([p.status for p in parts]).exit_code


# -- compare-artifacts (issue 10): two artifact sets, exit 0 SAME / 1 DIFFERENT / 2 ERROR ------------
def cmd_compare_artifacts(args: argparse.Namespace) -> int:
    from .compare import main_compare

    return main_compare(args.ref, args.dir, as_json=args.json)


def _add_compare_artifacts(sub: Any) -> None:
    p = sub.add_parser("compare-artifacts", help="compare two artifact sets (e.g. known-good vs yours): "
                                                 "embedded iPXE script, 43.70, iPXE version, UKI, root, "
                                                 "packages; exit 0 same, 1 different, 2 error")
    p.add_argument("ref", metavar="REF", help="the reference artifact directory (e.g. a known-good set)")
    p.add_argument("dir", metavar="DIR", help="the artifact directory to check")
    p.add_argument("--json", action="store_true", help="machine-readable result with every file's facts")
    p.set_defaults(func=cmd_compare_artifacts)
# -- end compare-artifacts ----------------------------------------------------------------------------


def _add_run_options(p: argparse.ArgumentParser, p_help: str) -> None:
    """The options `run` and `validate` share (validate is `run 04_validate`)."""
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"), help=p_help)
    p.add_argument("--report-dir", default="reports", help="where reports go (default ./reports)")
    p.add_argument("--hide-code", action="store_true", help="HTML report without code cells")
    p.add_argument("--quiet", action="store_true", help="do not echo cell output live")
    p.add_argument("--cell-timeout", type=int, default=None, help="papermill per-cell timeout (s)")
    p.add_argument("--junit-xml", metavar="PATH", help="also write a JUnit XML file for CI test-report "
                   "views: one testsuite per notebook, one testcase per step check")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="runbook", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="notebooks with a one-line description")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("params", help="parameters of a notebook: types, defaults, help")
    p.add_argument("notebook")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("run", help="execute a notebook (or `all`) with papermill and write reports")
    p.add_argument("notebook", help="name (01_install_build_tools), alias (01) or `all`")
    _add_run_options(p, "set a parameter (repeatable)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="the repeated loop: rebuild (cached), boot, compare with the last "
                                        "good run; one papermill run of 04_validate, one report")
    _add_run_options(p, "set a parameter (repeatable; `runbook params 04` lists them)")
    p.set_defaults(func=cmd_run, notebook="04_validate")

    p = sub.add_parser("report", help="rebuild .html/.json from an executed .ipynb")
    p.add_argument("notebook")
    p.add_argument("--hide-code", action="store_true")
    p.add_argument("--embed-logs", action="store_true",
                   help="one self-contained HTML to attach to a bug report: the serial console and "
                        "the HTTP request log embedded (gzip, bounded: head and tail of a huge log)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("tools", help="step 1 without Jupyter: check tools, install every Debian "
                                     "package the steps use, or list them")
    p.add_argument("action", choices=("check", "install", "packages"))
    p.add_argument("--mode", choices=("sandbox", "carbide"), default="sandbox")
    p.add_argument("--bridge", action="store_true", help="include bridge networking tools")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--tree", metavar="DIR", help="a carbide checkout: check its git state, submodules, "
                   "which mkosi it runs and every program its build plan calls (implies --mode carbide)")
    p.add_argument("--task", help="with --tree: the task(s) step 2 will run (default "
                   "build-boot-artifacts-<arch>)")
    p.add_argument("--arch", default="x86_64", choices=("x86_64", "aarch64"))
    p.set_defaults(func=cmd_tools)

    _add_compare_artifacts(sub)

    for module in ("runbook_lib.sandbox.cli", "runbook_lib.build.cli", "runbook_lib.boot.cli",
                   "runbook_lib.history_cli"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        mod.register(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse usage errors -> 2, --help -> 0
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("runbook: interrupted", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
