"""The served-vs-local comparison against a real HTTP server on 127.0.0.1 (the carbide-pxe
stand-in in a thread): same, stale, missing, error, unreachable, and bounded reads.

The required real test is on the test network (tests/integration/test_served_testnet.py).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runbook_lib.boot import served as sv
from runbook_lib.boot.standin import StandIn
from runbook_lib.result import Status


def build(d: Path, extra: bytes = b"") -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "ipxe.efi").write_bytes(b"MZ" + os.urandom(3000))
    (d / "carbide.efi").write_bytes(b"MZ" + os.urandom(5000))
    (d / "carbide.manifest").write_text('{"packages": []}\n')
    (d / ".gitignore").write_text("*\n")
    (d / ".mkosi-tmpabc").mkdir()


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "served", tmp_path / "local"
    build(a)
    b.mkdir()
    for p in a.iterdir():
        if p.is_file():
            (b / p.name).write_bytes(p.read_bytes())
    return a, b


def test_local_artifacts_skip_dotfiles_and_dirs(dirs) -> None:
    _a, b = dirs
    assert sv.local_artifacts(b) == ["carbide.efi", "carbide.manifest", "ipxe.efi"]


def test_all_same_is_pass(dirs) -> None:
    a, b = dirs
    with StandIn(a, port=0) as s:
        rep = sv.compare_served(s.url, "x86_64", b)
        deadline = time.monotonic() + 5  # the stand-in logs a request after its last byte went out
        while len(s.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        paths = sorted(r.path for r in s.requests)
    assert rep.status is Status.PASS and rep.summary.endswith("3 of 3 files the same (size and sha256)")
    assert [r.status for r in rep.rows] == ["same"] * 3
    assert paths == [f"/public/blobs/internal/x86_64/{n}" for n in ("carbide.efi", "carbide.manifest", "ipxe.efi")]
    full = hashlib.sha256((b / "ipxe.efi").read_bytes()).hexdigest()
    row = next(r for r in rep.rows if r.file == "ipxe.efi")
    assert row.local_sha256 == row.served_sha256 == full[:sv.SHORT] and row.local_size == 3002


def test_stale_and_missing_are_fail_naming_them(dirs) -> None:
    a, b = dirs
    data = bytearray((b / "carbide.efi").read_bytes())
    data[100] ^= 0xFF  # same size, different bytes
    (b / "carbide.efi").write_bytes(bytes(data))
    (b / "ipxe.efi").write_bytes(b"MZ shorter")
    (b / "scout.efi").write_bytes(b"new artifact")
    with StandIn(a, port=0) as s:
        rep = sv.compare_served(s.url, "x86_64", b, fix="docker compose -p carbide restart carbide-pxe")
    st = {r.file: r for r in rep.rows}
    assert {f: r.status for f, r in st.items()} == {"carbide.efi": "stale", "carbide.manifest": "same",
                                                   "ipxe.efi": "stale", "scout.efi": "missing"}
    assert st["carbide.efi"].detail == "same size, different bytes"
    assert st["ipxe.efi"].detail == "size 3002 served vs 10 local"
    assert st["scout.efi"].served_size is None and "404" in st["scout.efi"].detail
    assert rep.status is Status.FAIL
    assert "stale: carbide.efi, ipxe.efi; missing: scout.efi; 1 of 4 the same" in rep.summary
    assert rep.cause and rep.cause.startswith("carbide.efi: stale at http://127.0.0.1:")
    assert rep.fix == "docker compose -p carbide restart carbide-pxe"
    d = rep.to_dict()
    assert d["status"] == "FAIL" and len(d["rows"]) == 4
    df = rep.table()
    assert list(df.columns)[:2] == ["file", "status"] and str(df["served_size"].dtype) == "Int64"
    res = rep.to_result("step 3: boot: served")
    assert res.status is Status.FAIL and "served vs local" in res.tables


def test_unreachable_is_error_naming_the_url_and_bounded(dirs) -> None:
    _a, b = dirs
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rep = sv.compare_served(f"http://127.0.0.1:{port}", "x86_64", b, timeout=2,
                            find_url_hint="set pxe_url = 'http://ADDRESS:PORT'")
    assert rep.status is Status.ERROR and rep.summary == f"carbide-pxe is unreachable at http://127.0.0.1:{port}"
    assert "Connection refused" in (rep.cause or "")
    assert f"listens at http://127.0.0.1:{port}" in (rep.fix or "") and "pxe_url" in (rep.fix or "")
    assert [r.detail.startswith("not tried") for r in rep.rows] == [False, True, True]  # one try, not three
    assert rep.seconds < 5


def test_wait_retries_until_the_server_answers(dirs) -> None:
    a, b = dirs
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    standin = StandIn(a, port=port)
    timer = threading.Timer(1.5, standin.start)
    timer.start()
    try:
        rep = sv.compare_served(f"http://127.0.0.1:{port}", "x86_64", b, timeout=2, wait_s=15)
    finally:
        timer.join()
        standin.stop()
    assert rep.status is Status.PASS, rep


def test_http_errors_and_truncated_bodies(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.bin").write_bytes(b"x" * 1000)
    (local / "b.bin").write_bytes(b"y" * 1000)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.endswith("a.bin"):
                self.send_error(500, "boom")
                return
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"y" * 400)  # then the connection closes early

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        rep = sv.compare_served(f"http://127.0.0.1:{srv.server_address[1]}", "x86_64", local, timeout=5)
    finally:
        srv.shutdown()
        srv.server_close()
    st = {r.file: r for r in rep.rows}
    assert st["a.bin"].status == "error" and "HTTP 500" in st["a.bin"].detail
    assert st["b.bin"].status == "error" and "transfer broke after 400 bytes" in st["b.bin"].detail
    assert rep.status is Status.ERROR and "answered with errors" in rep.summary


def test_no_local_build_is_error(tmp_path: Path) -> None:
    rep = sv.compare_served("http://127.0.0.1:9", "x86_64", tmp_path / "nope")
    assert rep.status is Status.ERROR and "step 2" in (rep.fix or "")
    (tmp_path / "empty").mkdir()
    rep = sv.compare_served("http://127.0.0.1:9", "x86_64", tmp_path / "empty")
    assert rep.status is Status.ERROR and "no artifact files" in (rep.cause or "")


def test_big_file_is_streamed_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "d"
    d.mkdir()
    with open(d / "carbide.root", "wb") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse, 64 MiB
    reads: list[int] = []
    import http.client

    orig = http.client.HTTPResponse.read

    def spy(self, amt=None):  # records how much each read asks for
        reads.append(-1 if amt is None else amt)
        return orig(self, amt)

    monkeypatch.setattr(http.client.HTTPResponse, "read", spy)
    with StandIn(d, port=0) as s:
        rep = sv.compare_served(s.url, "x86_64", d)
    assert rep.status is Status.PASS
    assert reads and max(reads) <= sv.CHUNK and -1 not in reads
