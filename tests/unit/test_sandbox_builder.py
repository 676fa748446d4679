"""The builder's contract without mkosi: reuse, atomic install, lock, FAIL/ERROR, Ctrl-C, CLI."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from runbook_lib import paths
from runbook_lib.result import Status
from runbook_lib.sandbox import builder, cli, inputs, ipxe, progress, scripts
from runbook_lib.sandbox.runner import EnvironmentProblem
from runbook_lib.sandbox.tasks import IPXE_TASK


def _artifacts(workdir: Path) -> Path:
    return paths.artifacts_dir(workdir, "x86_64")


def _seed_ipxe_cache(cache: Path) -> tuple[str, list[str]]:
    """Outputs of an earlier ipxe-x86_64 build, filed under today's input key."""
    opts = builder.BuildOptions()
    key = inputs.input_key(IPXE_TASK, builder.task_inputs(IPXE_TASK, opts, ipxe.system_mirror()))
    out = cache / "outputs" / IPXE_TASK / key
    out.mkdir(parents=True)
    names = ["autoexec.ipxe", "ipxe.efi", "ipxe.kpxe", "ipxe.provenance.json"]
    for n in names:
        (out / n).write_bytes(n.encode() * 100)
    (out / "ipxe.provenance.json").write_text(json.dumps({"path": "prebuilt", "version": "seeded"}))
    (out / "stamp.json").write_text(json.dumps({"task": IPXE_TASK, "key": key, "artifacts": names}))
    return key, names


def test_unchanged_inputs_reuse_cached_outputs(tmp_path: Path) -> None:
    cache, wd = tmp_path / "cache", tmp_path / "wd"
    key, names = _seed_ipxe_cache(cache)
    lines: list[str] = []
    r = builder.build(IPXE_TASK, wd, cache=cache, on_line=lines.append)
    assert r.status is Status.PASS, r
    assert r.details["tasks"][0]["action"] == "reused"
    dest = _artifacts(wd)
    for n in names:
        assert (dest / n).read_bytes() == (cache / "outputs" / IPXE_TASK / key / n).read_bytes()
    assert r.details["ipxe_provenance"] == {"path": "prebuilt", "version": "seeded"}
    assert (dest / ".gitignore").read_text() == builder.GITIGNORE
    assert not [p for p in dest.iterdir() if ".tmp-" in p.name]
    assert lines[1] == progress.running_task(IPXE_TASK)
    assert lines[-1].startswith("[sandbox] INFO - Build Done in ")
    # second run: already installed
    r2 = builder.build(IPXE_TASK, wd, cache=cache)
    assert r2.details["tasks"][0]["action"] == "up-to-date"
    assert json.loads((dest / ".sandbox-ipxe-x86_64.json").read_text())["key"] == key
    assert Path(r2.logs["sandbox build"]).is_file()


def test_install_is_atomic_rename(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "a").write_text("new")
    dest.mkdir()
    (dest / "a").write_text("old")
    builder._install(src, ["a"], dest)
    assert (dest / "a").read_text() == "new"
    with pytest.raises(FileNotFoundError):
        builder._install(src, ["missing"], dest)
    assert sorted(p.name for p in dest.iterdir()) == [".gitignore", "a"]


def test_lock_serialises_builds_and_says_so(tmp_path: Path) -> None:
    said: list[str] = []
    order: list[str] = []
    with builder.build_lock(tmp_path, said.append):
        def second() -> None:
            with builder.build_lock(tmp_path, said.append):
                order.append("second")
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        order.append("first done")
    t.join(timeout=10)
    assert order == ["first done", "second"]
    assert any("waiting for another sandbox build" in s for s in said)


def test_unknown_task_is_an_error(tmp_path: Path) -> None:
    r = builder.build("build-boot-artifacts-x86-host", tmp_path, cache=tmp_path / "c")
    assert r.status is Status.ERROR and "create-ephemeral-image" in (r.fix or "")


