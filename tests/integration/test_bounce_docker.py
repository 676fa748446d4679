"""The docs' "bounce your docker-compose setup", for real: a private docker daemon, a compose
project with a service named carbide-pxe serving the local build through a bind mount (busybox
httpd in an image imported from a tarball: nothing is pulled), then detect -> served check
(stale) -> bounce -> served check (same).

Staleness is the real mechanism: the build replaces the artifacts directory (a new directory
renamed into place), and a container whose bind mount pinned the old directory keeps serving
the old files until it is restarted.

Needs root, Debian's docker.io (dockerd, docker) and docker-compose. The test starts its own
dockerd on a private socket and data root (DOCKER_HOST points the code at it), and removes
the project's containers, network and image and stops that daemon by pid, even on failure.
"""

from __future__ import annotations

import io
import os
import secrets
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from runbook_lib import shell
from runbook_lib.boot import bounce as bnc
from runbook_lib.boot.served import compare_served
from runbook_lib.boot.step import served_part
from runbook_lib.params import STEP3
from runbook_lib.result import Status

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.needs_tool("dockerd", "a docker daemon: apt-get install docker.io"),
              pytest.mark.needs_tool("docker", "the docker CLI: apt-get install docker.io"),
              pytest.mark.needs_tool("docker-compose", "compose: apt-get install docker-compose"),
              pytest.mark.needs_tool("busybox", "the image's web server: apt-get install busybox"),
              pytest.mark.usefixtures("no_leftover_processes", "needs_root")]

SERVICE_CMD = ["/bin/busybox", "sh", "-c",
               "trap 'exit 0' TERM; /bin/busybox httpd -f -p 8080 -h /srv & wait"]


def _docker(*argv: str, timeout: float = 60, cwd: Path | None = None) -> shell.RunResult:
    return shell.run(["docker", *argv], timeout=timeout, cwd=cwd, tail_lines=2000)


@pytest.fixture(scope="module")
def dockerd() -> Iterator[str]:
    """A docker daemon of this module's own: (DOCKER_HOST value); stopped by pid at the end."""
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    root = Path(tempfile.mkdtemp(prefix="rbd-", dir="/tmp"))  # short: containerd's socket lives below
    sock = root / "docker.sock"
    host = f"unix://{sock}"
    proc = shell.spawn(["dockerd", "--host", host, "--data-root", str(root / "data"),
                        "--exec-root", str(root / "x"), "--pidfile", str(root / "dockerd.pid"),
                        "--bridge=none", "--iptables=false", "--ip-masq=false"],
                       log_path=root / "dockerd.log")
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = host
    try:
        deadline = time.monotonic() + 60
        while True:
            rr = _docker("info", "--format", "{{.ServerVersion}}", timeout=15)
            if rr.ok:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "dockerd.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"dockerd did not come up (exit {proc.poll()}):\n{log}")
            time.sleep(0.3)
        yield host
    finally:
        if old is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = old
        proc.stop(grace=20.0)
        _unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


def _unmount_below(root: Path) -> None:
    """Anything dockerd left mounted under its own root (after it stopped): unmount it."""
    mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()
              if ln.split()[1].startswith(str(root))]
    for m in sorted(mounts, key=len, reverse=True):
        shell.run(["umount", "-l", m], timeout=15)


def _busybox_tar() -> bytes:
    """A root filesystem holding Debian's busybox and the libraries it links (from ldd)."""
    busybox = shutil.which("busybox")
    assert busybox
    files = {"/bin/busybox": busybox}
    ldd = shell.run(["ldd", busybox], timeout=15)
    for line in ldd.tail:
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0] if parts and parts[0].startswith("/") else ""
        if path.startswith("/"):
            files[path] = path
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for dest, src in files.items():
            tar.add(os.path.realpath(src), arcname=dest.lstrip("/"))
    return buf.getvalue()


