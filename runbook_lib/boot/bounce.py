"""Step 3's first instruction in carbide's docs: "bounce your docker-compose or KIND setup".

:func:`detect` finds the local carbide install that runs carbide-pxe:

- **docker compose**: running containers labelled ``com.docker.compose.service`` whose service
  name contains ``carbide-pxe`` (``docker ps`` then ``docker inspect``: project, working
  directory, compose files, image, mounts, addresses). carbide's own ``docker-compose.yml``
  builds carbide-pxe from the tree (``build: pxe``) and bind-mounts the whole checkout
  (``.:/app/code``), and carbide-pxe serves ``/public`` from its static directory at request
  time, so a restart is what it needs; a service whose image was built by compose and that
  mounts no directory holding the local build has the artifacts baked in: rebuild it.
- **KIND** (or another kubectl context): deployments whose name contains ``carbide-pxe``
  (``kubectl get deployments -A -o json``). carbide's localdev image copies ``pxe/static`` into
  the image (``/forge-boot-artifacts/blobs``): without a hostPath volume the image must be
  rebuilt and loaded (``kind load docker-image``) before the rollout restart.

:func:`bounce` shows the exact commands and, when asked, runs them through :mod:`shell` with a
timeout, returning a PASS/FAIL/ERROR part with the tail of their output. The parsing functions
(:func:`parse_docker_ps`, :func:`compose_targets`, :func:`kube_targets`) are pure.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import shell
from ..result import Status, StepResult

__all__ = ["Target", "Detection", "detect", "bounce", "parse_docker_ps", "compose_targets",
           "kube_targets", "compose_program", "SERVICE", "DEFAULT_PORT"]

SERVICE = "carbide-pxe"
DEFAULT_PORT = 8080  # carbide-pxe's PXE_BIND_PORT default (crates/pxe/src/config.rs)
PORT_ENV = ("PXE_BIND_PORT", "ROCKET_PORT", "ROCKET_port")  # newer, older carbide-pxe
LABEL = "com.docker.compose"
QUERY_TIMEOUT_S = 20.0
BOUNCE_TIMEOUT_S = 300.0
ROLLOUT_TIMEOUT = "180s"

Runner = Callable[[Sequence[str]], shell.RunResult]


@dataclass
class Target:
    """One running carbide-pxe and how to bounce it."""

    kind: str  # "compose" | "kubernetes"
    name: str  # container name | deployment name
    commands: list[list[str]] = field(default_factory=list)  # run in order
    cwd: str | None = None  # compose: the project's working directory
    url: str | None = None  # where it serves, when known
    mounted: bool | None = None  # does it serve the local build from a mount (None: unknown)
    rebuild: list[list[str]] = field(default_factory=list)  # when the artifacts are baked in
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def command_text(self) -> str:
        cmds = self.rebuild or self.commands
        text = " && ".join(shell.quote(c) for c in cmds)
        return f"cd {shell.quote([self.cwd])} && {text}" if self.cwd and self.kind == "compose" else text

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "command": self.command_text(),
                "url": self.url, "mounted": self.mounted, "notes": list(self.notes),
                "facts": dict(self.facts)}


@dataclass
class Detection:
    targets: list[Target] = field(default_factory=list)
    looked_for: list[str] = field(default_factory=list)  # what was checked, and what it said

    @property
    def target(self) -> Target | None:
        return self.targets[0] if self.targets else None

    def describe(self) -> str:
        if self.target is None:
            return "no running carbide-pxe found (" + "; ".join(self.looked_for) + ")"
        t = self.target
        where = f" at {t.url}" if t.url else ""
        more = f" (and {len(self.targets) - 1} more)" if len(self.targets) > 1 else ""
        return f"{t.kind} {t.name}{where}{more}"

    def table(self) -> Any:
        import pandas as pd

        rows = [{"kind": t.kind, "name": t.name, "url": t.url or "", "serves the tree": t.mounted,
                 "bounce": t.command_text(), "notes": "; ".join(t.notes)} for t in self.targets]
        return pd.DataFrame(rows, columns=["kind", "name", "url", "serves the tree", "bounce", "notes"])


# ---- docker compose -------------------------------------------------------------------------

def parse_docker_ps(text: str) -> list[dict[str, Any]]:
    """``docker ps --format '{{json .}}'``: one JSON object per line (blank lines skipped)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def compose_program(runner: Runner | None = None) -> list[str] | None:
    """``docker compose`` when the v2 plugin answers, else ``docker-compose``, else None."""
    run = runner or _capture
    if shutil.which("docker") is not None:
        rr = run(["docker", "compose", "version"])
        if rr.ok:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    return None


