"""The loop developers repeat: rebuild (cached), PXE boot, and say what changed since the last good run.

:class:`ValidateStep` runs step 2 (:class:`~runbook_lib.build.step.BuildStep`) and then step 3
(:class:`~runbook_lib.boot.step.BootStep`) with the same parameters (a name means one thing in
every step), in one process and one report. Its parts:

* ``pre-flight``: step 2's pre-flight (plan, build requirements, a carbide checkout's own checks)
  and step 3's registry requirements; ERROR here means nothing started;
* ``build``: step 2's result (run, artifacts, manifest, ownership);
* ``boot``: step 3's result, or "not run" when the build did not pass;
* ``compared with last good``: what changed since the last PASS of the same tree and parameters
  (:mod:`runbook_lib.compare_runs`): informational, the verdict stays the boot's;
* ``reference``: with ``reference_dir``, the artifacts against a known-good set
  (:mod:`runbook_lib.compare`): informational too.

:meth:`ValidateStep.summary` is the report's opening screen: verdict, what was rebuilt, boot
time, and the comparison's sentence.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from . import requirements as reqs
from .boot.step import BootStep, resolve_artifacts
from .build.step import BuildStep
from .params import STEP2, STEP3, STEP4
from .result import Status, StepResult, badge
from .step import Step, combine

TITLE = "step 4: validate"


def _sub_params(spec: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    names = {p.name for p in spec.params}
    return {k: v for k, v in params.items() if k in names}


class Summary:
    """The report's first screen; the notebook shows it at the top and updates it at the end."""

    def __init__(self, step: "ValidateStep") -> None:
        self.step = step

    def lines(self) -> list[tuple[str, str]]:
        return self.step.summary_rows()

    def __str__(self) -> str:
        return "\n".join(f"{k:>28}: {v}" for k, v in self.lines())

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        res = self.step.current()
        rows = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in self.lines())
        head = badge(res.status) if res is not None else "<em>running...</em>"
        return f"<div><h3 style='margin:0'>{head} validate</h3><table>{rows}</table></div>"


