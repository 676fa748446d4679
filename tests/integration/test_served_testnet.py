"""What carbide-pxe serves vs the local build, for real on the test network.

The carbide-pxe stand-in listens on the bridge address inside the test network's namespace and
serves directory A (a copy of a small artifact set); the "local build" is directory B. One file
of B changes *after* the stand-in started, and the comparison, fetching from inside the
namespace as the VM does, names exactly that file stale. Then step 3 itself (network =
testnet, check_served = yes) with a stale artifact stops with FAIL before any VM starts.

Needs root, `ip` (iproute2) and dnsmasq (dnsmasq-base).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from runbook_lib.boot import step as bstep
from runbook_lib.boot.served import compare_served
from runbook_lib.boot.standin import StandIn
from runbook_lib.boot.testnet import PREFIX, TestNet, TestNetConfig, list_namespaces, namespace_exists
from runbook_lib.params import STEP3
from runbook_lib.result import Status

pytestmark = [pytest.mark.integration, pytest.mark.root,
              pytest.mark.needs_tool("dnsmasq", "carbide-dhcp's stand-in: apt-get install dnsmasq-base"),
              pytest.mark.needs_tool("ip", "network namespaces: apt-get install iproute2"),
              pytest.mark.usefixtures("no_leftover_processes", "needs_root")]


def artifact_set(d: Path) -> Path:
    """A small set that passes step 3's pre-flight (sizes above its truncation floors)."""
    d.mkdir(parents=True)
    for name in ("ipxe.efi", "ipxe.kpxe", "carbide.root"):
        (d / name).write_bytes(b"MZ" + os.urandom(100_000))
    with open(d / "carbide.efi", "wb") as fh:
        fh.write(b"MZ" + os.urandom(4096))
        fh.truncate(6 * 1024 * 1024)  # a UKI is > 5 MB; sparse
    (d / "carbide.manifest").write_text('{"packages": []}\n')
    (d / ".gitignore").write_text("*\n")
    return d


@pytest.fixture(autouse=True)
def _no_namespace_left():
    before = {n for n in list_namespaces() if n.startswith(PREFIX)}
    yield
    left = {n for n in list_namespaces() if n.startswith(PREFIX)} - before
    assert not left, f"namespaces left behind: {left}"


def test_changed_file_is_stale_through_the_namespace(tmp_path: Path) -> None:
    a = artifact_set(tmp_path / "A")
    b = tmp_path / "B"
    shutil.copytree(a, b)
    net = TestNet(TestNetConfig(artifacts=a, log_dir=tmp_path / "log"))
    standin = StandIn(a, host=net.cfg.bridge_ip, port=net.cfg.port, netns=net.name)
    try:
        net.start()
        standin.start()
        same = compare_served(net.cfg.standin_url, "x86_64", b, netns=net.name, timeout=5)
        assert same.status is Status.PASS, same
        # the local build changes after carbide-pxe started: one artifact rebuilt
        data = bytearray((b / "carbide.root").read_bytes())
        data[-1] ^= 0x01
        (b / "carbide.root").write_bytes(bytes(data))
        rep = compare_served(net.cfg.standin_url, "x86_64", b, netns=net.name, timeout=5)
    finally:
        standin.stop()
        net.stop()
    assert not namespace_exists(net.name) and net.leftovers == []
    status = {r.file: r.status for r in rep.rows}
    assert status == {"carbide.efi": "same", "carbide.manifest": "same", "carbide.root": "stale",
                      "ipxe.efi": "same", "ipxe.kpxe": "same"}
    assert rep.status is Status.FAIL and rep.stale == ["carbide.root"]
    assert "stale: carbide.root" in rep.summary and rep.netns == net.name
    assert rep.cause and rep.cause.startswith(
        f"carbide.root: stale at http://192.168.240.1:8080/public/blobs/internal/x86_64/carbide.root")
    row = next(r for r in rep.rows if r.file == "carbide.root")
    assert row.local_size == row.served_size and row.detail == "same size, different bytes"
    # the stand-in logged the fetches: two full rounds of 5 files, all 200
    blob_gets = [r for r in standin.requests if r.path.startswith("/public/blobs/internal/x86_64/")]
    assert len(blob_gets) == 10 and {r.status for r in blob_gets} == {200}
    assert all(r.client.startswith("192.168.240.1") for r in blob_gets)


def test_step3_stops_before_the_vm_when_carbide_pxe_serves_a_stale_artifact(tmp_path: Path) -> None:
    served = artifact_set(tmp_path / "served")  # what the stand-in ("carbide-pxe") still serves
    local = tmp_path / "local"
    shutil.copytree(served, local)
    (local / "ipxe.efi").write_bytes(b"MZ" + os.urandom(120_000))  # rebuilt locally, not served
    params = STEP3.validate({"artifacts_dir": str(local), "network": "testnet", "accel": "tcg",
                             "check_served": "yes", "boot_timeout_s": 60})
    s = bstep.BootStep(params, log_dir=tmp_path / "run", standin_dir=served)
    pre = s.preflight()
    assert pre.status is Status.PASS, pre
    res = s.run()
    assert res.status is Status.FAIL
    assert res.summary.startswith("not booted: carbide-pxe does not serve the local build (stale: ipxe.efi")
    part = s.parts["served"]
    assert part.status is Status.FAIL and part.step == "step 3: boot: served"
    assert {r["file"]: r["status"] for r in part.details["served"]["rows"]}["ipxe.efi"] == "stale"
    assert "served vs local" in part.tables
    overall = s.result()
    assert overall.status is Status.FAIL and overall.summary.startswith("served: carbide-pxe does not serve")
    assert overall.cause and overall.cause.startswith("ipxe.efi: stale at http://192.168.240.1:8080/")
    assert overall.fix == "restart carbide-pxe so it serves the new build"
    assert list(s.parts) == ["pre-flight", "served", "run"]
    # no VM: QEMU never ran (no command, no qemu or serial log), and the network is gone
    run = s.run_
    assert run is not None and run.command == "" and run.analysis is None
    boot_dir = tmp_path / "run" / "boot"
    assert not (boot_dir / "qemu.log").exists() and not (boot_dir / "serial.log").exists()
    assert not (boot_dir / "serial.raw").exists()
    # what the check fetched is in the stand-in's request log (5 artifacts, from inside the namespace)
    assert sorted(r.path.rsplit("/", 1)[-1] for r in run.requests) == sorted(
        ["carbide.efi", "carbide.manifest", "carbide.root", "ipxe.efi", "ipxe.kpxe"])
    saved = json.loads((boot_dir / "result.json").read_text())
    assert saved["status"] == "FAIL"
    assert s.section("served") is part
    assert run.leftovers == []


def test_step3_served_check_passes_then_boots_on(tmp_path: Path) -> None:
    """Same bytes: the check passes and the run goes on to QEMU (stopped quickly by a short timeout)."""
    local = artifact_set(tmp_path / "local")
    params = STEP3.validate({"artifacts_dir": str(local), "network": "testnet", "accel": "tcg",
                             "check_served": "yes", "boot_timeout_s": 5})
    s = bstep.BootStep(params, log_dir=tmp_path / "run")
    s.preflight()
    s.run()
    assert s.parts["served"].status is Status.PASS
    assert s.parts["served"].summary.endswith("5 of 5 files the same (size and sha256)")
    assert s.run_ is not None and s.run_.command.startswith("ip netns exec ")  # QEMU did start
    assert s.run_.leftovers == []
