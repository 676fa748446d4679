"""Run history: one compact, versioned JSON record per run of step 2, step 3 and validate.

Records live under the XDG data directory, keyed by tree (:func:`runbook_lib.step.state_dir`
with ``kind="history"``), one file per run named ``<UTC timestamp>-<kind>-<id>.json``, written
atomically; the newest :data:`KEEP` per tree are kept. A record says which tree (root, sandbox or
carbide, git commit and dirty state), which parameters (secrets masked), which artifacts (name,
size, sha256 and the facts :func:`artifact_facts` reads), what the boot reached and when, what the
build ran, and the verdict. The last PASS of the same tree, kind and parameters is "last good"
(:func:`last_good`); :mod:`runbook_lib.compare_runs` compares a run with it.

Steps 2 and 3 record through :mod:`runbook_lib.history_hooks` (failure-proof: a problem becomes
a note, never a verdict); validate calls :func:`record_validate`. ``RUNBOOK_HISTORY=off`` (or a
step's ``record_history = False``) turns writing off; tests point ``XDG_DATA_HOME`` at a
temporary directory instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from . import shell
from .inspect import set_facts
from .params import NotebookSpec
from .paths import ARTIFACT_SUBDIR, data_dir, sandbox_workdir
from .report.sanitize import REDACTED, redact, redact_tree
from .step import state_dir

SCHEMA = "carbide-runbooks/run-record"
VERSION = 1
KEEP = 200
KINDS = ("build", "boot", "validate")
DISABLE_ENV = "RUNBOOK_HISTORY"  # "off" / "0" / "no": record nothing
# Parameters that do not change what is built or booted (paths of logs and reports, timeouts,
# how the tree is named or handed back, checks around the run): left out of the params key.
NOT_IN_KEY = frozenset({
    "log_dir", "workdir", "carbide_root_dir", "artifacts_dir", "report_dir", "reference_dir",
    "build_timeout_s", "boot_timeout_s", "timeout_s", "cell_timeout", "chown_user", "fix_ownership",
    "force", "ci_only_pattern", "artifact_profile", "check_served", "bounce", "pxe_url", "port",
    "hide_code", "quiet", "dry_run", "install_missing",
})
_FILE_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}(?:\.\d+)?Z)-(?P<kind>[a-z]+)-(?P<id>[0-9a-f]+)\.json$")


class RecordError(ValueError):
    """A file that is not a run record this version can read (skipped with a note)."""


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("off", "0", "no", "false")


def now() -> str:
    """UTC ISO time with microseconds (records sort by it)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def when_text(iso: str) -> str:
    """'2025-06-01 12:03 UTC' for sentences and tables."""
    t = parse_time(iso)
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else (iso or "?")


# ---- the record ----------------------------------------------------------------------------
@dataclass
class Record:
    id: str
    kind: str
    started: str
    finished: str
    tree: dict[str, Any]
    params: dict[str, Any]
    params_key: str
    artifacts: dict[str, dict[str, Any]]
    verdict: str
    summary: str
    boot: dict[str, Any] | None = None
    build: dict[str, Any] | None = None
    first_failure: dict[str, Any] | None = None
    reached: str | None = None
    report: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    path: Path | None = None  # where it was read from / written to (not stored)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": VERSION, "id": self.id, "kind": self.kind,
                "started": self.started, "finished": self.finished, "tree": self.tree,
                "params": self.params, "params_key": self.params_key, "artifacts": self.artifacts,
                "boot": self.boot, "build": self.build, "verdict": self.verdict, "summary": self.summary,
                "first_failure": self.first_failure, "reached": self.reached, "report": self.report,
                "notes": self.notes}

    @classmethod
    def from_dict(cls, d: Any) -> "Record":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise RecordError("not a carbide-runbooks run record")
        if d.get("version") != VERSION:
            raise RecordError(f"record version {d.get('version')!r} (this runbook reads version {VERSION})")
        try:
            return cls(id=str(d["id"]), kind=str(d["kind"]), started=str(d["started"]),
                       finished=str(d["finished"]), tree=dict(d["tree"]), params=dict(d.get("params") or {}),
                       params_key=str(d.get("params_key") or ""), artifacts=dict(d.get("artifacts") or {}),
                       verdict=str(d["verdict"]), summary=str(d.get("summary") or ""),
                       boot=d.get("boot"), build=d.get("build"), first_failure=d.get("first_failure"),
                       reached=d.get("reached"), report=d.get("report"), notes=list(d.get("notes") or []))
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"incomplete record: {type(exc).__name__}: {exc}") from None

    @property
    def milestones(self) -> list[dict[str, Any]]:
        return list((self.boot or {}).get("milestones") or [])

    @property
    def boot_seconds(self) -> float | None:
        """Seconds to the login prompt (else to the last milestone reached)."""
        b = self.boot or {}
        if b.get("login_prompt_s") is not None:
            return float(b["login_prompt_s"])
        ms = [m for m in self.milestones if m.get("seconds") is not None]
        return float(ms[-1]["seconds"]) if ms else None

    @property
    def commit(self) -> str:
        g = self.tree.get("git") or {}
        if not g.get("commit"):
            return ""
        return str(g["commit"])[:10] + ("+dirty" if g.get("dirty") else "")


