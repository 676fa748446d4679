"""A real sandbox build (mkosi 14 + objcopy + iPXE), checked structurally, and a short
real UEFI QEMU run proving the iPXE chain reaches carbide-pxe's boot URL.

The build is the session's one forced build (tests/e2e/conftest.py, through step 2), ~1-2.5 min
on 2 cores with a warm mkosi package cache; the QEMU chain check ~30-60 s.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from runbook_lib import paths, shell
from runbook_lib.result import Status
from runbook_lib.sandbox import EXPECTED_ARTIFACTS, build, chain_url_template, progress

pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="mkosi needs root")]

from runbook_lib.sandbox.scripts import DEFAULT_PORT  # noqa: E402
UUID = "5a4d0b0e-0000-4000-8000-00000000e2e0"
from runbook_lib.system_paths import OVMF_CODE, OVMF_VARS  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def built(session_build: dict) -> dict:
    return {"workdir": session_build["workdir"], "port": DEFAULT_PORT, "lines": session_build["lines"],
            "step": session_build["step"], "dir": session_build["dir"], "log": session_build["log"],
            "password": session_build["password"]}


def _run(argv: list[str], timeout: float = 120) -> shell.RunResult:
    rr = shell.run(argv, timeout=timeout, tail_lines=100000)
    assert rr.ok, f"{rr.command}: {rr.tail_text()}"
    return rr


def test_build_passes_with_cargo_make_like_progress(built: dict) -> None:
    r = built["step"].section("run")
    assert r.status is Status.PASS, r
    lines = built["lines"]
    running = [ln for ln in lines if "Running Task:" in ln]
    assert running == [progress.running_task(t) for t in
                       ("create-ephemeral-image", "ipxe-x86_64", "build-boot-artifacts-x86_64")]
    assert any(ln.startswith("[sandbox] INFO - Execute Command: mkosi ") for ln in lines)
    assert not any("reusing cached outputs" in ln for ln in lines)  # forced: really built
    assert any(re.match(r"\[sandbox\] INFO - Build Done in [0-9.]+ seconds\.$", ln) for ln in lines)
    assert built["password"] not in built["log"].read_text()


def test_artifacts_exist_in_their_size_bands(built: dict) -> None:
    d = built["dir"]
    for exp in EXPECTED_ARTIFACTS:
        p = d / exp.name
        if not exp.required and not p.exists():
            continue
        assert p.is_file(), exp.name
        assert exp.min_bytes <= p.stat().st_size <= exp.max_bytes, (exp.name, p.stat().st_size)
    assert not [p.name for p in d.iterdir() if ".tmp-" in p.name or p.name.startswith(".mkosi")]


def test_uki_has_the_four_sections_and_serial_cmdline(built: dict, tmp_path: Path) -> None:
    uki = built["dir"] / "carbide.efi"
    headers = _run(["objdump", "-h", str(uki)]).tail
    sections = {ln.split()[1] for ln in headers if re.match(r"^\s*\d+\s+\.", ln)}
    assert {".linux", ".initrd", ".cmdline", ".osrel"} <= sections
    out = tmp_path / "cmdline"
    _run(["objcopy", "-O", "binary", "--only-section=.cmdline", str(uki), str(out)])
    assert "console=ttyS0,115200" in out.read_text()
    osrel = tmp_path / "osrel"
    _run(["objcopy", "-O", "binary", "--only-section=.osrel", str(uki), str(osrel)])
    assert 'VERSION_CODENAME=bookworm' in osrel.read_text()


def test_root_cpio_holds_init_networkd_getty_and_the_password(built: dict, tmp_path: Path) -> None:
    root = built["dir"] / "carbide.root"
    cpio = tmp_path / "root.cpio"
    _run(["zstd", "-q", "-d", "-f", str(root), "-o", str(cpio)], timeout=300)
    listing = set(_run(["cpio", "-i", "-t", "--quiet", "-F", str(cpio)], timeout=300).tail)
    for needed in ("init", "usr/lib/systemd/systemd", "etc/systemd/network/80-dhcp.network",
                   "etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service", "etc/hostname"):
        assert needed in listing, needed
    assert any(p.startswith("usr/lib/modules/") and p.endswith("virtio_net.ko") for p in listing)
    ex = tmp_path / "x"
    ex.mkdir()
    _run(["cpio", "-i", "-d", "--quiet", "-F", str(cpio), "-D", str(ex), "init", "etc/shadow", "etc/hostname"])
    assert os.readlink(ex / "init") == "/usr/lib/systemd/systemd"
    assert (ex / "etc/hostname").read_text().strip() == "carbide-sandbox"
    root_hash = next(ln.split(":")[1] for ln in (ex / "etc/shadow").read_text().splitlines()
                     if ln.startswith("root:"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    assert crypt.crypt(built["password"], root_hash) == root_hash


def test_manifest_lists_kernel_and_systemd(built: dict) -> None:
    data = json.loads((built["dir"] / "carbide.manifest").read_text())
    names = {p["name"] for p in data["packages"]}
    assert "systemd" in names
    assert any(n.startswith("linux-image-") for n in names)
    assert data["config"]["release"] == "bookworm"


def test_ipxe_chain_script_and_provenance(built: dict) -> None:
    d = built["dir"]
    prov = json.loads((d / "ipxe.provenance.json").read_text())
    from runbook_lib.sandbox.scripts import embedded_chain_url_template
    url = (chain_url_template(built["port"]) if prov["path"] == "prebuilt"
           else embedded_chain_url_template(built["port"]))
    assert prov["chain_url"] == url
    if prov["path"] == "prebuilt":
        assert prov["version"].startswith("1.2") and "trixie" in prov["origin"]
        assert url in (d / "autoexec.ipxe").read_text()
    else:
        assert url.encode() in (d / "ipxe.efi").read_bytes()
    assert (d / "ipxe.efi").read_bytes()[:2] == b"MZ"


def test_unchanged_rebuild_reuses_everything(built: dict) -> None:
    again = build("build-boot-artifacts-x86_64", built["workdir"], root_password=built["password"],
                  port=built["port"])
    assert again.status is Status.PASS
    assert [t["action"] for t in again.details["tasks"]] == ["up-to-date", "up-to-date", "done"]


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).requests.append(self.path)
        body = b"#!ipxe\necho sandbox-e2e: boot script served\nsleep 2\nexit 1\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(not OVMF_CODE.exists() or shutil.which("qemu-system-x86_64") is None,
                    reason="needs qemu-system-x86 and ovmf")
def test_uefi_ipxe_chains_to_the_boot_url(built: dict, tmp_path: Path) -> None:
    from runbook_lib.boot.step import tftp_root

    port = _free_port()
    notes: list[str] = []
    tftp = tftp_root(built["dir"], port, tmp_path, notes)  # autoexec.ipxe rewritten for `port`
    if tftp == built["dir"]:
        port = built["port"]  # iPXE built from source: the chain URL is embedded, keep its port
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Recorder)
    except OSError as exc:
        pytest.skip(f"port {port} (baked into the chain script) was taken meanwhile: {exc}")
    _Recorder.requests = []
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    vars_fd = tmp_path / "OVMF_VARS.fd"
    shutil.copyfile(OVMF_VARS, vars_fd)
    serial = tmp_path / "serial.log"
    argv = ["qemu-system-x86_64", "-nodefaults", "-machine", "q35", "-accel", "tcg", "-m", "512",
            "-uuid", UUID, "-display", "none", "-vga", "none", "-no-reboot",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_fd}",
            "-netdev", f"user,id=n0,tftp={tftp},bootfile=ipxe.efi",
            "-device", "virtio-net-pci,netdev=n0,romfile=", "-boot", "order=n",
            "-serial", f"file:{serial}"]
    proc = shell.spawn(argv, log_path=tmp_path / "qemu.log")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _Recorder.requests and proc.running():
            time.sleep(1)
    finally:
        proc.stop()
        server.shutdown()
        server.server_close()
    assert not proc.running()
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pgid, 0)
    text = serial.read_bytes().decode(errors="replace")
    assert _Recorder.requests, f"no HTTP request; serial tail:\n{text[-3000:]}"
    assert _Recorder.requests[0] == f"/api/v0/pxe/boot?uuid={UUID}&buildarch=x86_64"
    # iPXE's own messages reach the serial log
    assert "carbide-sandbox: DHCP ok" in text
    assert f"chain http://10.0.2.2:{port}/api/v0/pxe/boot?uuid={UUID}&buildarch=x86_64" in text




def _pids_mentioning(text: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            out.append(int(pid))
    return out


def test_terminating_a_real_build_leaves_no_process_mount_or_partial_artifact(tmp_path: Path) -> None:
    """SIGTERM (a driver's timeout; Ctrl-C takes the same path) in the middle of mkosi."""
    wd = tmp_path / "wd"
    seen: list[str] = []
    started = threading.Event()

    def on_line(line: str) -> None:
        seen.append(line)
        if "Execute Command: mkosi " in line:
            started.set()

    repo = Path(__file__).resolve().parents[2]
    proc = shell.spawn([sys.executable, "-m", "runbook_lib.sandbox", "build",
                        "--task", "create-ephemeral-image", "--force", "--workdir", str(wd)],
                       cwd=repo, env={"PYTHONPATH": str(repo)}, on_line=on_line,
                       log_path=tmp_path / "build.out")
    try:
        assert started.wait(timeout=1200), "mkosi never started:\n" + "\n".join(seen[-20:])
        time.sleep(20)  # well inside debootstrap/apt
        staging = f"/staging/create-ephemeral-image-{proc.pid}"
        assert _pids_mentioning(staging), "mkosi is not running"
        proc.popen.send_signal(15)
        rc = proc.wait(timeout=60)
    finally:
        proc.stop()
    assert rc == 2
    assert any("interrupted" in ln for ln in seen)
    time.sleep(1)
    assert not _pids_mentioning(staging), "mkosi or its children survived"
    assert staging not in Path("/proc/self/mountinfo").read_text()
    assert not any(staging in p for p in map(str, paths.cache_dir().glob("staging/*")))
    art = paths.artifacts_dir(wd, "x86_64")
    assert not art.exists() or not [p.name for p in art.iterdir() if p.name.startswith(("carbide", ".carbide"))]