def test_unreachable_mirror_is_named(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    mirror = f"http://127.0.0.1:{port}/debian"
    with pytest.raises(EnvironmentProblem) as exc:
        builder.check_mirror(mirror, "bookworm", timeout=5)
    assert mirror in exc.value.cause and "unreachable" in exc.value.cause


def test_not_an_ipxe_tree_is_an_environment_error_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    parser = argparse.ArgumentParser(prog="runbook")
    cli.register(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["sandbox", "build", "--task", IPXE_TASK, "--workdir", str(tmp_path / "wd"),
                              "--ipxe-source", str(tmp_path / "empty"), "--force"])
    (tmp_path / "empty").mkdir()
    assert args.func(args) == 2
    out = capsys.readouterr().out.splitlines()
    assert progress.running_task(IPXE_TASK) in out
    assert progress.build_failed() in out
    assert any(ln.startswith("ERROR: sandbox build") for ln in out)
    assert any("not an iPXE source tree" in ln for ln in out)
    assert not _artifacts(tmp_path / "wd").exists() or not any(_artifacts(tmp_path / "wd").glob("ipxe.*"))
    assert not list((tmp_path / "xdg").rglob("staging/*"))


def _fake_ipxe_tree(root: Path, recipe: str) -> Path:
    """A source tree whose make target does `recipe` (stands in for a broken or slow iPXE build)."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "Makefile").write_text(f"bin-x86_64-efi/snponly.efi:\n\t{recipe}\n")
    return root


@pytest.mark.integration
def test_failing_make_is_a_build_failure(tmp_path: Path) -> None:
    src = _fake_ipxe_tree(tmp_path / "ipxe", "echo 'compiler exploded' >&2; exit 1")
    lines: list[str] = []
    r = builder.build(IPXE_TASK, tmp_path / "wd", cache=tmp_path / "cache", ipxe_source=src,
                      on_line=lines.append)
    assert r.status is Status.FAIL and r.status.exit_code == 1
    assert "make (iPXE) exited with 2" in (r.cause or "")
    assert "[sandbox] ERROR - Error while executing command, exit code: 2" in lines
    assert lines[-1] == progress.build_failed()
    assert not any(_artifacts(tmp_path / "wd").glob("ipxe.*"))


@pytest.mark.integration
def test_ctrl_c_stops_the_command_and_leaves_nothing(tmp_path: Path) -> None:
    src = _fake_ipxe_tree(tmp_path / "ipxe", "echo $$$$ > pid; sleep 60")
    cache = tmp_path / "cache"

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    lines: list[str] = []
    try:
        with pytest.raises(KeyboardInterrupt):
            builder.build(IPXE_TASK, tmp_path / "wd", cache=cache, ipxe_source=src, on_line=lines.append)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert any("interrupted (Ctrl-C)" in ln for ln in lines)
    pid_files = list(cache.rglob("src/pid"))
    assert pid_files, "the fake make never started"
    pid = int(pid_files[0].read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not any(_artifacts(tmp_path / "wd").glob("ipxe.*"))
    assert not list((cache / "staging").iterdir())
    assert not list((cache / "outputs").rglob("*partial*")) if (cache / "outputs").exists() else True


FAKE_IPXE_MAKEFILE = """\
config/local/serial.h:
\ttouch $@
bin/a.o: config/local/general.h config/local/serial.h
\tmkdir -p bin; echo "  [BUILD] $@"; touch $@
bin-x86_64-efi/snponly.efi bin/undionly.kpxe: bin/a.o $(EMBED)
\tmkdir -p $(dir $@); echo "  [LD] $@"; { echo "VERSION=$(VERSION)"; cat config/local/*.h $(EMBED); } > $@
"""


@pytest.mark.integration
def test_source_path_embeds_the_script_with_the_sandbox_config(tmp_path: Path) -> None:
    """A stand-in iPXE tree (a real one: tests/integration/test_ipxe_from_source.py) checks the
    plumbing: both targets made once with EMBED=<43.70 chain script>, VERSION= and the sandbox's
    config/local headers; no autoexec.ipxe; a warm rebuild compiles nothing; a new script relinks."""
    src = tmp_path / "ipxe"
    (src / "src").mkdir(parents=True)
    (src / "debian").mkdir()
    (src / "debian" / "changelog").write_text("ipxe (9.9-1) unstable; urgency=low\n")
    (src / "src" / "Makefile").write_text(FAKE_IPXE_MAKEFILE)
    dest = _artifacts(tmp_path / "wd")
    dest.mkdir(parents=True)
    (dest / "autoexec.ipxe").write_text("#!ipxe\n# left by an earlier prebuilt build\n")
    cache = tmp_path / "cache"
    lines: list[str] = []
    r = builder.build(IPXE_TASK, tmp_path / "wd", cache=cache, ipxe_source=src, port=18081,
                      on_line=lines.append)
    assert r.status is Status.PASS, r
    efi = (dest / "ipxe.efi").read_text()
    assert efi.startswith(f"VERSION={ipxe.make_version('Debian 9.9-1')}\n")
    assert "isset ${43.70} || goto no_uuid" in efi and ":18081/api/v0/pxe/boot?uuid=${43.70}&" in efi
    assert "#define DOWNLOAD_PROTO_HTTPS" in efi and '"carbide-sandbox"' in efi
    assert (dest / "ipxe.kpxe").read_text() == efi
    assert not (dest / "autoexec.ipxe").exists()
    prov = json.loads((dest / "ipxe.provenance.json").read_text())
    assert prov["path"] == "source" and prov["version"] == "Debian 9.9-1" and prov["origin"] == str(src)
    assert prov["embedded_script"] is True and prov["compiled_objects"] == 1
    assert prov["chain_url"] == scripts.embedded_chain_url_template(18081)
    assert prov["build_tree_state"] == "cold"
    assert [row["source"] for row in prov["resolution"]][:2] == ["ipxe_source", "carbide checkout"]
    assert prov["resolution"][0]["used"] and not any(row["used"] for row in prov["resolution"][1:])
    assert prov["source_resolution"].startswith("ipxe_source: used: directory ")
    assert r.details["ipxe_build"]["compiled_objects"] == 1
    assert any("iPXE make: 1 objects compiled" in ln for ln in lines)
    # like iPXE's make, the fake creates missing config/local headers empty: they must survive
    assert (cache / "ipxe-build").rglob("config/local/serial.h")
    # unchanged inputs: nothing runs at all; forced: make runs in the warm tree and compiles nothing
    r2 = builder.build(IPXE_TASK, tmp_path / "wd", cache=cache, ipxe_source=src, port=18081)
    assert r2.details["ipxe_build"] == {"action": "up-to-date", "make_ran": False, "compiled_objects": 0}
    r3 = builder.build(IPXE_TASK, tmp_path / "wd", cache=cache, ipxe_source=src, port=18081, force=True)
    assert r3.details["ipxe_build"]["compiled_objects"] == 0
    assert r3.details["ipxe_build"]["build_tree_state"] == "warm"
    assert r3.details["ipxe_build"]["make_steps"] == {}
    # another port changes the script: relink only
    r4 = builder.build(IPXE_TASK, tmp_path / "wd", cache=cache, ipxe_source=src, port=18082)
    assert r4.details["ipxe_build"]["make_steps"] == {"LD": 2}
    assert ":18082/api/v0/pxe/boot" in (dest / "ipxe.efi").read_text()


def test_too_little_free_space_is_an_environment_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builder, "MIN_FREE_BYTES", 1 << 60)
    r = builder.build(IPXE_TASK, tmp_path / "wd", cache=tmp_path / "cache", force=True)
    assert r.status is Status.ERROR and r.status.exit_code == 2
    assert "GB free under" in (r.cause or "") and "free at least" in (r.fix or "")
    assert not any(_artifacts(tmp_path / "wd").glob("ipxe.*"))


@pytest.mark.integration
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_while_installing_is_reported_and_leaves_no_partial_file(tmp_path: Path) -> None:
    from runbook_lib import shell

    cache, wd = tmp_path / "cache", tmp_path / "wd"
    key, names = _seed_ipxe_cache(cache)
    big = cache / "outputs" / IPXE_TASK / key / "ipxe.efi"
    big.write_bytes(os.urandom(3 << 20))  # does not fit the 1 MiB workdir
    wd.mkdir()
    assert shell.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(wd)], timeout=30).ok
    try:
        r = builder.build(IPXE_TASK, wd, cache=cache, log_path=tmp_path / "build.log")
        assert r.status is Status.ERROR, r
        assert "disk is full" in (r.cause or "")
        left = [p.name for p in _artifacts(wd).iterdir()]
        assert "ipxe.efi" not in left and not [n for n in left if ".tmp-" in n]
    finally:
        shell.run(["umount", str(wd)], timeout=30)


def test_unreachable_mirror_fails_the_image_build_before_mkosi(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror = f"http://127.0.0.1:{port}/debian"
    lines: list[str] = []
    r = builder.build("create-ephemeral-image", tmp_path / "wd", cache=tmp_path / "cache",
                      mirror=mirror, on_line=lines.append)
    assert r.status is Status.ERROR and r.status.exit_code == 2
    assert mirror in (r.cause or "")
    assert not any("Execute Command: mkosi" in ln for ln in lines)
    assert lines[-1] == progress.build_failed()
