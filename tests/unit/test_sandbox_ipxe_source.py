"""Where the iPXE source comes from: the order, the reasons, tarballs, the pinned download."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import urllib.error
from pathlib import Path

import pytest

from runbook_lib.sandbox import ipxe_source as s
from runbook_lib.sandbox.runner import EnvironmentProblem

COMMIT = "d7e58c5a812988c341ec4ad19f79faf067388d58"


def tree(root: Path) -> Path:
    (root / "src" / "config" / "local").mkdir(parents=True)
    (root / "src" / "Makefile").write_text("all:\n")
    (root / "src" / "core.c").write_text("int x;\n")
    return root


def make_tarball(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def good_tarball(tmp: Path) -> Path:
    top = f"ipxe-{COMMIT}"
    return make_tarball(tmp / "ipxe.tar.gz", {f"{top}/src/Makefile": b"all:\n", f"{top}/COPYING": b"GPL\n"})


def no_apt() -> tuple[Path | None, str]:
    return None, "apt-get source ipxe failed: E: Failed to fetch ... 404  Not Found"


def no_download() -> tuple[Path | None, str]:
    return None, f"{s.PINNED_URL}: network unreachable ([Errno -2] Name or service not known)"


def test_nothing_available_falls_back_to_prebuilt_and_says_why(tmp_path: Path) -> None:
    res = s.resolve(None, None, tmp_path, apt_probe=no_apt, download=no_download)
    assert res.top is None and res.kind == s.PREBUILT
    assert [a.source for a in res.attempts] == list(s.ORDER)
    assert [a.used for a in res.attempts] == [False, False, False, False, True]
    text = res.summary()
    assert text.startswith("ipxe_source: not given; carbide checkout: no carbide checkout")
    assert "apt-get source ipxe: apt-get source ipxe failed: E: Failed to fetch ... 404" in text
    assert "download of d7e58c5a: " in text and "network unreachable" in text
    assert res.to_rows()[-1] == {"source": s.PREBUILT, "used": True, "why": "used: no iPXE source was available"}


def test_given_directory_wins_and_nothing_else_is_tried(tmp_path: Path) -> None:
    src = tree(tmp_path / "ipxe")

    def boom() -> tuple[Path | None, str]:
        raise AssertionError("must not be tried")
    res = s.resolve(src, tmp_path / "carbide", tmp_path / "cache", apt_probe=boom, download=boom)
    assert (res.top, res.kind, res.origin) == (src, s.GIVEN, str(src))
    assert res.attempts[0].used and res.attempts[0].why == f"used: directory {src}"
    assert all(a.why == "not tried: ipxe_source was used" for a in res.attempts[1:])
    assert res.key.startswith("tree-")


def test_given_tarball_is_extracted_once_keyed_by_sha256(tmp_path: Path) -> None:
    tb = good_tarball(tmp_path)
    cache = tmp_path / "cache"
    res = s.resolve(tb, None, cache, apt_probe=no_apt)
    sha = hashlib.sha256(tb.read_bytes()).hexdigest()
    assert res.top == cache / "ipxe-src-tar" / sha[:16] / f"ipxe-{COMMIT}"
    assert (res.top / "src" / "Makefile").read_text() == "all:\n"
    assert res.sha256 == sha and res.key == "tarball-" + sha
    assert res.version == f"commit {COMMIT}"
    assert res.attempts[0].why.startswith(f"used: tarball {tb} (sha256 {sha[:12]}")
    marker = res.top.parent / ".complete.json"
    before = marker.stat().st_mtime_ns
    (res.top / "src" / "extra").write_text("kept")  # a second resolve must not re-extract
    again = s.resolve(tb, None, cache, apt_probe=no_apt)
    assert again.top == res.top and marker.stat().st_mtime_ns == before
    assert (res.top / "src" / "extra").exists()


@pytest.mark.parametrize("members,links,match", [
    ({"ipxe/src/Makefile": b"", "ipxe/../../evil": b"x"}, None, "path traversal"),
    ({"/abs/src/Makefile": b""}, None, "path traversal"),
    ({"a/src/Makefile": b"", "b/README": b""}, None, "one top folder"),
    ({"ipxe/README": b""}, None, "no src/Makefile"),
    ({"ipxe/src/Makefile": b""}, {"ipxe/src/passwd": "/etc/passwd"}, "data filter"),
])
def test_unsafe_or_odd_tarballs_are_refused(tmp_path: Path, members: dict[str, bytes],
                                            links: dict[str, str] | None, match: str) -> None:
    tb = make_tarball(tmp_path / "bad.tar.gz", members, links)
    with pytest.raises(EnvironmentProblem, match=match):
        s.resolve(tb, None, tmp_path / "cache", apt_probe=no_apt)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "cache" / "evil").exists()
    assert not list((tmp_path / "cache").rglob(".*partial*"))


def test_given_but_unusable_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="does not exist"):
        s.resolve(tmp_path / "nope", None, tmp_path, apt_probe=no_apt)
    (tmp_path / "src-only" / "config").mkdir(parents=True)
    (tmp_path / "src-only" / "Makefile").write_text("")
    with pytest.raises(EnvironmentProblem, match="give its parent"):
        s.resolve(tmp_path / "src-only", None, tmp_path, apt_probe=no_apt)
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(EnvironmentProblem, match="neither a directory nor a tarball"):
        s.resolve(tmp_path / "notes.txt", None, tmp_path, apt_probe=no_apt)
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(EnvironmentProblem, match="cannot be read as a tar archive"):
        s.resolve(tmp_path / "broken.tar.gz", None, tmp_path, apt_probe=no_apt)


def test_carbide_checkout_upstream_is_second(tmp_path: Path) -> None:
    carbide = tmp_path / "carbide"
    res = s.resolve(None, carbide, tmp_path, apt_probe=no_apt, download=no_download)
    assert "git submodule update --init pxe/ipxe/upstream" in res.attempts[1].why
    up = tree(carbide / "pxe" / "ipxe" / "upstream")
    (up / ".git").write_text("gitdir: ../../../.git/modules/pxe/ipxe/upstream\n")
    mod = carbide / ".git" / "modules" / "pxe" / "ipxe" / "upstream"
    mod.mkdir(parents=True)
    (mod / "HEAD").write_text(COMMIT + "\n")
    res = s.resolve(None, carbide, tmp_path, apt_probe=no_apt, download=no_download)
    assert res.kind == s.CARBIDE and res.top == up and res.version == f"commit {COMMIT}"
    assert res.attempts[2].why == "not tried: the carbide checkout was used"


def test_apt_source_then_download(tmp_path: Path) -> None:
    apt_tree = tree(tmp_path / "ipxe-1.0")
    (apt_tree / "debian").mkdir()
    (apt_tree / "debian" / "changelog").write_text("ipxe (1.21.1-1) unstable; urgency=medium\n")
    res = s.resolve(None, None, tmp_path, apt_probe=lambda: (apt_tree, ""), download=no_download)
    assert res.kind == s.APT and res.version == "Debian 1.21.1-1"
    tb = good_tarball(tmp_path)
    res = s.resolve(None, None, tmp_path / "cache", apt_probe=no_apt, download=lambda: (tb, "fetched"))
    assert res.kind == s.DOWNLOAD and res.top is not None and res.key == "tarball-" + s.PINNED_SHA256
    assert res.attempts[3].why == "used: fetched" and s.PINNED_URL in res.origin


class FakeResponse(io.BytesIO):
    def __enter__(self) -> "FakeResponse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_download_is_checked_against_its_sha256(tmp_path: Path) -> None:
    blob = b"tarball bytes"
    good = hashlib.sha256(blob).hexdigest()
    seen: list[float] = []

    def opener(url: str, timeout: float) -> FakeResponse:
        seen.append(timeout)
        return FakeResponse(blob)
    path, why = s.download_pinned(tmp_path, url="https://x/abc.tar.gz", sha256=good, opener=opener)
    assert path is not None and path.read_bytes() == blob and "sha256 verified" in why
    assert seen == [s.CONNECT_TIMEOUT_S]
    # a verified earlier download is reused without the network
    path2, why2 = s.download_pinned(tmp_path, url="https://x/abc.tar.gz", sha256=good,
                                    opener=lambda *a, **k: pytest.fail("no network expected"))
    assert path2 == path and "downloaded earlier" in why2
    path3, why3 = s.download_pinned(tmp_path / "other", url="https://x/abc.tar.gz", sha256="0" * 64,
                                    opener=opener)
    assert path3 is None and "is not the pinned" in why3 and "ipxe_source" in why3
    assert not [p for p in (tmp_path / "other").rglob("*") if p.is_file()]  # no .part left


@pytest.mark.parametrize("exc,words", [
    (urllib.error.URLError(OSError(-2, "Name or service not known")), "network unreachable"),
    (urllib.error.URLError(TimeoutError("timed out")), "timed out"),
    (urllib.error.HTTPError("https://x", 404, "Not Found", {}, None), "HTTP 404"),  # type: ignore[arg-type]
])
def test_download_failures_name_the_reason(tmp_path: Path, exc: Exception, words: str) -> None:
    def opener(url: str, timeout: float) -> FakeResponse:
        raise exc
    path, why = s.download_pinned(tmp_path, opener=opener)
    assert path is None and words in why and s.PINNED_URL in why


def test_source_digest_ignores_build_outputs_and_local_config(tmp_path: Path) -> None:
    top = tree(tmp_path / "ipxe")
    d0 = s.source_digest(top)
    (top / "src" / "bin-x86_64-efi").mkdir()
    (top / "src" / "bin-x86_64-efi" / "snponly.efi").write_bytes(b"built")
    (top / "src" / "config" / "local" / "general.h").write_text("#define X\n")
    (top / ".git").mkdir()
    (top / ".git" / "HEAD").write_text("x")
    assert s.source_digest(top) == d0
    (top / "src" / "core.c").write_text("int y;\n")
    assert s.source_digest(top) != d0
    # the copy into a build tree leaves out the same things
    shutil.copytree(top, tmp_path / "copy", symlinks=True, ignore=s.copy_ignore(top))
    assert not (tmp_path / "copy" / "src" / "bin-x86_64-efi").exists()
    assert not (tmp_path / "copy" / "src" / "config" / "local").exists()
    assert not (tmp_path / "copy" / ".git").exists()
    assert (tmp_path / "copy" / "src" / "core.c").read_text() == "int y;\n"


def test_short_label() -> None:
    assert s.short_label(f"commit {COMMIT}") == "d7e58c5a"
    assert s.short_label("Debian 1.21.1+git20250501.dad20602+dfsg-1") == "1.21.1+git20250501.dad20602+dfsg-1"
    assert s.short_label("unknown (no commit or changelog)") == "unknown-no-commit-or-changelog"