def _port(cfg: dict[str, Any]) -> int:
    env = dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)
    for key in PORT_ENV:
        val = env.get(key, "").strip().strip('"')
        if val.isdigit():
            return int(val)
    exposed = [p.split("/")[0] for p in (cfg.get("ExposedPorts") or {})]
    return int(exposed[0]) if len(exposed) == 1 and exposed[0].isdigit() else DEFAULT_PORT


def _address(info: dict[str, Any]) -> str | None:
    nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
    # carbide's compose network is "carbide" (the bridge carbide0): prefer it, then any address
    ordered = sorted(nets.items(), key=lambda kv: (not kv[0].endswith("carbide"), kv[0]))
    for _name, net in ordered:
        if (net or {}).get("IPAddress"):
            return str(net["IPAddress"])
    return None


def compose_targets(inspected: list[dict[str, Any]], local_dir: Path | None = None,
                    program: list[str] | None = None) -> list[Target]:
    """Targets from ``docker inspect`` of the compose containers (pure).

    `local_dir` (the local build) decides whether a container serves it through a bind mount;
    `program` is the compose command (``docker compose`` or ``docker-compose``).
    """
    prog = program or ["docker", "compose"]
    out = []
    for info in inspected:
        cfg = info.get("Config") or {}
        labels = cfg.get("Labels") or {}
        service = labels.get(f"{LABEL}.service", "")
        if SERVICE not in service:
            continue
        state = info.get("State") or {}
        if state and not state.get("Running", False):
            continue
        project = labels.get(f"{LABEL}.project", "")
        wd = labels.get(f"{LABEL}.project.working_dir") or None
        files = [f for f in labels.get(f"{LABEL}.project.config_files", "").split(",") if f]
        base = [*prog, "-p", project]
        if wd:
            base += ["--project-directory", wd]
        for f in files:
            base += ["-f", f if Path(f).is_absolute() or not wd else str(Path(wd) / f)]
        name = str(info.get("Name", "")).lstrip("/") or str(info.get("Id", ""))[:12]
        image = str(cfg.get("Image", ""))
        built = image in (f"{project}_{service}", f"{project}-{service}") or bool(labels.get(f"{LABEL}.image"))
        binds = [m for m in info.get("Mounts") or [] if m.get("Type") == "bind"]
        mounted: bool | None = None
        covering = []
        if local_dir is not None:
            ld = Path(local_dir).resolve()
            covering = [m for m in binds if _within(ld, Path(str(m.get("Source", ""))))]
            mounted = bool(covering)
        t = Target("compose", name, commands=[[*base, "restart", service]], cwd=wd, mounted=mounted,
                   facts={"project": project, "service": service, "container": str(info.get("Id", ""))[:12],
                          "image": image, "built_by_compose": built, "working_dir": wd or "",
                          "config_files": files,
                          "binds": [f"{m.get('Source')}:{m.get('Destination')}" for m in binds]})
        addr = _address(info)
        port = _port(cfg)
        if addr:
            t.url = f"http://{addr}:{port}"
        if covering:
            m = covering[0]
            t.notes.append(f"serves the tree through the bind mount {m.get('Source')} -> {m.get('Destination')}: "
                           "a restart re-reads it")
        elif mounted is False and built:
            t.rebuild = [[*base, "up", "-d", "--build", service]]
            t.notes.append(f"the image {image} is built by compose and no bind mount holds {local_dir}: the "
                           "artifacts are baked into the image, so rebuild it (a restart serves the old ones)")
        elif mounted is False:
            t.notes.append(f"no bind mount holds {local_dir} and the image {image} is not built from the tree: "
                           "it may serve other artifacts than the local build")
        out.append(t)
    return out


def _within(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent.resolve())
        return True
    except ValueError:
        return False


# ---- KIND / kubectl --------------------------------------------------------------------------