class ValidateStep(Step):
    number, name, spec = 4, "validate", STEP4

    def __init__(self, params: Any, log_dir: str | Path | None = None,
                 on_progress: Callable[[str], None] | None = None) -> None:
        super().__init__(params, log_dir)
        p = self.params
        self.build = BuildStep(_sub_params(STEP2, p), log_dir=self.log_dir)
        self.boot = BootStep(dict(_sub_params(STEP3, p), artifacts_dir=""), log_dir=self.log_dir)
        # one history record per validate run (it holds the build's and the boot's facts)
        self.build.record_history = self.boot.record_history = False
        self.on_progress = on_progress
        self.record: Any = None  # history record of this run
        self.comparison: Any = None  # compare_runs.RunComparison
        self._durations: dict[str, float] = {}
        self._final: StepResult | None = None

    # ---- protocol -------------------------------------------------------------------------
    def requires(self) -> list[tuple[reqs.Requirement, bool]]:
        return [*self.build.requires(), *self.boot.requires()]

    def _preflight(self) -> StepResult:
        pre = self.build.preflight()
        boot_checks = self.boot.check_requirements()
        tables = dict(pre.tables)
        tables["boot requirements"] = reqs.frame(boot_checks)
        bad = reqs.first_unmet(boot_checks)
        title = self.part_title("pre-flight")
        if pre.status is not Status.PASS:
            return StepResult(title, pre.status, f"build: {pre.summary}", pre.cause, pre.fix,
                              details={"build": pre.to_dict()}, tables=tables)
        if bad is not None:
            cause, fix = reqs.unmet(bad)
            return StepResult(title, Status.ERROR, f"boot: {bad.tool} is not usable", cause, fix,
                              details={"build": pre.to_dict()}, tables=tables)
        return StepResult(title, Status.PASS, f"build: {pre.summary}; boot requirements ok",
                          details={"build": pre.to_dict()}, tables=tables)

    def _run(self) -> StepResult:
        t0 = time.monotonic()
        self.build.run()
        build = self.keep("build", self._renamed(self.build.result(), "build"))
        self._durations["build_s"] = time.monotonic() - t0
        if build.status is not Status.PASS:
            self.keep("boot", StepResult(self.part_title("boot"), build.status,
                                         "not run: the build did not pass", build.cause, build.fix))
        else:
            t1 = time.monotonic()
            self.boot.preflight()
            self.boot.run()
            self.keep("boot", self._renamed(self.boot.result(), "boot"))
            self._durations["boot_s"] = time.monotonic() - t1
        self._compare()
        if self.params["reference_dir"]:
            self._reference()
        parts = [self.parts[k] for k in ("build", "boot")]
        worst = Status.worst([p.status for p in parts])
        first_bad = next((p for p in parts if p.status is not Status.PASS), None)
        summary = self.headline()
        return StepResult(self.part_title("run"), worst, summary,
                          first_bad.cause if first_bad else None, first_bad.fix if first_bad else None,
                          details={"durations_s": {k: round(v, 1) for k, v in self._durations.items()}})

    def _renamed(self, res: StepResult, part: str) -> StepResult:
        """A sub-step's combined result as a part of this step (its tables and details kept)."""
        return StepResult(self.part_title(part), res.status, res.summary, res.cause, res.fix,
                          res.details, res.tables, res.logs)

    # ---- history and comparisons ------------------------------------------------------------
    def _compare(self) -> None:
        title = self.part_title("compared with last good")
        try:
            from . import compare_runs, history
        except ImportError as exc:  # pragma: no cover - both ship with the library
            self.keep("compared with last good", StepResult(title, Status.PASS, f"not compared: {exc}"))
            return
        try:
            self.record, last = history.record_validate(self)
            self.comparison = compare_runs.compare_runs(self.record, last,
                                                        slower=float(self.params["slower_threshold"]))
            res = self.comparison.to_result(title)
        except Exception as exc:  # history must never change the verdict
            res = StepResult(title, Status.PASS, f"not compared: the run history failed "
                             f"({type(exc).__name__}: {exc})")
        self.keep("compared with last good", res)

    def _reference(self) -> None:
        title = self.part_title("reference")
        from .compare import compare_artifacts

        art = resolve_artifacts(self.boot.params)
        cmp = compare_artifacts(Path(self.params["reference_dir"]).expanduser(), art)
        res = cmp.to_result(title)
        # informational: a difference from the reference is shown, the verdict stays the boot's
        self.keep("reference", StepResult(title, Status.PASS if res.status is not Status.ERROR else Status.ERROR,
                                          res.summary, res.cause, res.fix, res.details, res.tables, res.logs))

    # ---- what the report shows ----------------------------------------------------------------
    def current(self) -> StepResult | None:
        return self._final

    def result(self) -> StepResult:
        parts = [self.parts[k] for k in ("pre-flight", "build", "boot") if k in self.parts]
        res = combine(TITLE, parts)
        if "run" in self.parts and res.status is Status.PASS:
            res.summary = self.parts["run"].summary
        extra = [self.parts[k] for k in ("compared with last good", "reference") if k in self.parts]
        for p in extra:
            res.details[p.step[len(TITLE) + 2:]] = p.to_dict()
        self._final = res
        self._update_pin()
        return res

    def headline(self) -> str:
        boot = self.boot.run_
        if "boot" in self.parts and boot is not None:
            what = boot.summary
        elif "build" in self.parts:
            what = self.parts["build"].summary
        else:
            what = "nothing ran"
        sentence = getattr(self.comparison, "sentence", "")
        return what + (f"; {sentence}" if sentence else "")

    def rebuilt(self) -> str:
        inv = self.build.inventory
        if inv is None:
            return "-"
        fresh = [r.name for r in inv.rows if r.expected and r.fresh]
        reused = [r.name for r in inv.rows if r.expected and r.fresh is False]
        if not fresh:
            return "nothing: the build was up to date" + (f" ({len(reused)} artifacts reused)" if reused else "")
        return ", ".join(fresh) + (f"; reused {', '.join(reused)}" if reused else "")

    def summary_rows(self) -> list[tuple[str, str]]:
        res = self._final
        rows = [("verdict", f"{res.status.value}: {res.summary}" if res is not None else "running...")]
        if res is not None and res.status is not Status.PASS:
            rows.append(("first cause", res.cause or "-"))
            rows.append(("fix", res.fix or "-"))
        tree = self.build.target
        rows.append(("tree", f"{tree.kind}: {tree.root}" if tree is not None else "-"))
        rows.append(("rebuilt", self.rebuilt()))
        boot = self.boot.run_
        if boot is not None:
            login = boot.timing.get("login_prompt_s")
            rows.append(("boot", f"{boot.status.value} " + (f"login prompt after {login}s" if login else boot.summary)
                         + f" ({self.params['firmware']}, {self.params['network']} networking)"))
        cmp = self.parts.get("compared with last good")
        if cmp is not None:
            rows.append(("compared with last good", cmp.summary))
        ref = self.parts.get("reference")
        if ref is not None:
            rows.append(("compared with the reference", ref.summary))
        if self._durations:
            rows.append(("time", ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in self._durations.items())))
        return rows

    def summary(self) -> Summary:
        return Summary(self)

    def show(self, which: str, name: str) -> Any:
        """A section of the build ("build") or the boot ("boot"), or a note when it did not run."""
        from .report.render import Note

        if which == "build":
            if "build" not in self.parts:
                return Note("The build did not run (see the pre-flight above).")
            return self.build.section(name)
        if self.boot.run_ is None:
            return Note("The boot did not run: " + (self.parts["boot"].summary if "boot" in self.parts
                                                    else "see the pre-flight above") + ".")
        return self.boot.section(name)

    def reference(self) -> Any:
        """The comparison with `reference_dir`, or a note that none was given."""
        from .report.render import Note

        if "reference" in self.parts:
            return self.parts["reference"]
        if not self.params["reference_dir"]:
            return Note("No reference set given (reference_dir is empty). Set it to a known-good artifact "
                        "directory (e.g. the official artifacts) to compare your build with it; "
                        "`runbook compare-artifacts REF DIR` does the same from a shell.")
        return Note("Not compared: the run did not get that far.")

    def compared(self) -> Any:
        from .report.render import Note

        return self.parts.get("compared with last good") or Note("Not compared: the run did not get that far.")

    def pin_summary(self) -> Any:
        """Show the summary where this is called (the report's top) and keep it current: result()
        updates it in place (a Jupyter display id; papermill keeps the update in the saved notebook)."""
        try:
            from IPython.display import display
        except ImportError:  # pragma: no cover - outside Jupyter
            return self.summary()
        self._handle = display(self.summary(), display_id=True)
        return None

    def _update_pin(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.update(self.summary())

    def checklist(self) -> Any:
        """Part and status, plus the boot's milestones in order: stable across hosts (nbval)."""
        import pandas as pd

        rows = [{"part": k, "status": r.status.value} for k, r in self.parts.items()
                if k in ("pre-flight", "build", "boot")]
        return pd.DataFrame(rows, columns=["part", "status"])