@pytest.fixture(scope="module")
def image(dockerd: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tar = tmp_path_factory.mktemp("img") / "rootfs.tar"
    tar.write_bytes(_busybox_tar())
    tag = f"runbook-busybox-test:{secrets.token_hex(3)}"
    rr = _docker("import", str(tar), tag)
    assert rr.ok, rr.tail_text()
    image_id = rr.tail[-1].strip()
    try:
        yield tag
    finally:
        _docker("rmi", "-f", image_id)


def _artifacts(d: Path, tag: bytes) -> None:
    d.mkdir(parents=True)
    for name in ("ipxe.efi", "carbide.efi", "carbide.root"):
        (d / name).write_bytes(name.encode() + tag + os.urandom(50_000))
    (d / "carbide.manifest").write_text('{"packages": []}\n')


def _rebuild_in_place(art: Path, changed: str) -> None:
    """As a build that writes a new output directory and moves it into place (the previous one
    kept as a backup; had it been deleted, the container would serve nothing: all missing)."""
    new = art.with_name(art.name + ".new")
    shutil.copytree(art, new)
    (new / changed).write_bytes(b"rebuilt " + os.urandom(60_000))
    art.rename(art.with_name(art.name + ".previous"))
    new.rename(art)


@pytest.fixture
def project(image: str, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A compose project laid out like a carbide checkout: (name, working dir, local build dir)."""
    name = f"rbt{secrets.token_hex(3)}"
    wd = tmp_path / "carbide"
    art = wd / "pxe" / "static" / "blobs" / "internal" / "x86_64"
    _artifacts(art, b"v1")
    cmd = ", ".join(f'"{a}"' for a in SERVICE_CMD)
    (wd / "docker-compose.yml").write_text(f"""version: "3.8"
services:
  carbide-pxe:
    image: {image}
    command: [{cmd}]
    environment:
      - PXE_BIND_PORT=8080
    volumes:
      - ./pxe/static/blobs/internal/x86_64:/srv/public/blobs/internal/x86_64:ro
""")
    up = shell.run(["docker-compose", "-p", name, "up", "-d"], timeout=120, cwd=wd)
    try:
        assert up.ok, up.tail_text()
        yield name, wd, art
    finally:
        down = shell.run(["docker-compose", "-p", name, "down", "--volumes", "--timeout", "5"],
                         timeout=120, cwd=wd)
        left = _docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}")
        ids = [x for x in left.tail if x.strip()]
        if ids:
            _docker("rm", "-f", *ids)
        nets = _docker("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={name}")
        for n in [x for x in nets.tail if x.strip()]:
            _docker("network", "rm", n)
        assert down.ok and not ids, down.tail_text()


def test_detect_stale_bounce_same(project: tuple[str, Path, Path], tmp_path: Path) -> None:
    name, wd, art = project
    t0 = time.monotonic()
    det = bnc.detect(art)
    t_detect = time.monotonic() - t0
    target = next(t for t in det.targets if t.kind == "compose" and t.facts["project"] == name)
    assert target.mounted is True and not target.rebuild
    assert target.commands == [[*bnc.compose_program(), "-p", name, "--project-directory", str(wd),
                                "-f", str(wd / "docker-compose.yml"), "restart", "carbide-pxe"]]
    assert target.url and target.url.endswith(":8080")

    first = compare_served(target.url, "x86_64", art, wait_s=20, timeout=5)
    assert first.status is Status.PASS, first

    _rebuild_in_place(art, "carbide.efi")
    stale = compare_served(target.url, "x86_64", art, timeout=5, fix=target.command_text())
    assert stale.status is Status.FAIL and stale.stale == ["carbide.efi"], stale
    assert stale.fix == target.command_text()

    # the step's own flow: bridge mode, bounce = false shows the command; = true runs it
    params = STEP3.validate({"network": "bridge", "artifacts_dir": str(art), "pxe_url": target.url})
    part = served_part(params, art, None, None, tmp_path)
    assert part.status is Status.FAIL and "stale: carbide.efi" in part.summary
    assert part.fix == f"{target.command_text()} (or re-run with bounce = true)"
    assert "carbide-pxe found" in part.tables

    t1 = time.monotonic()
    bounced = served_part({**params, "bounce": True}, art, None, None, tmp_path)
    t_bounce = time.monotonic() - t1
    assert bounced.status is Status.PASS, bounced
    assert "(after bounced compose" in bounced.summary and "restart carbide-pxe" in bounced.summary
    assert bounced.details["bounce"]["status"] == "PASS"
    assert (tmp_path / "boot" / "bounce.log").read_text().count("restart carbide-pxe") >= 1
    print(f"\ndetect {t_detect:.2f}s, bounce + served check {t_bounce:.2f}s")

    # and without pxe_url the detected address is used
    again = served_part(STEP3.validate({"network": "bridge", "artifacts_dir": str(art)}), art, None, None)
    assert again.status is Status.PASS and target.url in again.details["served"]["base_url"]


def test_baked_image_is_told_to_rebuild(image: str, tmp_path: Path) -> None:
    """A carbide-pxe image built by compose with the artifacts copied in: rebuild, not restart."""
    name = f"rbt{secrets.token_hex(3)}"
    wd = tmp_path / "baked"
    art = wd / "static"
    _artifacts(art, b"v1")
    cmd = ", ".join(f'"{a}"' for a in SERVICE_CMD)
    (wd / "Dockerfile").write_text(f"FROM {image}\nCOPY static /srv/public/blobs/internal/x86_64\n")
    (wd / "docker-compose.yml").write_text(f"""version: "3.8"
services:
  carbide-pxe:
    build: .
    command: [{cmd}]
""")
    up = shell.run(["docker-compose", "-p", name, "up", "-d", "--build"], timeout=180, cwd=wd)
    try:
        assert up.ok, up.tail_text()
        det = bnc.detect(art, kube=False)
        (target,) = [t for t in det.targets if t.facts["project"] == name]
        assert target.mounted is False and target.facts["built_by_compose"] is True
        assert target.rebuild and target.rebuild[0][-4:] == ["up", "-d", "--build", "carbide-pxe"]
        (art / "ipxe.efi").write_bytes(b"rebuilt")
        stale = compare_served(str(target.url), "x86_64", art, wait_s=20, timeout=5)
        assert stale.stale == ["ipxe.efi"]
        res = bnc.bounce(target, run=True, timeout=180)
        assert res.status is Status.PASS, res
        same = compare_served(_url_of(name), "x86_64", art, wait_s=20, timeout=5)
        assert same.status is Status.PASS, same
    finally:
        shell.run(["docker-compose", "-p", name, "down", "--rmi", "local", "--timeout", "5"], timeout=120, cwd=wd)
        left = _docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}")
        assert not [x for x in left.tail if x.strip()]


def _url_of(project: str) -> str:
    """The recreated container may have a new address: detect it again."""
    det = bnc.detect(None, kube=False)
    return str(next(t.url for t in det.targets if t.facts["project"] == project))
