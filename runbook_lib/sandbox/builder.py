"""Build the sandbox's boot artifacts, task by task, like `cargo make` does for carbide.

``build(task, workdir)`` plans the task and its dependencies, takes the build
lock (mkosi must never run twice at once), and for each task either reuses the
cached outputs of an identical earlier build (same input key: config tree,
parameters, tool versions) or builds them. Outputs land in
``<workdir>/pxe/static/blobs/internal/x86_64/`` under a temporary name first and
are renamed into place, so an interrupted build never leaves a half-written
artifact under a final name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from .. import __version__, paths, shell
from ..artifact_model import inventory
from ..report.render import human_size
from ..result import Status, StepResult
from . import image, inputs, ipxe, ipxe_source, progress, scripts
from .runner import EnvironmentProblem, Runner, SandboxProblem
from .tasks import (ALL_TASK, ARCH, EXPECTED_ARTIFACTS, IMAGE_TASK, IPXE_TASK, PROVENANCE_FILE,
                    TASKS, plan)

STEP = "sandbox build"
DEFAULT_PASSWORD = "carbide"
MIN_FREE_BYTES = 3 * 1024**3
KEEP_OUTPUTS = 4  # cached output sets kept per task (default, e2e and step-2 test passwords)
STAMP = ".sandbox-{task}.json"
GITIGNORE = "*\n!.gitignore\n"


@dataclass
class BuildOptions:
    force: bool = False
    root_password: str = DEFAULT_PASSWORD
    ipxe_source: Path | None = None
    carbide_root: Path | None = None  # a carbide checkout whose pxe/ipxe/upstream may be the source
    download: bool = True  # try the pinned commit's download when no other source answers
    port: int = scripts.DEFAULT_PORT
    cmdline: str = scripts.KERNEL_CMDLINE
    mirror: str | None = None  # None = the system's Debian mirror


@dataclass
class TaskOutcome:
    name: str
    action: str = "pending"  # built / reused / up-to-date / planned / failed
    seconds: float = 0.0
    key: str = ""
    artifacts: list[str] = field(default_factory=list)


def _cache_outputs(cache: Path, task: str, key: str) -> Path:
    return cache / "outputs" / task / key


def _free_bytes(path: Path) -> int:
    p = path
    while not p.exists():
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def check_mirror(mirror: str, suite: str, timeout: float = 20.0) -> None:
    url = f"{mirror.rstrip('/')}/dists/{suite}/InRelease"
    req = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if resp.status >= 400:
                raise EnvironmentProblem(f"mirror {mirror} answered HTTP {resp.status} for {url}",
                                         "check the mirror URL and the network/proxy")
    except urllib.error.HTTPError as exc:
        raise EnvironmentProblem(f"mirror {mirror} answered HTTP {exc.code} for {url}",
                                 "check the mirror URL in /etc/apt/sources.list") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnvironmentProblem(f"mirror {mirror} is unreachable ({reason})",
                                 "check the network, DNS and proxy settings "
                                 f"(curl -I {url}), then rebuild") from exc


@contextlib.contextmanager
def build_lock(cache: Path, emit: Callable[[str], None]) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    lock_path = cache / "build.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            emit(progress.info(f"waiting for another sandbox build (lock {lock_path})"))
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _mounts_under(root: Path) -> list[str]:
    """Mount points below `root` (left over only if mkosi was killed hard)."""
    out: list[str] = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return out
    prefix = str(root).rstrip("/") + "/"
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4 and (fields[4] + "/").startswith(prefix):
            out.append(fields[4])
    return out


def _remove_tree(path: Path, emit: Callable[[str], None]) -> None:
    if not path.exists():
        return
    for mp in sorted(_mounts_under(path), key=len, reverse=True):
        emit(progress.warn(f"unmounting leftover mount {mp}"))
        shell.run(["umount", "--lazy", mp], timeout=60, elevate=True)
    try:
        shutil.rmtree(path)
    except PermissionError:
        shell.run(["rm", "-rf", "--one-file-system", "--", str(path)], timeout=600, elevate=True)


def _install(src_dir: Path, names: list[str], dest: Path) -> None:
    """Copy under a temporary name, then rename: never a half-written final file."""
    dest.mkdir(parents=True, exist_ok=True)
    gi = dest / ".gitignore"
    if not gi.exists():
        gi.write_text(GITIGNORE)
    for name in names:
        tmp = dest / f".{name}.tmp-{os.getpid()}"
        try:
            shutil.copyfile(src_dir / name, tmp)
            os.replace(tmp, dest / name)
        finally:
            if tmp.exists():
                tmp.unlink()


def _prune(cache: Path, task: str, keep_key: str) -> None:
    root = cache / "outputs" / task
    sets = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for d in [d for d in sets if d.name != keep_key][KEEP_OUTPUTS - 1:]:
        shutil.rmtree(d, ignore_errors=True)


def task_inputs(task: str, opts: BuildOptions, mirror: str) -> dict[str, object]:
    """Everything whose change must rebuild `task` (secrets only as slow digests)."""
    tree = scripts.tree_root()
    if task == IMAGE_TASK:
        return {
            "tree": inputs.tree_digest(tree / "mkosi"),
            "cmdline": opts.cmdline,
            "mirror": mirror,
            "root_password": inputs.secret_digest(opts.root_password),
            "stub": inputs.file_digest(image.EFI_STUB) if image.EFI_STUB.exists() else "missing",
            "tools": image.tool_versions(),
        }
    if task == IPXE_TASK:
        src = opts.ipxe_source
        return {
            "script": scripts.embedded_chain_script(opts.port),
            "autoexec_script": scripts.chain_script(opts.port),
            "config": inputs.tree_digest(tree / "ipxe" / "local"),
            "ipxe_source": _source_identity(src),
            "ipxe_source_path": str(src) if src else None,
            "carbide_root": str(opts.carbide_root) if opts.carbide_root else None,
            "download": opts.download,
            "targets": sorted(ipxe.TARGETS.values()),
            "version": __version__,
            "mirror": mirror,
        }
    return {}


def _source_identity(src: Path | None) -> str | None:
    """What the given source is, by content (a bad path: its error, which the build reports)."""
    if src is None:
        return None
    try:
        if src.is_file():
            return "tarball-" + inputs.file_digest(src)
        if (src / "src").is_dir():
            return "tree-" + ipxe_source.source_digest(src)
    except OSError as exc:
        return f"unreadable: {exc}"
    return "invalid"


class Builder:
    def __init__(self, workdir: Path, cache: Path, opts: BuildOptions, runner: Runner) -> None:
        self.workdir = workdir
        self.cache = cache
        self.opts = opts
        self.runner = runner
        self.dest = paths.artifacts_dir(workdir, ARCH)
        self.mirror = (opts.mirror or ipxe.system_mirror()).rstrip("/")
        self.facts: dict[str, object] = {}
        self.ipxe_facts: dict[str, object] = {}  # this run's iPXE build: path, compiled objects, seconds
        self.lock_wait_s = 0.0

    # -- reuse ------------------------------------------------------------------------
    def _stamp_path(self, task: str) -> Path:
        return self.dest / STAMP.format(task=task)

    def _cached_names(self, outdir: Path) -> list[str] | None:
        stamp = outdir / "stamp.json"
        if not stamp.exists():
            return None
        data = json.loads(stamp.read_text())
        names = data.get("artifacts", [])
        self.facts.update(data.get("facts") or {})
        return names if names and all((outdir / n).is_file() for n in names) else None

    def _installed_matches(self, task: str, key: str, names: list[str], outdir: Path) -> bool:
        stamp = self._stamp_path(task)
        if not stamp.exists():
            return False
        try:
            data = json.loads(stamp.read_text())
        except ValueError:
            return False
        if data.get("key") != key:
            return False
        return all((self.dest / n).is_file() and
                   (self.dest / n).stat().st_size == (outdir / n).stat().st_size for n in names)

    # -- building ---------------------------------------------------------------------
    def _preflight(self, task: str) -> None:
        if task == IMAGE_TASK:
            missing = image.missing_tools()
            if missing:
                raise EnvironmentProblem(f"missing build tools: {', '.join(missing)}",
                                         "run step 1 (01_install_build_tools) with install_missing=True, "
                                         "or: apt-get install mkosi debootstrap binutils zstd cpio systemd-boot-efi openssl")
            shell.elevation_prefix()  # raises ElevationUnavailable when neither root nor sudo/doas
            check_mirror(self.mirror, image.RELEASE)
        elif task == IPXE_TASK:
            missing = [t for t in ("apt-get", "dpkg-deb") if shutil.which(t) is None]
            if missing:
                raise EnvironmentProblem(f"missing tools: {', '.join(missing)}", "this builder needs a Debian host")
        for where in (self.cache, self.workdir):
            free = _free_bytes(where)
            if free < MIN_FREE_BYTES:
                raise EnvironmentProblem(f"only {free / 1024**3:.1f} GB free under {where}",
                                         f"free at least {MIN_FREE_BYTES / 1024**3:.0f} GB there and rebuild")

    def _build_image(self, staging: Path, out: Path) -> None:
        # mkosi bind-mounts over the host's /etc/apt: with a private cache dir (tests, benchmarks)
        # also take the user's global lock, so no two mkosi runs ever overlap on this host.
        global_cache = paths.cache_dir()
        host_lock = (build_lock(global_cache, self.runner.say)
                     if self.cache.resolve() != global_cache.resolve() else contextlib.nullcontext())
        with host_lock:
            self.facts.update(image.build_image(
                self.runner, scripts.tree_root() / "mkosi", staging, self.cache / "mkosi-packages", out,
                self.opts.root_password, self.mirror, self.opts.cmdline))

    def _build_ipxe(self, staging: Path, out: Path) -> None:
        staging.mkdir(parents=True, exist_ok=True)
        download = (lambda: ipxe_source.download_pinned(self.cache)) if self.opts.download else None
        res = ipxe_source.resolve(
            self.opts.ipxe_source, self.opts.carbide_root, self.cache,
            apt_probe=lambda: ipxe.probe_source(self.runner, self.cache, self.mirror), download=download)
        for a in res.attempts:
            quiet = a.used or a.why.startswith(("not tried", "not given", "no carbide checkout"))
            self.runner.say((progress.info if quiet else progress.warn)(f"iPXE source: {a.source}: {a.why}"))
        if res.top is not None:
            missing = ipxe.env_ok_for_source()
            if missing:
                raise EnvironmentProblem(f"building iPXE from source needs {', '.join(missing)}",
                                         "apt-get install build-essential perl liblzma-dev")
            script_text = scripts.embedded_chain_script(self.opts.port)
            build_root = self.cache / "ipxe-build" / inputs.input_key("ipxe-build-tree", {"src": res.key})[:16]
            prov = ipxe.build_from_source(self.runner, res, build_root, script_text, out)
            chain_url = scripts.embedded_chain_url_template(self.opts.port)
            self.ipxe_facts = {"path": "source", "action": "built", "make_ran": True,
                               **{k: prov.details[k] for k in ("compiled_objects", "make_seconds",
                                                               "build_tree_state", "make_steps")}}
        else:
            note = (f"iPXE source unavailable ({res.summary()}); used Debian's prebuilt "
                    f"{ipxe.PREBUILT_SUITE} ipxe")
            self.runner.say(progress.warn(note))
            check_mirror(self.mirror, ipxe.PREBUILT_SUITE)
            deb = ipxe.fetch_prebuilt(self.runner, self.cache, self.mirror, refresh=self.opts.force)
            version = ipxe.deb_version(self.runner, deb)
            script_text = scripts.chain_script(self.opts.port)
            prov = ipxe.unpack_prebuilt(self.runner, deb, staging / "deb", script_text, out, version, note)
            prov.details.update({"embedded_script": False, "autoexec_sha256": ipxe._sha(script_text)})
            chain_url = scripts.chain_url_template(self.opts.port)
            self.ipxe_facts = {"path": "prebuilt", "action": "built", "make_ran": False,
                               "compiled_objects": 0}
        prov.details.update({"chain_url": chain_url, "source_resolution": res.summary(),
                             "resolution": res.to_rows(),
                             "built": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        (out / PROVENANCE_FILE).write_text(prov.to_json())

    def run_task(self, task: str) -> TaskOutcome:
        outcome = TaskOutcome(task)
        t0 = time.monotonic()
        self.runner.say(progress.running_task(task))
        if task not in (IMAGE_TASK, IPXE_TASK):
            outcome.action = "done"
            return outcome
        parts = task_inputs(task, self.opts, self.mirror)
        key = inputs.input_key(task, parts)
        outcome.key = key
        outdir = _cache_outputs(self.cache, task, key)
        names = None if self.opts.force else self._cached_names(outdir)
        if names is not None and self._installed_matches(task, key, names, outdir):
            outcome.action = "up-to-date"
            self.runner.say(progress.info(f"Inputs unchanged (key {key[:12]}), artifacts up to date: "
                                          f"{', '.join(names)}"))
        elif names is not None:
            outcome.action = "reused"
            self.runner.say(progress.info(f"Inputs unchanged (key {key[:12]}), reusing cached outputs "
                                          f"from {outdir}"))
            _install(outdir, names, self.dest)
        else:
            self._preflight(task)
            outcome.action = "built"
            staging = self.cache / "staging" / f"{task}-{os.getpid()}"
            tmp_out = outdir.with_name(f".{key}.partial-{os.getpid()}")
            try:
                _remove_tree(staging, self.runner.say)
                shutil.rmtree(tmp_out, ignore_errors=True)
                staging.mkdir(parents=True)
                if task == IMAGE_TASK:
                    self._build_image(staging, tmp_out)
                else:
                    self._build_ipxe(staging, tmp_out)
                names = sorted(p.name for p in tmp_out.iterdir() if p.is_file())
                (tmp_out / "stamp.json").write_text(json.dumps(
                    {"task": task, "key": key, "artifacts": names,
                     "facts": self.facts if task == IMAGE_TASK else {},
                     "inputs": inputs.describe_parts(parts, ["root_password", "script"])},
                    indent=2, sort_keys=True, default=str))
                shutil.rmtree(outdir, ignore_errors=True)
                os.replace(tmp_out, outdir)
            finally:
                _remove_tree(staging, self.runner.say)
                shutil.rmtree(tmp_out, ignore_errors=True)
            _install(outdir, names, self.dest)
            _prune(self.cache, task, key)
        assert names is not None
        if task == IPXE_TASK and outcome.action != "built":
            self.ipxe_facts = {"action": outcome.action, "make_ran": False, "compiled_objects": 0}
        spec = TASKS[task]
        for stale in set(spec.artifacts + spec.optional_artifacts) - set(names):
            # e.g. autoexec.ipxe from an earlier prebuilt build when iPXE now comes from source
            (self.dest / stale).unlink(missing_ok=True)
        self._stamp_path(task).write_text(json.dumps({"task": task, "key": key, "artifacts": names},
                                                     indent=2, sort_keys=True) + "\n")
        outcome.artifacts = names
        outcome.seconds = time.monotonic() - t0
        return outcome


def _artifact_rows(dest: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    inv = inventory(dest, EXPECTED_ARTIFACTS)
    by_name = {r.name: r for r in inv.rows}
    for exp in EXPECTED_ARTIFACTS:
        row = by_name[exp.name]
        rows.append({"artifact": exp.name, "bytes": row.size, "size": human_size(row.size),
                     "expected": exp.band(), "status": row.status, "task": exp.produced_by})
    return rows


def default_log_path(workdir: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return workdir / "logs" / f"sandbox-build-{stamp}-{os.getpid()}.log"


def build(task: str = ALL_TASK, workdir: str | os.PathLike[str] | None = None, *,
          force: bool = False, root_password: str = DEFAULT_PASSWORD,
          ipxe_source: str | os.PathLike[str] | None = None, port: int = scripts.DEFAULT_PORT,
          on_line: Callable[[str], None] | None = None, log_path: str | os.PathLike[str] | None = None,
          cache: str | os.PathLike[str] | None = None, mirror: str | None = None,
          carbide_root: str | os.PathLike[str] | None = None, download: bool = True) -> StepResult:
    """Build `task` (and its dependencies) into `workdir`; PASS / FAIL / ERROR with cause and fix.

    Ctrl-C (KeyboardInterrupt) stops the running command's process group, removes
    temporary files and is re-raised.
    """
    wd = paths.sandbox_workdir(workdir) if workdir else paths.sandbox_workdir()
    cache_root = Path(cache) if cache else paths.cache_dir()
    log = Path(log_path) if log_path else default_log_path(wd)
    emit = on_line or (lambda _line: None)
    runner = Runner(emit, log)
    opts = BuildOptions(force=force, root_password=root_password,
                        ipxe_source=Path(ipxe_source).expanduser().resolve() if ipxe_source else None,
                        carbide_root=Path(carbide_root).expanduser().resolve() if carbide_root else None,
                        download=download, port=port, mirror=mirror)
    t0 = time.monotonic()
    outcomes: list[TaskOutcome] = []
    try:
        order = plan(task)
    except KeyError as exc:
        return StepResult(STEP, Status.ERROR, f"unknown task {task!r}", cause=str(exc.args[0]),
                          fix=f"use one of: {', '.join(TASKS)}")
    runner.say(progress.info(f"sandbox: task {task} in {wd} (cache {cache_root})"))
    status, summary, cause, fix = Status.PASS, "", None, None
    builder = Builder(wd, cache_root, opts, runner)
    try:
        t_lock = time.monotonic()
        with build_lock(cache_root, runner.say):
            builder.lock_wait_s = time.monotonic() - t_lock
            # Staging dirs of builds that were killed hard (we hold the lock: none is running).
            _remove_tree(cache_root / "staging", runner.say)
            for name in order:
                outcomes.append(builder.run_task(name))
    except KeyboardInterrupt:
        runner.say(progress.error("interrupted (Ctrl-C): the running command was stopped; "
                                  "no partial artifact was installed"))
        runner.say(progress.build_failed())
        raise
    except SandboxProblem as exc:
        status = Status.ERROR if isinstance(exc, EnvironmentProblem) else Status.FAIL
        cause, fix = exc.cause, exc.fix
    except shell.ElevationUnavailable as exc:
        status, cause, fix = Status.ERROR, exc.cause, exc.fix or "run as root, or allow passwordless sudo"
    except shell.ShellError as exc:
        status, cause, fix = Status.ERROR, str(exc), "run as root or configure sudo"
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            status, cause = Status.ERROR, f"the disk is full: {exc}"
            fix = "free space in the work and cache directories and rebuild"
        else:
            status, cause, fix = Status.FAIL, f"{type(exc).__name__}: {exc}", f"see {log}"
    elapsed = time.monotonic() - t0
    done = {o.name for o in outcomes if o.action != "pending"}
    first = True
    for name in order:
        if name not in done:
            outcomes.append(TaskOutcome(name, action="failed" if first else "not run"))
            first = False
    if status is Status.PASS:
        runner.say(progress.build_done(elapsed))
        built = [o.name for o in outcomes if o.action == "built"]
        summary = (f"{task}: built {', '.join(built)}" if built else f"{task}: inputs unchanged, reused cached outputs")
        summary += f" in {elapsed:.1f} s"
    else:
        runner.say(progress.error(cause or "build failed"))
        runner.say(progress.build_failed())
        summary = f"{task} failed after {elapsed:.1f} s"
    return _result(task, status, summary, cause, fix, builder, outcomes, elapsed, log)


def _result(task: str, status: Status, summary: str, cause: str | None, fix: str | None,
            builder: Builder, outcomes: list[TaskOutcome], elapsed: float, log: Path) -> StepResult:
    import pandas as pd

    prov_path = builder.dest / PROVENANCE_FILE
    try:
        provenance = json.loads(prov_path.read_text()) if prov_path.is_file() else None
    except ValueError:
        provenance = {"error": f"{prov_path} is not valid JSON"}
    rows = _artifact_rows(builder.dest)
    tasks = [{"task": o.name, "action": o.action, "seconds": round(o.seconds, 1),
              "input key": o.key[:12], "artifacts": ", ".join(o.artifacts)} for o in outcomes]
    details = {"task": task, "workdir": str(builder.workdir), "artifacts_dir": str(builder.dest),
               "cache": str(builder.cache), "seconds": round(elapsed, 2),
               "lock_wait_s": round(builder.lock_wait_s, 2), "exit_code": status.exit_code,
               "tasks": tasks, "artifacts": rows, "ipxe_provenance": provenance,
               "image": builder.facts, "ipxe_build": builder.ipxe_facts, "mirror": builder.mirror}
    return StepResult(STEP, status, summary, cause=cause, fix=fix, details=details,
                      tables={"tasks": pd.DataFrame(tasks), "artifacts": pd.DataFrame(rows)},
                      logs={"sandbox build": str(log)})
