"""Prove what a running carbide-pxe serves: the bytes behind ``/public/blobs/internal/<arch>/<file>``
compared with the local build, file by file (size and sha256).

carbide-pxe serves ``/public`` from its static directory (``--static-dir``, a directory of the
checkout bind-mounted into the docker-compose container, or a copy baked into the image on
KIND), so after a rebuild it may still hand out the previous artifacts until it is bounced (a
rebuilt directory that replaced the mounted one, an image that was not rebuilt). This module
fetches every artifact the way the VM will, streaming it through sha256 (a 300 MB root never
sits in memory), and says per file: ``same``, ``stale`` (different bytes), ``missing`` (404) or
``error`` (connection or HTTP error, with the message).

The verdict is PASS (all the same), FAIL (stale or missing files, named; the fix is the bounce
command) or ERROR (carbide-pxe did not answer: the fix names the URL that was tried and how to
find the right one). ``netns`` fetches from inside a network namespace (the test network's
stand-in listens on the bridge address there), the way :meth:`TestNet.exec_argv` runs QEMU.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar
from urllib.parse import quote

from ..result import Status, StepResult
from ..sandbox.inputs import file_digest

__all__ = ["ServedRow", "ServedReport", "compare_served", "local_artifacts", "fetch_digest",
           "blob_url", "DEFAULT_FIX", "SHORT"]

BLOB_PATH = "/public/blobs/internal"
CHUNK = 1 << 20
SHORT = 12  # characters of a sha256 shown in the table
DEFAULT_FIX = "restart carbide-pxe so it serves the new build"
T = TypeVar("T")


@dataclass
class ServedRow:
    file: str
    local_size: int | None
    local_sha256: str  # short
    served_size: int | None
    served_sha256: str  # short, "" when nothing was served
    status: str  # same | stale | missing | error
    detail: str = ""
    url: str = ""


@dataclass
class ServedReport:
    base_url: str
    arch: str
    local_dir: Path
    rows: list[ServedRow] = field(default_factory=list)
    status: Status = Status.PASS
    summary: str = ""
    cause: str | None = None
    fix: str | None = None
    seconds: float = 0.0
    netns: str | None = None

    def named(self, status: str) -> list[str]:
        return [r.file for r in self.rows if r.status == status]

    @property
    def stale(self) -> list[str]:
        return self.named("stale")

    @property
    def missing(self) -> list[str]:
        return self.named("missing")

    @property
    def errors(self) -> list[str]:
        return self.named("error")

    def table(self) -> Any:
        import pandas as pd

        cols = ["file", "status", "local_size", "served_size", "local_sha256", "served_sha256", "detail"]
        df = pd.DataFrame([asdict(r) for r in self.rows], columns=cols + ["url"])[cols]
        for c in ("local_size", "served_size"):
            df[c] = df[c].astype("Int64")
        return df

    def to_dict(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "arch": self.arch, "local_dir": str(self.local_dir),
                "netns": self.netns, "status": self.status.value, "summary": self.summary,
                "cause": self.cause, "fix": self.fix, "seconds": round(self.seconds, 3),
                "rows": [asdict(r) for r in self.rows]}

    def to_result(self, step: str, details: dict[str, Any] | None = None) -> StepResult:
        return StepResult(step, self.status, self.summary, self.cause, self.fix,
                          details={"served": self.to_dict(), **(details or {})},
                          tables={"served vs local": self.table()})

    def _repr_html_(self) -> str:
        return self.to_result(f"served by {self.base_url}")._repr_html_()

    def __str__(self) -> str:
        return str(self.to_result(f"served by {self.base_url}"))


def local_artifacts(local_dir: Path) -> list[str]:
    """The artifact files of a build directory: regular files, no dotfiles (``.gitignore``, a
    leftover ``.mkosi-*``), no directories; sorted."""
    d = Path(local_dir)
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".") and p.is_file())


def blob_url(base_url: str, arch: str, name: str) -> str:
    return f"{base_url.rstrip('/')}{BLOB_PATH}/{quote(arch)}/{quote(name)}"


class _Unreachable(Exception):
    """The server did not answer at all (refused, timed out, no route, name unknown)."""


def fetch_digest(url: str, timeout: float) -> tuple[int, int, str, str]:
    """GET `url` streaming: (HTTP status, bytes read, sha256 hex, note). 404 -> (404, 0, "", reason).

    Raises :class:`_Unreachable` when nothing answered; other HTTP statuses come back as they are.
    """
    req = urllib.request.Request(url, headers={"User-Agent": "carbide-runbooks served-check"})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http only, built above)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, 0, "", f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        raise _Unreachable(_reason(exc.reason)) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Unreachable(_reason(exc)) from exc
    h = hashlib.sha256()
    size = 0
    with resp:
        declared = resp.headers.get("Content-Length")
        try:
            while True:
                buf = resp.read(CHUNK)
                if not buf:
                    break
                h.update(buf)
                size += len(buf)
        except (OSError, http.client.HTTPException) as exc:
            return resp.status, size, "", f"transfer broke after {size} bytes: {_reason(exc)}"
        if declared is not None and declared.isdigit() and int(declared) != size:
            return resp.status, size, "", f"transfer broke after {size} bytes (Content-Length {declared})"
        return resp.status, size, h.hexdigest(), ""


def _reason(exc: object) -> str:
    if isinstance(exc, socket.timeout) or isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or exc.__class__.__name__


def _in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread that first enters network namespace `netns` (sockets made there stay
    in it); in this thread when `netns` is None."""
    if netns is None:
        return fn()
    from .testnet import enter_netns

    box: dict[str, Any] = {}

    def work() -> None:
        try:
            enter_netns(netns)
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=work, name=f"served-check-{netns}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def compare_served(base_url: str, arch: str, local_dir: str | Path, names: list[str] | None = None,
                   timeout: float = 15.0, *, netns: str | None = None, wait_s: float = 0.0,
                   fix: str | None = None, find_url_hint: str = "") -> ServedReport:
    """Fetch each artifact of `local_dir` from carbide-pxe at `base_url` and compare.

    `names` (default: :func:`local_artifacts`) limits the files. `timeout` bounds each
    connection and read; `wait_s` keeps retrying while nothing answers (a carbide-pxe that was
    just restarted). `fix` is what a stale/missing verdict tells the user to do (the bounce
    command when it is known); `find_url_hint` is added to the unreachable verdict's fix.
    """
    t0 = time.monotonic()
    local = Path(local_dir)
    rep = ServedReport(base_url.rstrip("/"), arch, local, netns=netns)
    if not local.is_dir():
        rep.status, rep.summary = Status.ERROR, "nothing to compare: no local build"
        rep.cause = f"{local} is not a directory"
        rep.fix = "build the artifacts first (step 2) or set artifacts_dir"
        return rep
    files = list(names) if names is not None else local_artifacts(local)
    if not files:
        rep.status, rep.summary = Status.ERROR, "nothing to compare: the local build dir holds no artifacts"
        rep.cause, rep.fix = f"no artifact files in {local}", "build the artifacts first (step 2)"
        return rep
    digests: dict[str, tuple[int | None, str]] = {}
    for name in files:
        p = local / name
        digests[name] = (p.stat().st_size, file_digest(p)) if p.is_file() else (None, "")

    def fetch_all() -> list[ServedRow]:
        rows: list[ServedRow] = []
        unreachable = ""
        for name in files:
            lsize, lsha = digests[name]
            url = blob_url(rep.base_url, arch, name)
            row = ServedRow(name, lsize, lsha[:SHORT], None, "", "error", url=url)
            rows.append(row)
            if unreachable:
                row.detail = f"not tried: {unreachable}"
                continue
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    code, size, sha, note = fetch_digest(url, timeout)
                    break
                except _Unreachable as exc:
                    if time.monotonic() + 1.0 < deadline:
                        time.sleep(1.0)
                        continue
                    unreachable = f"{rep.base_url} did not answer ({exc})"
                    row.detail = unreachable
                    code = -1
                    break
            if code == -1:
                continue
            if code == 404:
                row.status, row.detail = "missing", note or "HTTP 404"
            elif code not in (200, 206):
                row.detail = note or f"HTTP {code}"
            elif note.startswith("transfer broke"):
                row.served_size, row.detail = size, note
            else:
                row.served_size, row.served_sha256 = size, sha[:SHORT]
                if lsize is None:
                    row.status, row.detail = "stale", "served, but not in the local build"
                elif size == lsize and sha == lsha:
                    row.status = "same"
                else:
                    row.status = "stale"
                    row.detail = (f"size {size} served vs {lsize} local" if size != lsize
                                  else "same size, different bytes")
            if lsize is None and row.status != "stale":
                row.detail = (row.detail + "; " if row.detail else "") + "not in the local build"
        return rows

    rep.rows = _in_netns(netns, fetch_all)
    rep.seconds = time.monotonic() - t0
    _verdict(rep, fix or DEFAULT_FIX, find_url_hint)
    return rep


