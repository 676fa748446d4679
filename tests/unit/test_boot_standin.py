"""The carbide-pxe stand-in, a real server on a free port: script, Range, traversal, 404, port busy."""

from __future__ import annotations

import http.client
import os
import socket
import time
from pathlib import Path

import pytest

from runbook_lib.boot.standin import BootScript, PortBusy, StandIn, free_port, read_request_log


@pytest.fixture()
def served(tmp_path: Path):
    art = tmp_path / "art"
    art.mkdir()
    data = os.urandom(300_000)
    (art / "carbide.efi").write_bytes(data)
    (tmp_path / "secret.txt").write_text("outside")
    s = StandIn(art, port=free_port(), log_path=tmp_path / "requests.jsonl").start()
    try:
        yield s, data
    finally:
        s.stop()


def get(s: StandIn, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_boot_script_uses_host_header_and_query(served) -> None:
    s, _ = served
    resp, body = get(s, "/api/v0/pxe/boot?uuid=abc-1&buildarch=x86_64", {"Host": "10.0.2.2:8080"})
    text = body.decode()
    assert resp.status == 200 and text.startswith("#!ipxe")
    assert "chain http://10.0.2.2:8080/public/blobs/internal/x86_64/carbide.efi console=" in text
    assert "uuid abc-1 buildarch x86_64" in text


def test_query_values_cannot_inject_script_lines(served) -> None:
    s, _ = served
    _, body = get(s, "/api/v0/pxe/boot?uuid=x%0Ashell&buildarch=x86_64")
    assert "\nshell" not in body.decode()


def test_whole_file_and_ranges(served) -> None:
    s, data = served
    resp, body = get(s, "/public/blobs/internal/x86_64/carbide.efi")
    assert resp.status == 200 and body == data
    assert resp.getheader("Content-Length") == str(len(data))
    resp, body = get(s, "/public/blobs/internal/x86_64/carbide.efi", {"Range": "bytes=100-199"})
    assert resp.status == 206 and body == data[100:200]
    assert resp.getheader("Content-Range") == f"bytes 100-199/{len(data)}"
    resp, body = get(s, "/public/blobs/internal/x86_64/carbide.efi", {"Range": "bytes=-10"})
    assert resp.status == 206 and body == data[-10:]
    resp, body = get(s, "/public/blobs/internal/x86_64/carbide.efi", {"Range": "bytes=299990-"})
    assert resp.status == 206 and body == data[299990:]
    resp, _ = get(s, "/public/blobs/internal/x86_64/carbide.efi", {"Range": f"bytes={len(data)}-"})
    assert resp.status == 416


@pytest.mark.parametrize("path", [
    "/public/blobs/internal/x86_64/../secret.txt",
    "/public/blobs/internal/x86_64/%2e%2e/secret.txt",
    "/public/blobs/internal/../../secret.txt",
    "/public/blobs/internal/x86_64/..%2Fsecret.txt",
    "/public/blobs/internal//etc/passwd",
])
def test_traversal_is_refused(served, path: str) -> None:
    s, _ = served
    resp, body = get(s, path)
    assert resp.status in (403, 404)
    assert b"outside" not in body and b"root:" not in body


def test_missing_and_unknown_are_404(served) -> None:
    s, _ = served
    assert get(s, "/public/blobs/internal/x86_64/carbide.vmlinuz")[0].status == 404
    assert get(s, "/public/blobs/internal/aarch64/carbide.efi")[0].status == 404
    assert get(s, "/nothing")[0].status == 404


def test_every_request_is_logged(served, tmp_path: Path) -> None:
    s, data = served
    get(s, "/api/v0/pxe/boot?uuid=u&buildarch=x86_64")
    get(s, "/public/blobs/internal/x86_64/carbide.efi", {"Range": "bytes=0-9"})
    get(s, "/public/blobs/internal/x86_64/nope")
    deadline = time.monotonic() + 5  # the server records a request just after answering it
    while len(s.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    reqs = read_request_log(tmp_path / "requests.jsonl")
    assert [(r.path.split("?")[0], r.status) for r in reqs] == [
        ("/api/v0/pxe/boot", 200), ("/public/blobs/internal/x86_64/carbide.efi", 206),
        ("/public/blobs/internal/x86_64/nope", 404)]
    assert reqs[1].bytes == 10 and reqs[1].range == "bytes=0-9"
    assert all(r.duration_s >= 0 and r.time for r in reqs)
    assert s.requests == reqs


def test_port_busy_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(PortBusy, match=f"port {port}"):
            StandIn(tmp_path, port=port).start()


def test_stop_closes_the_socket(tmp_path: Path) -> None:
    s = StandIn(tmp_path, port=free_port()).start()
    port = s.port
    s.stop()
    with socket.socket() as c:
        assert c.connect_ex(("127.0.0.1", port)) != 0


def test_templates() -> None:
    k = BootScript(mode="kernel", initrd=None, cmdline="console=ttyS0").render("http://h:1", "u", "x86_64")
    assert "kernel http://h:1/public/blobs/internal/x86_64/carbide.vmlinuz console=ttyS0" in k
    assert "initrd" not in k.split("\n", 2)[2]
    sb = BootScript(mode="sandbox").render("http://h:1", "u", "x86_64")
    assert "carbide-sandbox: boot script for uuid=u" in sb
    auto = BootScript().render("http://h:1", "u", "x86_64")
    assert "iseq ${platform} efi" in auto and "initrd --name carbide.root" in auto
