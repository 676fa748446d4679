"""The carbide-pxe stand-in, a real server on a free port: script, Range, traversal, 404, port busy."""

from __future__ import annotations

import http.client
import json
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


def _stop_while_logging(tmp_path: Path, n: int) -> tuple[list[str], int]:
    """One round: stop() while handler threads are piled up in record(); (log lines, requests)."""
    import fcntl
    import threading

    art = tmp_path / "art"
    art.mkdir(exist_ok=True)
    fifo = tmp_path / "requests.jsonl"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    fcntl.fcntl(rfd, 1031, 4096)  # F_SETPIPE_SZ: one page, filled by ~20 records
    s = StandIn(art, port=free_port(), log_path=fifo).start()

    for i in range(n):  # each answered at once; its handler thread then waits to log it
        resp, _ = get(s, f"/api/v0/pxe/boot?uuid=u{i}&buildarch=x86_64", {"Connection": "close"})
        assert resp.status == 200
    time.sleep(0.1)
    assert len(s.requests) < n, "the pipe did not fill: nothing was waiting to log"
    stopper = threading.Thread(target=s.stop)
    stopper.start()
    time.sleep(0.1)
    data = b""
    os.set_blocking(rfd, True)
    while True:  # drain until every writer has closed the FIFO (EOF)
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        data += chunk
    os.close(rfd)
    stopper.join(timeout=20)
    assert not stopper.is_alive()
    deadline = time.monotonic() + 10
    while len(s.requests) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    return data.decode().splitlines(), len(s.requests)


@pytest.mark.integration  # real concurrent HTTP handlers stalled on a FIFO: ~4 s
def test_stop_while_handlers_are_still_logging(tmp_path: Path, caplog, capsys) -> None:
    """stop() closes the request log under the lock the handler threads write it with.

    The log is a FIFO with a one-page buffer that the test reads only after stop() was
    called: handler threads pile up in record(), one blocked in its write, when stop()
    runs. Without the lock a handler can write to the closed file (a race: several rounds).
    """
    for _ in range(12):
        lines, count = _stop_while_logging(tmp_path, 40)
        assert count == 40  # the in-memory log is complete
        assert lines and all(json.loads(ln)["status"] == 200 for ln in lines)  # no torn line
        err = capsys.readouterr().err
        assert "Traceback" not in err and "closed file" not in err, err
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_a_failing_request_callback_is_logged_once(served, caplog) -> None:
    s, _ = served
    calls = []

    def broken(req) -> None:
        calls.append(req)
        raise RuntimeError("display broke")

    s.on_request = broken
    with caplog.at_level("WARNING", logger="runbook_lib.boot.standin"):
        for _ in range(3):
            resp, _body = get(s, "/api/v0/pxe/boot?uuid=x")
            assert resp.status == 200
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(calls) == 3
    logged = [r for r in caplog.records if r.name == "runbook_lib.boot.standin"]
    assert len(logged) == 1 and "display broke" in caplog.text