def load(path: str | os.PathLike[str]) -> Record:
    """One record file; :class:`RecordError` for anything that is not a readable version-1 record."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"cannot read: {exc}") from None
    rec = Record.from_dict(data)
    rec.path = p
    return rec


# ---- where ---------------------------------------------------------------------------------
def history_root() -> Path:
    return data_dir() / "history"


def tree_dir(tree: str | os.PathLike[str]) -> Path:
    return state_dir(Path(tree), kind="history")


def _files(directory: Path, kind: str | None = None) -> list[Path]:
    """Record files of one tree, newest first (file names sort by time)."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".json")]
    except OSError:
        return []
    out = []
    for n in sorted(names, reverse=True):
        m = _FILE_RE.match(n)
        if m is None or (kind is not None and m.group("kind") != kind):
            continue
        out.append(directory / n)
    return out


def _dirs(tree: str | os.PathLike[str] | None) -> list[Path]:
    if tree is not None:
        return [tree_dir(tree)]
    root = history_root()
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []


def scan(tree: str | os.PathLike[str] | None = None, kind: str | None = None,
         limit: int | None = None) -> tuple[list[Record], list[str]]:
    """Records (newest first) and a note per file that was skipped (other version, unreadable)."""
    files = [f for d in _dirs(tree) for f in _files(d, kind)]
    files.sort(key=lambda f: f.name, reverse=True)
    out: list[Record] = []
    notes: list[str] = []
    for f in files:
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append(load(f))
        except RecordError as exc:
            notes.append(f"skipped {f}: {exc}")
    return out, notes


def records(tree: str | os.PathLike[str] | None = None, kind: str | None = None) -> list[Record]:
    """Every readable record (of one tree, else of all), newest first; unreadable ones are skipped."""
    return scan(tree, kind)[0]


def last_good(tree: str | os.PathLike[str], kind: str, params_key: str,
              exclude: str | None = None) -> Record | None:
    """The newest PASS of `tree` with this kind and params key (`exclude`: a record id to skip)."""
    for f in _files(tree_dir(tree), kind):
        try:
            rec = load(f)
        except RecordError:
            continue
        if rec.verdict == "PASS" and rec.params_key == params_key and rec.id != exclude:
            return rec
    return None