def kube_targets(deployments_json: str | dict[str, Any], context: str = "",
                 kind_clusters: Sequence[str] = ()) -> list[Target]:
    """Targets from ``kubectl get deployments -A -o json`` (a ``List`` of ``Deployment``s; pure)."""
    data = json.loads(deployments_json) if isinstance(deployments_json, str) else deployments_json
    items = data.get("items", []) if data.get("kind", "").endswith("List") else [data]
    cluster = context[len("kind-"):] if context.startswith("kind-") else ""
    if not cluster and len(kind_clusters) == 1:
        cluster = kind_clusters[0]
    out = []
    for d in items:
        if d.get("kind", "Deployment") != "Deployment":
            continue
        meta = d.get("metadata") or {}
        name, ns = str(meta.get("name", "")), str(meta.get("namespace", "default"))
        if SERVICE not in name:
            continue
        pod = ((d.get("spec") or {}).get("template") or {}).get("spec") or {}
        images = [str(c.get("image", "")) for c in pod.get("containers") or []]
        host_paths = [str((v.get("hostPath") or {}).get("path", "")) for v in pod.get("volumes") or []
                      if v.get("hostPath")]
        status = d.get("status") or {}
        t = Target("kubernetes", f"{ns}/{name}",
                   commands=[["kubectl", "-n", ns, "rollout", "restart", f"deployment/{name}"],
                             ["kubectl", "-n", ns, "rollout", "status", f"deployment/{name}",
                              f"--timeout={ROLLOUT_TIMEOUT}"]],
                   mounted=bool(host_paths) if pod else None,
                   facts={"namespace": ns, "deployment": name, "images": images, "context": context,
                          "kind_cluster": cluster, "host_paths": host_paths,
                          "ready": f"{status.get('readyReplicas', 0)}/{status.get('replicas', 0)}"})
        if context:
            for c in t.commands:
                c[1:1] = ["--context", context]
        if host_paths:
            t.notes.append(f"serves through hostPath volume(s) {', '.join(host_paths)}: a rollout restart re-reads them")
        else:
            load = (f"kind load docker-image {images[0]} --name {cluster}" if cluster and images
                    else "load the rebuilt image into the cluster")
            t.notes.append("no hostPath volume: the artifacts are in the image (carbide's localdev image copies "
                           f"pxe/static into it), so rebuild the image and `{load}` before the rollout restart")
            if cluster and images:
                t.facts["load_command"] = ["kind", "load", "docker-image", images[0], "--name", cluster]
        t.notes.append("the VM reaches it through its Service (kubectl -n "
                       f"{ns} get svc): set pxe_url to that address")
        out.append(t)
    return out


# ---- detection --------------------------------------------------------------------------------

def _capture(argv: Sequence[str]) -> shell.RunResult:
    return shell.run(list(argv), timeout=QUERY_TIMEOUT_S, tail_lines=100000)


def _first_line(rr: shell.RunResult) -> str:
    if rr.timed_out:
        return f"timed out after {QUERY_TIMEOUT_S:.0f}s"
    return next((ln.strip() for ln in rr.tail if ln.strip()), f"exit code {rr.returncode}")[:200]


def _detect_compose(local_dir: Path | None, run: Runner, looked: list[str]) -> list[Target]:
    if shutil.which("docker") is None:
        looked.append("docker compose: no docker command")
        return []
    rr = run(["docker", "ps", "--filter", f"label={LABEL}.service", "--format", "{{json .}}"])
    if not rr.ok:
        looked.append(f"docker compose: `docker ps` failed: {_first_line(rr)}")
        return []
    ids = [str(r.get("ID", "")) for r in parse_docker_ps("\n".join(rr.tail))
           if SERVICE in _labels(str(r.get("Labels", ""))).get(f"{LABEL}.service", "")]
    if not ids:
        looked.append(f"docker compose: no running container of a service named *{SERVICE}*")
        return []
    rr = run(["docker", "inspect", *ids])
    if not rr.ok:
        looked.append(f"docker compose: `docker inspect` failed: {_first_line(rr)}")
        return []
    targets = compose_targets(json.loads("\n".join(rr.tail)), local_dir, compose_program(run))
    looked.append(f"docker compose: {len(targets)} {SERVICE} container(s)")
    return targets


