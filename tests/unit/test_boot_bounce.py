"""Parsing what docker and kubectl print about a local carbide install, and the exact bounce
commands derived from it.

The fixtures in tests/fixtures/carbide_install are real output: ``docker ps --format '{{json .}}'``
and ``docker inspect`` of two compose projects run with Debian's docker.io 20.10 and
docker-compose 1.29 (``compose_carbide.yml``: carbide-pxe on network ``carbide`` with the
checkout bind-mounted at /app/code like carbide's own compose file, next to a carbide-api;
``compose_baked.yml``: a carbide-pxe image built by compose with the artifacts copied in), and
``kubectl create deployment ... --dry-run=client -o json`` items in the ``List`` that
``kubectl get deployments -A -o json`` prints (status and one hostPath volume filled in as a
cluster reports them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib import shell
from runbook_lib.boot import bounce as b
from runbook_lib.result import Status

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "carbide_install"
CARBIDE_WD = "/tmp/h1-docker/carbide"  # where the fixture's compose project ran
LOCAL = Path(CARBIDE_WD) / "pxe/static/blobs/internal/x86_64"


def inspected() -> list[dict]:
    return json.loads((FIX / "docker_inspect.json").read_text())


def test_docker_ps_lines_parse_and_name_compose_services() -> None:
    rows = b.parse_docker_ps("\n" + (FIX / "docker_ps.jsonl").read_text() + "\n\n")
    assert len(rows) == 3
    services = sorted(b._labels(r["Labels"])["com.docker.compose.service"] for r in rows)
    assert services == ["carbide-api", "carbide-pxe", "carbide-pxe"]
    assert {r["Names"] for r in rows} >= {"carbide_carbide-pxe_1", "baked_carbide-pxe_1"}


def test_compose_target_with_the_tree_bind_mounted_restarts() -> None:
    targets = {t.name: t for t in b.compose_targets(inspected(), LOCAL, ["docker-compose"])}
    assert set(targets) == {"carbide_carbide-pxe_1", "baked_carbide-pxe_1"}  # carbide-api is not one
    t = targets["carbide_carbide-pxe_1"]
    assert t.kind == "compose" and t.mounted is True and not t.rebuild
    assert t.url == "http://172.29.0.15:8080"  # its address on network "carbide", PXE_BIND_PORT
    assert t.commands == [["docker-compose", "-p", "carbide", "--project-directory", CARBIDE_WD,
                           "-f", f"{CARBIDE_WD}/docker-compose.yml", "restart", "carbide-pxe"]]
    assert t.command_text() == (f"cd {CARBIDE_WD} && docker-compose -p carbide --project-directory {CARBIDE_WD} "
                                f"-f {CARBIDE_WD}/docker-compose.yml restart carbide-pxe")
    assert t.facts["binds"] == [f"{CARBIDE_WD}:/app/code"] and t.facts["built_by_compose"] is False
    assert "bind mount" in t.notes[0]


def test_compose_target_built_by_compose_without_mount_is_rebuilt() -> None:
    t = {t.name: t for t in b.compose_targets(inspected(), LOCAL, ["docker", "compose"])}["baked_carbide-pxe_1"]
    assert t.mounted is False and t.facts["built_by_compose"] is True and t.facts["image"] == "baked_carbide-pxe"
    assert t.rebuild == [["docker", "compose", "-p", "baked", "--project-directory", "/tmp/h1-docker/baked",
                          "-f", "/tmp/h1-docker/baked/docker-compose.yml", "up", "-d", "--build", "carbide-pxe"]]
    assert "up -d --build carbide-pxe" in t.command_text() and "baked into the image" in t.notes[0]
    assert t.url == "http://172.19.0.2:8080"  # its only exposed port (EXPOSE 8080)


def test_compose_target_unknown_local_dir_and_stopped_containers() -> None:
    data = inspected()
    t = {t.name: t for t in b.compose_targets(data)}["carbide_carbide-pxe_1"]
    assert t.mounted is None and t.commands[0][:2] == ["docker", "compose"]
    for info in data:
        info["State"]["Running"] = False
    assert b.compose_targets(data, LOCAL) == []


def test_port_from_env_then_single_exposed_port_then_default() -> None:
    assert b._port({"Env": ["A=1", "PXE_BIND_PORT=9090"]}) == 9090
    assert b._port({"Env": ['ROCKET_port="1080"']}) == 1080  # carbide's older compose file
    assert b._port({"ExposedPorts": {"8000/tcp": {}}}) == 8000
    assert b._port({"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}) == b.DEFAULT_PORT == 8080


def test_kube_targets_from_kubectl_list() -> None:
    text = (FIX / "kubectl_deployments.json").read_text()
    targets = {t.name: t for t in b.kube_targets(text, "kind-carbide")}
    assert set(targets) == {"forge-system/carbide-pxe", "carbide-dev/carbide-pxe-hostpath"}
    t = targets["forge-system/carbide-pxe"]
    assert t.commands == [
        ["kubectl", "--context", "kind-carbide", "-n", "forge-system", "rollout", "restart", "deployment/carbide-pxe"],
        ["kubectl", "--context", "kind-carbide", "-n", "forge-system", "rollout", "status", "deployment/carbide-pxe",
         "--timeout=180s"]]
    assert t.mounted is False and t.facts["ready"] == "1/1"
    assert t.facts["load_command"] == ["kind", "load", "docker-image", "registry.minikube/carbide-pxe:v0.0.1",
                                       "--name", "carbide"]
    assert "kind load docker-image registry.minikube/carbide-pxe:v0.0.1 --name carbide" in t.notes[0]
    h = targets["carbide-dev/carbide-pxe-hostpath"]
    assert h.mounted is True and "/home/dev/carbide/pxe/static" in h.notes[0] and "load_command" not in h.facts


def test_kube_targets_without_context_use_the_only_kind_cluster() -> None:
    one = json.loads((FIX / "kubectl_deployments.json").read_text())["items"][0]
    (t,) = b.kube_targets(one, "", ["dev"])  # a single object, as `kubectl get deployment NAME -o json`
    assert t.commands[0][:3] == ["kubectl", "-n", "forge-system"] and t.facts["kind_cluster"] == "dev"


class FakeRunner:
    """Replays recorded output of docker/kubectl for the given argv prefixes (what `detect` asks)."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str]]) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    def __call__(self, argv):
        self.asked.append(list(argv))
        for prefix, (rc, out) in self.answers.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return shell.RunResult(list(argv), rc, 0.0, out.splitlines(), None)
        return shell.RunResult(list(argv), 1, 0.0, ["unexpected"], None)


