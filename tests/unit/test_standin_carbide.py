"""The stand-in as carbide-pxe: known machine UUIDs only, query parameters recorded, whoami.

Real servers on loopback (free ports). The network-namespace socket is root-only: it is in
tests/integration/test_testnet.py.
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from runbook_lib.boot.standin import (MAX_QUERY_KEYS, MAX_QUERY_VALUE, UNKNOWN_UUID_LINE, Request,
                                      StandIn, echo_safe, free_port, read_request_log,
                                      sanitize_query)

UUID = "6A3F6F0E-8C1B-4D6E-9B7A-2F4C1E5D8A90"
CARBIDE_QUERY = ("uuid={u}&buildarch=x86_64&platform=efi&manufacturer=NVIDIA%20Corp&product=carbide-testvm"
                 "&serial=SN-0001")


@pytest.fixture()
def carbide(tmp_path: Path):
    art = tmp_path / "art"
    art.mkdir()
    s = StandIn(art, port=free_port(), log_path=tmp_path / "requests.jsonl",
                known_uuids=frozenset({UUID})).start()
    try:
        yield s
    finally:
        s.stop()


def get(s: StandIn, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read().decode()
    conn.close()
    return resp.status, body


def wait_requests(s: StandIn, n: int) -> list[Request]:
    deadline = time.monotonic() + 5  # a request is recorded just after it was answered
    while len(s.requests) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return list(s.requests)


def test_known_uuid_boots_case_insensitively(carbide: StandIn) -> None:
    status, body = get(carbide, "/api/v0/pxe/boot?" + CARBIDE_QUERY.format(u=UUID.lower()))
    assert status == 200 and body.startswith("#!ipxe") and "chain http://" in body
    assert UNKNOWN_UUID_LINE not in body
    (req,) = wait_requests(carbide, 1)
    assert req.note is None
    assert req.query == {"uuid": UUID.lower(), "buildarch": "x86_64", "platform": "efi",
                         "manufacturer": "NVIDIA Corp", "product": "carbide-testvm", "serial": "SN-0001"}


def test_unknown_uuid_gets_carbides_answer_and_is_logged(carbide: StandIn, tmp_path: Path, caplog) -> None:
    with caplog.at_level("WARNING", logger="runbook_lib.boot.standin"):
        status, body = get(carbide, "/api/v0/pxe/boot?" + CARBIDE_QUERY.format(u="11111111-2222"))
    # carbide-pxe answers 200 with a script that prints why and exits 101 (iPXE then fails the chain)
    assert status == 200 and body.startswith("#!ipxe\n")
    lines = body.splitlines()
    assert lines[1].startswith(f"echo {UNKNOWN_UUID_LINE} 11111111-2222: ")
    assert lines[2] == "exit 101 ||" and "chain" not in body and "kernel" not in body
    (req,) = wait_requests(carbide, 1)
    assert req.note == "unknown machine uuid 11111111-2222" and req.query["uuid"] == "11111111-2222"
    assert "unknown machine uuid '11111111-2222'" in caplog.text
    saved = read_request_log(tmp_path / "requests.jsonl")
    assert saved[0].note == req.note and saved[0].query == req.query


def test_missing_uuid_is_400_when_uuids_are_checked(carbide: StandIn) -> None:
    status, body = get(carbide, "/api/v0/pxe/boot?buildarch=x86_64")
    assert status == 400 and "missing uuid" in body


def test_hostile_uuid_cannot_inject_script_lines(carbide: StandIn) -> None:
    status, body = get(carbide, "/api/v0/pxe/boot?uuid=x%0Ashell%20%24%7Bfoo%7D&buildarch=x86_64")
    assert status == 200
    assert "\nshell" not in body and "${foo}" not in body and body.count("\n") == 3


def test_without_known_uuids_every_uuid_is_served_and_queries_recorded(tmp_path: Path) -> None:
    s = StandIn(tmp_path, port=free_port()).start()
    try:
        status, body = get(s, "/api/v0/pxe/boot?" + CARBIDE_QUERY.format(u="anything"))
        assert status == 200 and "chain" in body and UNKNOWN_UUID_LINE not in body
        get(s, "/public/blobs/internal/x86_64/none")
        reqs = wait_requests(s, 2)  # recorded after each answer: not necessarily in request order
        boot = next(r for r in reqs if r.path.startswith("/api/v0/pxe/boot"))
        blob = next(r for r in reqs if r.path.startswith("/public/"))
        assert boot.query and boot.query["serial"] == "SN-0001"
        assert blob.query is None  # only the API routes record a query
    finally:
        s.stop()


def test_whoami(carbide: StandIn) -> None:
    get(carbide, "/api/v0/pxe/boot?" + CARBIDE_QUERY.format(u=UUID))
    wait_requests(carbide, 1)
    status, body = get(carbide, f"/api/v0/pxe/whoami?uuid={UUID.lower()}")
    assert status == 200 and body.startswith("#!ipxe\n")
    assert all(ln.startswith(("#!ipxe", "echo ")) for ln in body.splitlines())
    assert f"UUID......... {UUID.lower()}" in body and "Known........ yes" in body
    assert "Client IP.... 127.0.0.1" in body and "Boot requests 1" in body
    assert "Manufacturer NVIDIA Corp" in body and "Serial...... SN-0001" in body
    status, body = get(carbide, "/api/v0/pxe/whoami?uuid=nobody")
    assert "Known........ no" in body and "Boot requests 0" in body
    reqs = wait_requests(carbide, 3)
    assert reqs[-1].query == {"uuid": "nobody"} and reqs[-1].path.startswith("/api/v0/pxe/whoami")


def test_sanitize_query_bounds() -> None:
    q = sanitize_query("serial=a%00b%1bc%C3%A9&uuid=u&" + "&".join(f"k{i}=v" for i in range(40))
                       + "&bad%20key=1&" + "x" * 40 + "=1&product=" + "p" * 500)
    assert list(q)[:3] == ["uuid", "product", "serial"]  # carbide's parameters first
    assert q["serial"] == "a?b?c?" and len(q["product"]) == MAX_QUERY_VALUE
    assert len(q) == MAX_QUERY_KEYS and "bad key" not in q
    assert sanitize_query("") == {} and sanitize_query("a") == {"a": ""}
    assert len(sanitize_query("&".join(f"k{i}=v" for i in range(10_000)))) == MAX_QUERY_KEYS


def test_echo_safe() -> None:
    assert echo_safe("NVIDIA Corp (x86)") == "NVIDIA Corp (x86)"
    assert echo_safe("${x}; shell\n#") == "??x?? shell??"
    assert echo_safe("") == "-" and len(echo_safe("a" * 500)) == 80


def test_old_request_logs_stay_readable(tmp_path: Path) -> None:
    old = {"time": "10:00:00.000", "seconds": 1.0, "client": "10.0.2.15", "method": "GET",
           "path": "/api/v0/pxe/boot?uuid=u", "status": 200, "bytes": 10, "duration_s": 0.01,
           "range": None}
    newer = dict(old, query={"uuid": "u"}, note=None, future_field=1)
    (tmp_path / "r.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(newer) + "\n")
    a, b = read_request_log(tmp_path / "r.jsonl")
    assert a.query is None and a.note is None and b.query == {"uuid": "u"}