def _labels(text: str) -> dict[str, str]:
    """docker ps's Labels column ("k=v,k=v"); only used to pick candidates (inspect has the truth)."""
    out = {}
    for part in text.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def _detect_kube(run: Runner, looked: list[str]) -> list[Target]:
    clusters: list[str] = []
    if shutil.which("kind") is not None:
        rr = run(["kind", "get", "clusters"])
        clusters = [ln.strip() for ln in rr.tail if ln.strip() and " " not in ln.strip()] if rr.ok else []
        looked.append(f"kind: clusters {', '.join(clusters)}" if clusters else "kind: no cluster")
    else:
        looked.append("kind: no kind command")
    if shutil.which("kubectl") is None:
        looked.append("kubernetes: no kubectl command")
        return []
    ctx = run(["kubectl", "config", "current-context"])
    context = _first_line(ctx) if ctx.ok else ""
    if not context and not clusters:
        looked.append("kubernetes: kubectl has no current context")
        return []
    argv = ["kubectl", *(["--context", context] if context else []), "get", "deployments", "-A", "-o", "json",
            "--request-timeout=10s"]
    rr = run(argv)
    if not rr.ok:
        looked.append(f"kubernetes ({context or 'no context'}): `kubectl get deployments` failed: {_first_line(rr)}")
        return []
    targets = kube_targets("\n".join(rr.tail), context, clusters)
    looked.append(f"kubernetes ({context}): {len(targets)} {SERVICE} deployment(s)")
    return targets


def detect(local_dir: str | Path | None = None, runner: Runner | None = None,
           kube: bool = True) -> Detection:
    """Which local carbide install runs carbide-pxe (docker compose first, then KIND/kubectl)."""
    run = runner or _capture
    det = Detection()
    ld = Path(local_dir) if local_dir is not None else None
    det.targets += _detect_compose(ld, run, det.looked_for)
    if kube:
        det.targets += _detect_kube(run, det.looked_for)
    det.targets.sort(key=lambda t: t.mounted is not True)  # one serving the local build first (stable)
    return det


# ---- bounce -----------------------------------------------------------------------------------

def bounce(target: Target | None, run: bool = False, timeout: float = BOUNCE_TIMEOUT_S,
           step: str = "bounce", log_path: Path | None = None) -> StepResult:
    """Show (and with `run`, execute) the commands that make `target` serve the new build."""
    if target is None:
        return StepResult(step, Status.ERROR, "nothing to bounce: no running carbide-pxe was found",
                          cause="neither a docker compose service nor a kubernetes deployment named carbide-pxe runs",
                          fix="start the carbide dev environment (docker-compose up / KIND) or set pxe_url")
    cmds = target.rebuild or target.commands
    details: dict[str, Any] = {"target": target.to_dict(), "command": target.command_text()}
    if not run:
        return StepResult(step, Status.PASS, f"not run (bounce = false); the command: {target.command_text()}",
                          details=details)
    tail: list[str] = []
    for argv in cmds:
        try:
            rr = shell.run(argv, timeout=timeout, cwd=target.cwd if target.kind == "compose" else None,
                           log_path=log_path, tail_lines=200)
        except shell.CommandNotFound as exc:
            return StepResult(step, Status.ERROR, "the bounce command could not start", cause=str(exc),
                              fix=f"install {argv[0]} or run the command by hand: {target.command_text()}",
                              details=details)
        tail = rr.tail[-15:]
        details.setdefault("runs", []).append({**rr.to_dict(), "tail": tail})
        if not rr.ok:
            why = f"timed out after {timeout:.0f}s" if rr.timed_out else f"exit code {rr.returncode}"
            last = next((ln for ln in reversed(tail) if ln.strip()), "")
            return StepResult(step, Status.ERROR, f"bounce failed: {shell.quote(argv)} ({why})",
                              cause=f"{shell.quote(argv)}: {why}" + (f": {last}" if last else ""),
                              fix="run it by hand and read its output; then re-run this step",
                              details=details, logs={"bounce": str(log_path)} if log_path else {})
    return StepResult(step, Status.PASS, f"bounced {target.kind} {target.name}: {target.command_text()}"
                      + (f" (last output: {tail[-1].strip()[:120]})" if tail and tail[-1].strip() else ""),
                      details=details, logs={"bounce": str(log_path)} if log_path else {})
