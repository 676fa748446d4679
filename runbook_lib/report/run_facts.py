"""Facts of one notebook run for its summary JSON: host, accel and why, tool versions, artifacts,
boot milestones, logs.

Gathered once, right after papermill finished, in the `runbook` process (never in the kernel),
from what the steps already left behind, so nothing slow runs again:

* the run's log directory: ``boot/result.json`` (step 3's run part: QEMU command, milestones,
  timing) and the files the steps saved (listed with their sizes);
* the run history records the steps wrote for this run (:mod:`runbook_lib.history`, matched by
  the run's ``log_dir``): artifacts with size and sha256, the boot's accel and milestones;
* the executed notebook: step 3's pre-flight table says why KVM or TCG was chosen;
* three quick queries (``qemu-system-x86_64 --version``, ``mkosi --version``, the NIC ROM's iPXE
  package from dpkg), run in parallel: ~0.15 s together.

:func:`gather` returns a plain dict that :mod:`runbook_lib.report.export` keeps in the notebook's
metadata (``runbook.facts``), so `runbook report` rebuilds the same summary from a shared .ipynb.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

from .. import shell
from ..system_paths import OS_RELEASE, QEMU

MAX_LOG_FILES = 200
_ACCEL_ROW = re.compile(r">accel</td>\s*<td[^>]*>[^<]*</td>\s*<td[^>]*>([^<]*)</td>")
_ACCEL_ARG = re.compile(r"(?:^|\s)-accel\s+(kvm|tcg|hvf|whpx)\b")
_STAMP = re.compile(r"^(\d{8}T\d{6})")


def _first_line(argv: list[str]) -> str | None:
    try:
        res = shell.capture(argv, timeout=10)
    except (shell.ShellError, OSError):
        return None
    line = next((ln.strip() for ln in res.tail if ln.strip()), "")
    return line if res.ok and line else None


def tool_versions() -> dict[str, str | None]:
    """qemu, mkosi (the one on PATH) and Debian's ``ipxe-qemu`` (the NIC ROM QEMU loads), queried
    in parallel; None for what is not installed."""
    queries = {
        "qemu": [QEMU, "--version"],
        "mkosi": ["mkosi", "--version"],
        "ipxe_qemu_package": ["dpkg-query", "-W", "-f", "${Version}", "ipxe-qemu"],
    }
    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        found = dict(zip(queries, pool.map(_first_line, queries.values())))
    qemu = found.get("qemu")
    m = re.search(r"version (\S+)", qemu or "")
    return {"qemu": m.group(1) if m else qemu, "mkosi": (found.get("mkosi") or "").removeprefix("mkosi ") or None,
            "ipxe_qemu_package": found.get("ipxe_qemu_package")}


def distro(path: Path = OS_RELEASE) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return m.group(1) if m else None


def host_facts() -> dict[str, Any]:
    """The machine the run happened on (cheap: files, uname and :func:`tool_versions`)."""
    u = platform.uname()
    return {"hostname": socket.gethostname(), "distro": distro(), "kernel": u.release, "arch": u.machine,
            "cpus": os.cpu_count(), "python": platform.python_version(), "versions": tool_versions()}


def boot_result(log_dir: Path | None) -> dict[str, Any] | None:
    """Step 3's run part as it saved itself (``<log_dir>/boot/result.json``), if it ran."""
    if log_dir is None:
        return None
    try:
        data = json.loads((log_dir / "boot" / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_records(log_dir: Path | None, started: str | None) -> list[Any]:
    """History records written for this run (their ``report.log_dir`` is the run's), oldest first.

    Only files named after `started` are read: record names start with their UTC finish time.
    """
    if log_dir is None:
        return []
    from .. import history

    since = re.sub(r"[^0-9T]", "", (started or "")[:19])[:15]  # 2026-11-26T20:04:23 -> 20261126T200423
    want = str(log_dir.resolve())
    out = []
    try:
        dirs = [p for p in history.history_root().iterdir() if p.is_dir()]
    except OSError:
        return []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            m = _STAMP.match(name)
            if not name.endswith(".json") or m is None or (since and m.group(1) < since):
                continue
            try:
                rec = history.load(d / name)
            except history.RecordError:
                continue
            rep = rec.report or {}
            if rep.get("log_dir") and str(Path(rep["log_dir"]).resolve()) == want:
                out.append(rec)
    out.sort(key=lambda r: r.finished)
    return out


def accel_reason(nb: Any) -> str | None:
    """Why step 3 chose KVM or TCG: the detail of its pre-flight table's ``accel`` row."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/html")
            if not text:
                continue
            m = _ACCEL_ROW.search(text if isinstance(text, str) else "".join(text))
            if m:
                return html.unescape(m.group(1)).strip() or None
    return None


def accel_facts(nb: Any, boot: dict[str, Any] | None, records: list[Any],
                params: Mapping[str, Any]) -> dict[str, Any]:
    """{"requested", "used", "why"}: used from the QEMU command (else the boot record)."""
    used = None
    cmd = ((boot or {}).get("details") or {}).get("qemu_command") or ""
    m = _ACCEL_ARG.search(cmd)
    if m:
        used = m.group(1)
    for rec in records:
        if used is None and rec.boot and rec.boot.get("accel"):
            used = str(rec.boot["accel"])
    requested = params.get("accel")
    why = accel_reason(nb)
    if why is None:
        if used is None:
            why = "this run started no VM"
        elif requested == used:
            why = f"{used} as requested (accel = {requested!r})"
        else:
            why = f"{used}: chosen by the step (accel = {requested!r}); see its pre-flight table"
    return {"requested": requested, "used": used, "why": why}


def artifacts(records: list[Any]) -> list[dict[str, Any]]:
    """name, size, sha256, kind (and the iPXE version of iPXE binaries) from this run's records;
    a file recorded twice (build, then boot) is listed once, as last recorded."""
    by_name: dict[str, dict[str, Any]] = {}
    for rec in records:
        for name, f in (rec.artifacts or {}).items():
            if not isinstance(f, dict):
                continue
            row: dict[str, Any] = {"name": str(f.get("name") or name), "size": f.get("size"),
                                   "sha256": f.get("sha256"), "kind": f.get("kind"),
                                   "recorded_by": rec.kind, "tree": (rec.tree or {}).get("root")}
            ipxe = f.get("ipxe")
            if isinstance(ipxe, dict) and ipxe.get("version"):
                row["ipxe_version"] = ipxe["version"]
            by_name[name] = row
    return [by_name[k] for k in sorted(by_name)]


def boot_facts(boot: dict[str, Any] | None, records: list[Any],
               params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Milestones with their times, the last one reached, login time; None when no VM started."""
    details = (boot or {}).get("details") or {}
    analysis = details.get("analysis") or {}
    milestones = [{"name": m.get("name"), "label": m.get("label"), "seconds": m.get("seconds")}
                  for m in analysis.get("milestones") or [] if isinstance(m, dict)]
    timing = details.get("timing") or {}
    rec = next((r for r in reversed(records) if r.boot), None)
    if not milestones and rec is not None:
        milestones = [{"name": m.get("name"), "label": m.get("label"), "seconds": m.get("seconds")}
                      for m in rec.milestones]
    if not details.get("qemu_command") and not milestones:
        return None  # no VM was started (e.g. the pre-flight stopped the step)
    rb = rec.boot if rec is not None else {}
    return {"status": (boot or {}).get("status") or (rec.verdict if rec else None),
            "firmware": params.get("firmware"), "network": params.get("network"),
            "milestones": milestones,
            "reached": analysis.get("last_milestone") or (rec.reached if rec else None),
            "login_prompt_s": timing.get("login_prompt_s", rb.get("login_prompt_s")),
            "boot_s": timing.get("boot_s", rb.get("boot_s"))}


def log_files(log_dir: Path | None, limit: int = MAX_LOG_FILES) -> list[dict[str, Any]]:
    """Files the steps saved under the log directory (path relative to it, size), bounded."""
    if log_dir is None or not log_dir.is_dir():
        return []
    out = []
    for root, dirs, files in os.walk(log_dir):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            try:
                size = p.stat().st_size
            except OSError:
                continue
            out.append({"name": str(p.relative_to(log_dir)), "size": size})
            if len(out) >= limit:
                return out
    return out


def durations(boot: dict[str, Any] | None, records: list[Any]) -> dict[str, float]:
    """Seconds per step part when a step measured it: ``step 3: boot: run`` (to the verdict) and
    the build's cargo-make/mkosi run (``step 2: build: run``)."""
    out: dict[str, float] = {}
    timing = ((boot or {}).get("details") or {}).get("timing") or {}
    if boot and boot.get("step") and timing.get("boot_s") is not None:
        out[str(boot["step"])] = float(timing["boot_s"])
    for rec in records:
        if rec.kind == "build" and rec.build and rec.build.get("duration_s") is not None:
            out["step 2: build: run"] = float(rec.build["duration_s"])
    return out


def gather(nb: Any, log_dir: str | os.PathLike[str] | None, started: str | None,
           params: Mapping[str, Any]) -> dict[str, Any]:
    """Every fact above for one finished run (never raises: a problem becomes a note)."""
    notes: list[str] = []
    ld = Path(log_dir).expanduser() if log_dir else None
    try:
        host = host_facts()
    except Exception as exc:  # a broken /etc or PATH must not lose the report
        host, notes = {}, [f"host facts not read: {type(exc).__name__}: {exc}"]
    boot = boot_result(ld)
    try:
        records = run_records(ld, started)
    except Exception as exc:
        records = []
        notes.append(f"run history not read: {type(exc).__name__}: {exc}")
    host["accel"] = accel_facts(nb, boot, records, params)
    arts = artifacts(records)
    versions = host.setdefault("versions", {})
    ipxe = sorted({a["ipxe_version"] for a in arts if a.get("ipxe_version")})
    versions["ipxe"] = ", ".join(ipxe) if ipxe else None
    if not records and boot is not None:
        notes.append("no run history record of this run (history off?): artifacts not listed")
    return {"host": host, "artifacts": arts, "boot": boot_facts(boot, records, params),
            "durations": durations(boot, records), "log_dir": str(ld.resolve()) if ld else None,
            "logs": log_files(ld), "history_records": [str(r.path) for r in records if r.path],
            "notes": notes}