def _names(files: list[str], limit: int = 6) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def _verdict(rep: ServedReport, fix: str, find_url_hint: str) -> None:
    n = len(rep.rows)
    stale, missing, errors = rep.stale, rep.missing, rep.errors
    where = f"{rep.base_url}{BLOB_PATH}/{rep.arch}/" + (f" (inside {rep.netns})" if rep.netns else "")
    if stale or missing:
        rep.status = Status.FAIL
        parts = []
        if stale:
            parts.append(f"stale: {_names(stale)}")
        if missing:
            parts.append(f"missing: {_names(missing)}")
        if errors:
            parts.append(f"error: {_names(errors)}")
        rep.summary = f"carbide-pxe does not serve the local build ({'; '.join(parts)}; {n - len(stale) - len(missing) - len(errors)} of {n} the same)"
        first = next(r for r in rep.rows if r.status in ("stale", "missing"))
        rep.cause = (f"{first.file}: {first.status} at {first.url}"
                     + (f" ({first.detail})" if first.detail else "")
                     + (f"; also {_names([f for f in stale + missing if f != first.file])}"
                        if len(stale) + len(missing) > 1 else ""))
        rep.fix = fix
    elif errors:
        rep.status = Status.ERROR
        first_err = next(r for r in rep.rows if r.status == "error")
        unreachable = "did not answer" in first_err.detail
        rep.summary = (f"carbide-pxe is unreachable at {rep.base_url}" if unreachable
                       else f"carbide-pxe answered with errors for {_names(errors)}")
        rep.cause = f"{first_err.file}: {first_err.detail} ({first_err.url})"
        rep.fix = (f"check that carbide-pxe runs and listens at {rep.base_url} (what the VM fetches is "
                   f"{where}<file>); " + (find_url_hint or "set pxe_url to its base URL")
                   if unreachable else f"look at carbide-pxe's log for {first_err.url}")
    else:
        rep.status = Status.PASS
        rep.summary = f"carbide-pxe serves the local build: {n} of {n} files the same (size and sha256)"
        rep.cause = rep.fix = None