# ---- building a record ---------------------------------------------------------------------
def params_key(params: Mapping[str, Any], exclude: frozenset[str] = NOT_IN_KEY) -> str:
    """A stable hash of the parameters that change what is built or booted (16 hex digits)."""
    chosen = {k: params[k] for k in sorted(params) if k not in exclude}
    text = json.dumps(chosen, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mask_params(params: Mapping[str, Any], spec: NotebookSpec | None = None) -> dict[str, Any]:
    """Parameters with secret ones shown as ``***`` and secret-looking text redacted."""
    secret_names = {p.name for p in spec.params if p.secret} if spec is not None else set()
    out: dict[str, Any] = {}
    for k, v in params.items():
        out[k] = REDACTED if k in secret_names and v not in (None, "") else v
    return redact_tree(_jsonable(out), _secret_values(params, spec))


def _secret_values(params: Mapping[str, Any], spec: NotebookSpec | None) -> list[str]:
    if spec is None:
        return []
    return [str(v) for v in spec.secret_values(params).values() if v]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def tree_info(root: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """{"root", "kind", "git": {"commit", "dirty"} or None}; git only for a checkout's top."""
    r = Path(root).expanduser().resolve()
    git: dict[str, Any] | None = None
    if (r / ".git").exists():
        head = shell.capture(["git", "-C", str(r), "rev-parse", "HEAD"], timeout=15)
        if head.ok and head.tail:
            st = shell.capture(["git", "-C", str(r), "status", "--porcelain", "--untracked-files=no",
                                "--ignore-submodules=all"], timeout=30)
            dirty = [ln for ln in st.tail if ln.strip()] if st.ok else []
            git = {"commit": head.tail[0].strip(), "dirty": bool(dirty), "dirty_files": len(dirty)}
    return {"root": str(r), "kind": kind, "git": git}


# Artifact facts: runbook_lib.inspect.set_facts (size, sha256, kind, iPXE/UKI/cpio/manifest facts,
# cached on disk by runbook_lib.inspect). One in-process memo keyed by each file's (name, size,
# mtime, inode) on top: a validate run records build, boot and validate against the same files.
_FACTS_MEMO: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
_MEMO_MAX = 8


def _facts_impl() -> Callable[[Path], dict[str, dict[str, Any]]]:
    return set_facts


def artifact_facts(directory: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Per artifact file: name, size, sha256, kind (+ iPXE/UKI/cpio/manifest facts when read)."""
    d = Path(directory)
    if not d.is_dir():
        return {}
    stamp: list[tuple[str, int, int, int]] = []
    for e in sorted(os.scandir(d), key=lambda e: e.name):
        if e.is_file() and not e.name.startswith("."):
            s = e.stat()
            stamp.append((e.name, s.st_size, s.st_mtime_ns, s.st_ino))
    key = (str(d.resolve()), tuple(stamp))
    if key in _FACTS_MEMO:
        return _FACTS_MEMO[key]
    facts = _facts_impl()(d)
    if len(_FACTS_MEMO) >= _MEMO_MAX:
        _FACTS_MEMO.pop(next(iter(_FACTS_MEMO)))
    _FACTS_MEMO[key] = facts
    return facts


def _kind_of(name: str) -> str:
    if name.endswith(".manifest"):
        return "manifest"
    if name.startswith(("ipxe", "golan", "snp", "undionly")) and name.endswith((".efi", ".kpxe", ".pxe")):
        return "ipxe"
    if name.endswith(".efi"):
        return "uki"
    if name.endswith((".root", ".cpio", ".cpio.zst", ".cpio.gz")):
        return "cpio"
    if name.endswith(".ipxe"):
        return "script"
    return "file"


def basic_facts(directory: Path) -> dict[str, dict[str, Any]]:
    """Size, sha256 and a kind guessed from the name; manifests' packages (the facts recorded
    before runbook_lib.inspect existed; kept for callers that want only these)."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(directory.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        facts: dict[str, Any] = {"name": p.name, "size": p.stat().st_size, "sha256": h.hexdigest(),
                                 "kind": _kind_of(p.name)}
        if facts["kind"] == "manifest":
            from .build import manifest as mani
            try:
                facts["packages"] = {k: v.version for k, v in mani.load(p).items()}
            except (mani.ManifestError, OSError):
                pass
        out[p.name] = facts
    return out


def new_record(kind: str, *, tree_root: str | os.PathLike[str], tree_kind: str,
               params: Mapping[str, Any], spec: NotebookSpec | None, verdict: str, summary: str,
               started: str | None = None, artifacts_dir: str | os.PathLike[str] | None = None,
               boot: dict[str, Any] | None = None, build: dict[str, Any] | None = None,
               first_failure: dict[str, Any] | None = None, reached: str | None = None,
               report: dict[str, Any] | None = None, key_exclude: frozenset[str] = NOT_IN_KEY) -> Record:
    """A record (not written yet): facts of `artifacts_dir`, git state of the tree, masked params."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    notes: list[str] = []
    secrets = _secret_values(params, spec)
    try:
        tree = tree_info(tree_root, tree_kind)
    except (OSError, shell.ShellError) as exc:
        tree = {"root": str(tree_root), "kind": tree_kind, "git": None}
        notes.append(f"git state not read: {exc}")
    facts: dict[str, dict[str, Any]] = {}
    if artifacts_dir is not None:
        try:
            facts = _jsonable(artifact_facts(artifacts_dir))
        except Exception as exc:  # an unreadable file must not lose the record
            notes.append(f"artifact facts not read: {type(exc).__name__}: {exc}")
    if first_failure is not None:
        first_failure = redact_tree(_jsonable(first_failure), secrets)
    return Record(id=uuid.uuid4().hex[:12], kind=kind, started=started or now(), finished=now(),
                  tree=tree, params=mask_params(params, spec), params_key=params_key(params, key_exclude),
                  artifacts=facts, verdict=verdict, summary=redact(summary, secrets),
                  boot=_jsonable(boot) if boot is not None else None,
                  build=_jsonable(build) if build is not None else None,
                  first_failure=first_failure, reached=reached,
                  report=_jsonable(report) if report is not None else None, notes=notes)


def write(rec: Record, keep: int = KEEP) -> Path:
    """Write atomically under the tree's history directory, then keep the newest `keep`."""
    directory = tree_dir(rec.tree["root"])
    directory.mkdir(parents=True, exist_ok=True)
    t = parse_time(rec.finished) or datetime.now(timezone.utc)
    name = f"{t.strftime('%Y%m%dT%H%M%S.%f')}Z-{rec.kind}-{rec.id}.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(rec.to_dict(), fh, indent=1, sort_keys=False)
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    rec.path = directory / name
    prune(directory, keep)
    return rec.path


def prune(directory: Path, keep: int = KEEP) -> list[Path]:
    """Remove all but the newest `keep` record files of one tree; returns what was removed."""
    removed = []
    for old in _files(directory)[keep:]:
        try:
            old.unlink()
            removed.append(old)
        except OSError:
            pass
    return removed


# ---- what a run was on: from the steps -----------------------------------------------------
def tree_of_boot(params: Mapping[str, Any]) -> tuple[Path, str, Path]:
    """(tree root, "carbide" | "sandbox" | "directory", artifacts dir) of a step 3 run."""
    arch = params.get("arch", "x86_64")
    sandbox = sandbox_workdir(params.get("workdir") or None)
    if params.get("artifacts_dir"):
        art = Path(params["artifacts_dir"]).expanduser().resolve()
        sub = ARTIFACT_SUBDIR / arch
        if art.parts[-len(sub.parts):] == sub.parts:
            root = Path(*art.parts[:-len(sub.parts)])
        else:
            root = art
    elif params.get("carbide_root_dir"):
        root = Path(params["carbide_root_dir"]).expanduser().resolve()
        art = root / ARTIFACT_SUBDIR / arch
    else:
        root, art = sandbox, sandbox / ARTIFACT_SUBDIR / arch
    if params.get("carbide_root_dir") or (root / "pxe" / "Makefile.toml").is_file():
        kind = "carbide"
    elif root == sandbox.resolve() or root == sandbox:
        kind = "sandbox"
    else:
        kind = "directory"
    return root, kind, art


def boot_facts(run: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """(boot section, first failure, last milestone) of a :class:`~runbook_lib.boot.run.BootRun`."""
    an = getattr(run, "analysis", None)
    milestones = []
    ff: dict[str, Any] | None = None
    reached = None
    if an is not None:
        milestones = [{"name": m.name, "label": m.label,
                       "seconds": None if m.seconds is None else round(m.seconds, 2)} for m in an.milestones]
        reached = an.last_milestone
        f = an.first_failure
        if f is not None and an.verdict != "PASS":
            ff = {"kind": f.kind, "text": f.text[:300],
                  "seconds": None if f.seconds is None else round(f.seconds, 2)}
    timing = dict(getattr(run, "timing", {}) or {})
    boot = {"milestones": milestones, "firmware": params.get("firmware"), "network": params.get("network"),
            "accel": None, "boot_s": timing.get("boot_s"), "login_prompt_s": timing.get("login_prompt_s"),
            "infrastructure_events": len(getattr(run, "infra_events", []) or [])}
    if ff is None and getattr(run, "status", None) is not None and run.status.value != "PASS":
        ff = {"kind": "not booted" if an is None else "boot", "text": str(run.cause or run.summary)[:300],
              "seconds": None}
    return boot, ff, reached


def record_boot(step: Any, started: str | None = None, report: dict[str, Any] | None = None,
                write_it: bool = True) -> Record:
    """The record of a finished :class:`~runbook_lib.boot.step.BootStep` (written unless told not)."""
    p = step.params
    root, kind, art = tree_of_boot(p)
    if step.plan is not None:
        art = step.plan.artifacts
    res = step.result()
    boot, ff, reached = boot_facts(step.run_, p) if step.run_ is not None else ({}, None, None)
    if step.plan is not None:
        boot["accel"] = step.plan.accel
    if ff is None and res.status.value != "PASS":
        ff = {"kind": "pre-flight" if step.run_ is None else "step", "text": str(res.cause or res.summary)[:300],
              "seconds": None}
    rep = {"log_dir": str(step.log_dir), **(report or {})}
    rec = new_record("boot", tree_root=root, tree_kind=kind, params=p, spec=step.spec, verdict=res.status.value,
                     summary=res.summary, started=started, artifacts_dir=art, boot=boot or None,
                     first_failure=ff, reached=reached, report=rep)
    if write_it:
        write(rec)
    return rec


def build_facts(step: Any) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """(build section, first failure, last task reached) of a finished BuildStep."""
    t, o, v = step.target, step.outcome, step.verdict
    tasks: list[dict[str, str]] = []
    reached = None
    if t is not None:
        started = {r.name: r for r in o.log.tasks if r.level == 0} if o is not None else {}
        failing = o.log.failing_task() if o is not None else None
        for name in t.plan.task_names():
            r = started.get(name)
            state = "not reached" if r is None else ("skipped" if r.skipped else "ran")
            if name == failing:
                state = "failed"
            if r is not None:
                reached = name
            tasks.append({"task": name, "state": state})
    rebuilt = []
    if step.inventory is not None:
        rebuilt = [r.name for r in step.inventory.rows if r.fresh and r.size is not None]
    build = {"tasks": tasks, "duration_s": round(o.duration_s, 2) if o is not None else None,
             "rebuilt": rebuilt, "tool": t.tool if t is not None else None,
             "commands": [" && ".join(t.tasks)] if t is not None and t.tasks else []}
    ff = None
    if v is not None and v.status.value != "PASS":
        ff = {"kind": v.kind, "text": str(v.cause or v.summary)[:300], "seconds": None}
    return build, ff, reached


def record_build(step: Any, started: str | None = None, report: dict[str, Any] | None = None,
                 write_it: bool = True) -> Record:
    """The record of a finished :class:`~runbook_lib.build.step.BuildStep` (written unless told not)."""
    p = step.params
    t = step.target
    if t is not None:
        root, kind, art = t.root, t.kind, t.artifact_dir
    else:
        root = Path(p["carbide_root_dir"]).expanduser() if p.get("carbide_root_dir") else \
            sandbox_workdir(p.get("workdir") or None)
        kind = "carbide" if p.get("carbide_root_dir") else "sandbox"
        art = root / ARTIFACT_SUBDIR / p.get("arch", "x86_64")
    res = step.result()
    build, ff, reached = build_facts(step)
    if ff is None and res.status.value != "PASS":
        bad = next((r for r in step.parts.values() if r.status.value != "PASS"), res)
        part = bad.step.rsplit(": ", 1)[-1]
        ff = {"kind": part, "text": str(bad.cause or bad.summary)[:300], "seconds": None}
    rep = {"log_dir": str(step.log_dir), **(report or {})}
    rec = new_record("build", tree_root=root, tree_kind=kind, params=p, spec=step.spec,
                     verdict=res.status.value, summary=res.summary, started=started,
                     artifacts_dir=art if Path(art).is_dir() else None, build=build, first_failure=ff,
                     reached=reached, report=rep)
    if write_it:
        write(rec)
    return rec


def record_validate(step: Any, started: str | None = None, report: dict[str, Any] | None = None,
                    write_it: bool = True) -> tuple[Record, Record | None]:
    """A validate run's record and the last good validate run of the same tree and params.

    `step` is a ValidateStep (``.params``, ``.spec``, ``.parts``, ``.build``: a BuildStep,
    ``.boot``: a BootStep). The verdict is the worst of its pre-flight/build/boot parts; the
    last good run is looked up before this record is written, so a PASS is never its own.
    """
    bs: Any = getattr(step, "build", None)
    bt: Any = getattr(step, "boot", None)
    p = step.params
    parts = [step.parts[k] for k in ("pre-flight", "build", "boot") if k in step.parts]
    statuses = [x.status.value for x in parts]
    verdict = "ERROR" if "ERROR" in statuses else "FAIL" if "FAIL" in statuses else "PASS" if parts else "ERROR"
    bad = next((x for x in parts if x.status.value != "PASS"), None)
    t = bs.target if bs is not None else None
    if t is not None:
        root, kind, art = t.root, t.kind, t.artifact_dir
    else:
        root, kind, art = tree_of_boot(p)
    build_sec = boot_sec = ff = reached = None
    if bs is not None and bs.outcome is not None:
        build_sec, ff, reached = build_facts(bs)
    if bt is not None and bt.run_ is not None:
        boot_sec, bff, reached = boot_facts(bt.run_, bt.params)
        if bt.plan is not None:
            boot_sec["accel"] = bt.plan.accel
        ff = ff or bff
    if ff is None and bad is not None:
        ff = {"kind": bad.step.rsplit(": ", 1)[-1], "text": str(bad.cause or bad.summary)[:300], "seconds": None}
    summary = bad.summary if bad is not None else (parts[-1].summary if parts else "nothing ran")
    if bt is not None and bt.run_ is not None and bad is None:
        summary = bt.run_.summary
    rep = {"log_dir": str(step.log_dir), **(report or {})}
    rec = new_record("validate", tree_root=root, tree_kind=kind, params=p, spec=getattr(step, "spec", None),
                     verdict=verdict, summary=summary, started=started,
                     artifacts_dir=art if Path(art).is_dir() else None,
                     boot=boot_sec, build=build_sec, first_failure=ff, reached=reached, report=rep)
    good = last_good(rec.tree["root"], "validate", rec.params_key, exclude=rec.id)
    if write_it and enabled():
        write(rec)
    return rec, good


def iter_table_rows(recs: list[Record]) -> Iterator[dict[str, str]]:
    """Rows of `runbook history`'s table."""
    for r in recs:
        secs = r.boot_seconds
        yield {"when": when_text(r.finished), "kind": r.kind, "tree": _short_tree(r.tree),
               "commit": r.commit or "-", "verdict": r.verdict,
               "boot": f"{secs:.1f}s" if secs is not None else "-",
               "summary": r.summary if len(r.summary) <= 90 else r.summary[:87] + "..."}


def _short_tree(tree: Mapping[str, Any]) -> str:
    root = str(tree.get("root", "?"))
    name = Path(root).name or root
    return f"{name} ({tree.get('kind', '?')})"