def test_detect_prefers_the_container_serving_the_local_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(b.shutil, "which", lambda name: f"/usr/bin/{name}" if name in ("docker", "docker-compose") else None)
    run = FakeRunner({
        ("docker", "ps"): (0, (FIX / "docker_ps.jsonl").read_text()),
        ("docker", "inspect"): (0, (FIX / "docker_inspect.json").read_text()),
        ("docker", "compose", "version"): (1, "docker: 'compose' is not a docker command."),
    })
    det = b.detect(LOCAL, runner=run)
    assert [t.name for t in det.targets] == ["carbide_carbide-pxe_1", "baked_carbide-pxe_1"]
    assert det.target is not None and det.target.commands[0][0] == "docker-compose"
    inspect_call = next(a for a in run.asked if a[:2] == ["docker", "inspect"])
    assert len(inspect_call) == 4  # the two carbide-pxe containers, not carbide-api
    assert "no kubectl command" in det.looked_for[-1]
    assert "docker compose: 2 carbide-pxe container(s)" in det.looked_for
    df = det.table()
    assert list(df["serves the tree"]) == [True, False]


def test_detect_reports_what_it_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(b.shutil, "which", lambda name: f"/usr/bin/{name}" if name in ("docker", "kubectl") else None)
    run = FakeRunner({
        ("docker", "ps"): (1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                              "Is the docker daemon running?"),
        ("kubectl", "config", "current-context"): (1, "error: current-context is not set"),
    })
    det = b.detect(LOCAL, runner=run)
    assert det.target is None
    assert det.looked_for[0].startswith("docker compose: `docker ps` failed: Cannot connect to the Docker daemon")
    assert "kind: no kind command" in det.looked_for and "kubernetes: kubectl has no current context" in det.looked_for
    assert det.describe().startswith("no running carbide-pxe found (docker compose:")
    res = b.bounce(None, run=True)
    assert res.status is Status.ERROR and "pxe_url" in (res.fix or "")


def test_bounce_shows_without_running_and_runs_real_commands(tmp_path: Path) -> None:
    t = b.Target("compose", "demo", commands=[["sh", "-c", "echo restarting demo"]], cwd=str(tmp_path))
    shown = b.bounce(t, run=False)
    assert shown.status is Status.PASS and "not run" in shown.summary and "echo restarting demo" in shown.summary
    ran = b.bounce(t, run=True, timeout=10, log_path=tmp_path / "bounce.log")
    assert ran.status is Status.PASS and "restarting demo" in ran.summary
    assert "restarting demo" in (tmp_path / "bounce.log").read_text()
    bad = b.Target("compose", "demo", commands=[["sh", "-c", "echo no such service >&2; exit 3"]])
    failed = b.bounce(bad, run=True, timeout=10)
    assert failed.status is Status.ERROR and "exit code 3" in (failed.cause or "")
    assert "no such service" in (failed.cause or "")
    slow = b.bounce(b.Target("kubernetes", "x", commands=[["sleep", "5"]]), run=True, timeout=0.5)
    assert slow.status is Status.ERROR and "timed out" in slow.summary
    missing = b.bounce(b.Target("kubernetes", "x", commands=[["no-such-kubectl-here"]]), run=True)
    assert missing.status is Status.ERROR and "no-such-kubectl-here" in (missing.cause or "")
