"""Compare two artifact sets (e.g. the official ones and your own build): ``runbook compare-artifacts``.

:func:`compare_artifacts` reads both directories with :mod:`runbook_lib.inspect` and returns a
:class:`Comparison`: verdict SAME (every artifact present in both, byte for byte equal),
DIFFERENT (a table of differences, the most boot-relevant first) or ERROR (a directory or a
file that cannot be read). Each difference is a sentence a person understands; the embedded
iPXE script comes with a unified diff. Order of relevance: a file missing from one set, the
embedded iPXE script, its DHCP option 43.70 dependency, the chained URL, the iPXE version,
its features, the UKI's kernel command line, kernel release, os-release, initrd / cpio root
(/init, file count), the packages of the manifest, then plain byte differences.

Exit codes of the command: 0 SAME, 1 DIFFERENT, 2 ERROR.
"""

from __future__ import annotations

import difflib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .inspect import artifact_names, set_facts
from .inspect.ipxe import FEATURES
from .result import Status, StepResult

SAME, DIFFERENT, ERROR = "SAME", "DIFFERENT", "ERROR"
STEP = "compare artifacts"

# category -> rank (lower = more boot-relevant)
CATEGORIES = (
    "missing artifact", "kind", "embedded script", "script file", "DHCP option 43.70", "chained URL",
    "iPXE version", "iPXE features", "kernel cmdline", "kernel version", "os-release", "initrd",
    "cpio root", "UKI sections", "packages", "missing file", "bytes",
)
# kinds whose absence breaks a boot ("missing artifact"); any other file is a "missing file"
BOOT_KINDS = ("ipxe", "uki", "cpio", "kernel", "ipxe-script")
RANK = {c: i for i, c in enumerate(CATEGORIES)}
_FEATURE_WHAT = {f.name: f.what for f in FEATURES}

FIXES = {
    "missing artifact": "copy or rebuild the missing artifact: a boot needs every boot file the reference set has",
    "missing file": "the sets hold different files (not boot artifacts): check which build step writes it",
    "script file": "use the reference's iPXE script file (a stock iPXE runs autoexec.ipxe from beside itself)",
    "kind": "the file is not the same kind of artifact in both sets: check which build step wrote it",
    "embedded script": "rebuild iPXE with the reference's embedded script (make ... EMBED=<script>); "
                       "carbide's embed.ipxe chains to carbide-pxe only when DHCP gives option 43.70",
    "DHCP option 43.70": "use the reference's embedded script, or make the DHCP server send option 43 "
                         "sub-option 70 (carbide-dhcp does; QEMU user networking cannot)",
    "chained URL": "rebuild iPXE with the reference's embedded script (the URL it chains is in it)",
    "iPXE version": "build iPXE from the commit the reference was built from (carbide pins "
                    "pxe/ipxe/upstream) with the same VERSION=",
    "iPXE features": "build iPXE with the reference's config headers (config/local/general.h) and patches",
    "kernel cmdline": "rebuild the UKI with the reference's kernel command line",
    "kernel version": "rebuild the image (step 2) from the same tree and package mirror as the reference",
    "os-release": "rebuild the image (step 2) from the same tree and mkosi config as the reference",
    "initrd": "rebuild the image (step 2): the UKI's initrd differs from the reference's",
    "cpio root": "rebuild the image (step 2): the root archive differs from the reference's",
    "UKI sections": "assemble the UKI the way the reference was (same stub and sections)",
    "packages": "rebuild the image (step 2) with the reference's package list (see the package changes)",
    "bytes": "the files differ only in bytes not interpreted here (build ids, timestamps): "
             "compare the two build logs",
}


@dataclass
class FileRow:
    name: str
    kind: str
    in_ref: bool
    in_dir: bool
    ref_size: int | None
    dir_size: int | None
    ref_sha256: str | None
    dir_sha256: str | None

    @property
    def equal(self) -> bool:
        return self.in_ref and self.in_dir and self.ref_sha256 is not None and self.ref_sha256 == self.dir_sha256

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.name, "kind": self.kind, "in_ref": self.in_ref, "in_dir": self.in_dir,
                "ref_size": self.ref_size, "dir_size": self.dir_size, "ref_sha256": self.ref_sha256,
                "dir_sha256": self.dir_sha256, "equal": self.equal}


@dataclass
class Difference:
    category: str
    file: str
    sentence: str
    ref: Any = None
    dir: Any = None
    diff: str | None = None  # a unified diff (embedded scripts)

    @property
    def rank(self) -> int:
        return RANK[self.category]

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "file": self.file, "sentence": self.sentence,
                "ref": self.ref, "dir": self.dir, "diff": self.diff}


@dataclass
class Comparison:
    ref_dir: str
    dir: str
    verdict: str
    files: list[FileRow] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None
    ref_facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    dir_facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return {SAME: 0, DIFFERENT: 1}.get(self.verdict, 2)

    @property
    def status(self) -> Status:
        return {SAME: Status.PASS, DIFFERENT: Status.FAIL}.get(self.verdict, Status.ERROR)

    def summary(self) -> str:
        if self.verdict == ERROR:
            return f"cannot compare: {self.error}"
        n = len(self.files)
        if self.verdict == SAME:
            return f"SAME: all {n} artifacts are byte for byte equal"
        changed = sorted({d.file for d in self.differences})
        first = self.differences[0].sentence if self.differences else ""
        return (f"DIFFERENT: {len(self.differences)} difference(s) in {len(changed)} of {n} artifacts; "
                f"first: {first}")

    def fix(self) -> str | None:
        if self.verdict == ERROR:
            return ("give two readable directories of artifacts (e.g. a known-good copy and "
                    "pxe/static/blobs/internal/x86_64 of your build)")
        if self.differences:
            return FIXES[self.differences[0].category]
        return None

    def to_dict(self, with_facts: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verdict": self.verdict, "exit_code": self.exit_code, "ref_dir": self.ref_dir, "dir": self.dir,
            "summary": self.summary(), "error": self.error, "fix": self.fix(),
            "differences": [d.to_dict() for d in self.differences],
            "files": [f.to_dict() for f in self.files], "seconds": round(self.seconds, 3),
        }
        if with_facts:
            out["ref_facts"], out["dir_facts"] = self.ref_facts, self.dir_facts
        return out

    def text(self) -> str:
        """The terminal report: verdict, differences (most relevant first), script diffs, files."""
        lines = [f"{self.verdict}: REF {self.ref_dir}", f"{' ' * len(self.verdict)}  DIR {self.dir}"]
        if self.error:
            lines.append(f"error: {self.error}")
        if self.differences:
            lines.append("differences (most boot-relevant first):")
            for i, d in enumerate(self.differences, 1):
                lines.append(f"  {i}. [{d.category}] {d.sentence}")
            for d in self.differences:
                if d.diff:
                    lines.append(f"{d.category} diff ({d.file}):")
                    lines += ["  " + ln for ln in d.diff.splitlines()]
        if self.files:
            lines.append("files:")
            w = max(len(f.name) for f in self.files)
            for f in self.files:
                state = "equal" if f.equal else ("only in REF" if not f.in_dir else
                                                 "only in DIR" if not f.in_ref else "differs")
                lines.append(f"  {f.name:<{w}}  {f.kind:11} {_size(f.ref_size):>10} {_size(f.dir_size):>10}  {state}")
        if self.fix() and self.verdict != SAME:
            lines.append(f"fix: {self.fix()}")
        lines.append(f"({self.seconds:.2f} s)")
        return "\n".join(lines)

    def to_result(self, step: str = STEP) -> StepResult:
        """A StepResult named `step` for notebooks and reports (PASS = SAME, FAIL = DIFFERENT, ERROR)."""
        import pandas as pd

        first = self.differences[0].sentence if self.differences else None
        tables: dict[str, Any] = {}
        if self.differences:
            tables["differences"] = pd.DataFrame(
                [{"#": i, "file": d.file, "what": d.category, "difference": d.sentence}
                 for i, d in enumerate(self.differences, 1)], columns=["#", "file", "what", "difference"])
        for d in self.differences:
            if d.diff:
                tables[f"{d.category} diff ({d.file})"] = pd.DataFrame(
                    {"line": d.diff.splitlines()}, columns=["line"])
        if self.files:
            tables["files"] = pd.DataFrame(
                [{"file": f.name, "kind": f.kind, "REF": _presence(f.in_ref, f.ref_size),
                  "DIR": _presence(f.in_dir, f.dir_size), "sha256 REF": (f.ref_sha256 or "")[:16],
                  "sha256 DIR": (f.dir_sha256 or "")[:16], "equal": f.equal} for f in self.files],
                columns=["file", "kind", "REF", "DIR", "sha256 REF", "sha256 DIR", "equal"])
        return StepResult(step, self.status, self.summary(), cause=self.error or first, fix=self.fix(),
                          details=self.to_dict(), tables=tables)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _delta(a: int | None, b: int | None) -> str:
    """'70.3 MB -> 70.3 MB, -334 bytes'."""
    if a is None or b is None:
        return f"{_size(a)} -> {_size(b)}"
    return f"{_size(a)} -> {_size(b)}, {b - a:+,} bytes"


def _presence(present: bool, size: int | None) -> str:
    return _size(size) if present else "absent"


# -- the comparison ------------------------------------------------------------------------------

def _readable_dir(path: Path, label: str) -> str | None:
    if not path.exists():
        return f"{label} {path} does not exist"
    if not path.is_dir():
        return f"{label} {path} is not a directory"
    if not os.access(path, os.R_OK | os.X_OK):
        return f"{label} {path} cannot be read (permission denied)"
    return None


def compare_artifacts(ref_dir: str | os.PathLike[str], dir: str | os.PathLike[str],  # noqa: A002
                      use_cache: bool = True) -> Comparison:
    """Compare the artifact set in `dir` with the reference set in `ref_dir` (never raises for bad input)."""
    t0 = time.monotonic()
    ref_p, dir_p = Path(ref_dir), Path(dir)
    cmp = Comparison(str(ref_p), str(dir_p), ERROR)
    problem = _readable_dir(ref_p, "REF") or _readable_dir(dir_p, "DIR")
    if problem:
        cmp.error = problem
        cmp.seconds = time.monotonic() - t0
        return cmp
    try:
        if not artifact_names(ref_p) and not artifact_names(dir_p):
            cmp.error = f"neither {ref_p} nor {dir_p} holds any artifact"
            cmp.seconds = time.monotonic() - t0
            return cmp
        cmp.ref_facts = set_facts(ref_p, use_cache=use_cache)
        cmp.dir_facts = set_facts(dir_p, use_cache=use_cache)
    except OSError as exc:
        cmp.error = f"cannot list a directory: {exc.strerror or exc} ({exc.filename})"
        cmp.seconds = time.monotonic() - t0
        return cmp
    unreadable = [f"{label} {f['name']}: {f['error']}" for label, facts in (("REF", cmp.ref_facts),
                                                                          ("DIR", cmp.dir_facts))
                  for f in facts.values() if f.get("kind") == "error"]
    names = sorted(set(cmp.ref_facts) | set(cmp.dir_facts), key=_file_order)
    for name in names:
        a, b = cmp.ref_facts.get(name), cmp.dir_facts.get(name)
        kind = (a or b or {}).get("kind", "file")
        cmp.files.append(FileRow(name, kind, a is not None, b is not None, (a or {}).get("size"),
                                 (b or {}).get("size"), (a or {}).get("sha256"), (b or {}).get("sha256")))
    if unreadable:
        cmp.error = "; ".join(unreadable)
        cmp.seconds = time.monotonic() - t0
        return cmp
    diffs: list[Difference] = []
    for name in names:
        diffs += file_differences(name, cmp.ref_facts.get(name), cmp.dir_facts.get(name))
    order = {n: i for i, n in enumerate(names)}
    cmp.differences = sorted(diffs, key=lambda d: (d.rank, order[d.file]))
    cmp.verdict = SAME if all(f.equal for f in cmp.files) and not cmp.differences else DIFFERENT
    cmp.seconds = time.monotonic() - t0
    return cmp


def _file_order(name: str) -> tuple[int, str]:
    """iPXE first, then UKIs, roots, manifests, the rest (the order a boot uses them)."""
    n = name.lower()
    if n.endswith((".kpxe", ".pxe", ".lkrn")) or n.startswith(("ipxe", "golan", "snp", "undionly")):
        return (0, n)
    if n.endswith(".efi"):
        return (1, n)
    if ".cpio" in n or n.endswith((".root", ".initrd")):
        return (2, n)
    if n.endswith(".manifest"):
        return (3, n)
    return (4, n)


def file_differences(name: str, a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[Difference]:
    """Every difference between the facts `a` (REF) and `b` (DIR) of one artifact."""
    if a is None or b is None:
        present = a or b or {}
        where, other = ("REF", "DIR") if b is None else ("DIR", "REF")
        what = _kind_words(present)
        category = "missing artifact" if present.get("kind") in BOOT_KINDS else "missing file"
        if present.get("kind") == "ipxe-script":
            story = script_story(present["ipxe-script"])
            what += f" that {story}" if story.startswith("chains") else ""
        return [Difference(category, name, f"{name} is only in {where} ({what}, "
                           f"{_size(present.get('size'))}); {other} has no such file",
                           ref=a is not None, dir=b is not None)]
    if a.get("sha256") == b.get("sha256"):
        return []
    out: list[Difference] = []
    ka, kb = a.get("kind"), b.get("kind")
    if ka != kb:
        out.append(Difference("kind", name, f"{name}: REF is {_kind_words(a)}, DIR is {_kind_words(b)}",
                              ref=ka, dir=kb))
    elif ka == "ipxe":
        out += _ipxe_differences(name, a["ipxe"], b["ipxe"])
    elif ka == "uki":
        out += _uki_differences(name, a["uki"], b["uki"])
    elif ka == "cpio":
        out += _cpio_differences(name, "cpio root", "root archive", a["cpio"], b["cpio"])
    elif ka == "manifest":
        out += _manifest_differences(name, a["manifest"], b["manifest"])
    elif ka == "ipxe-script":
        out += _script_file_differences(name, a["ipxe-script"], b["ipxe-script"])
    elif ka == "kernel":
        ra, rb = a["kernel"].get("kernel_release"), b["kernel"].get("kernel_release")
        if ra != rb:
            out.append(Difference("kernel version", name, f"{name}: kernel {ra} in REF, {rb} in DIR",
                                  ref=ra, dir=rb))
    if not out:
        sa, sb = a.get("size") or 0, b.get("size") or 0
        delta = sb - sa
        size_words = "same size" if delta == 0 else f"size {_delta(sa, sb)}"
        read = {"ipxe": "version, embedded script, features", "uki": "cmdline, kernel, os-release, initrd",
                "cpio": "compression, file count, /init", "manifest": "packages"}.get(str(ka))
        tail = f"; none of the facts read here ({read}) differ" if read else ""
        out.append(Difference("bytes", name, f"{name}: the bytes differ ({size_words}){tail}",
                              ref=a.get("sha256"), dir=b.get("sha256")))
    return out


def _kind_words(f: dict[str, Any]) -> str:
    kind = f.get("kind")
    return {"ipxe": "an iPXE binary", "uki": "a UKI", "cpio": "a cpio archive", "manifest": "an mkosi manifest",
            "kernel": "a Linux kernel", "ipxe-script": "an iPXE script", "pe": "an EFI binary (not iPXE, not a UKI)", "file": "a file",
            "error": "unreadable"}.get(str(kind), str(kind))


def script_story(f: dict[str, Any]) -> str:
    """What an iPXE binary does first, in words: '<chains URL> only when DHCP gives option 43.70'."""
    state = f.get("script_state")
    if state == "none":
        if f.get("container") == "efi":
            return "has no embedded script (stock iPXE: it looks for autoexec.ipxe beside itself, then boots what DHCP names)"
        return "has no embedded script (stock iPXE: it boots what DHCP names)"
    if state != "embedded":
        return f"has no embedded script that can be read here ({f.get('note') or 'unknown layout'})"
    urls = f.get("chain_urls") or []
    if urls:
        words = "chains " + " then ".join(urls)
        return words + (" only when DHCP gives option 43.70" if f.get("needs_43_70") else
                        " without needing DHCP option 43.70")
    lines = len((f.get("script") or "").splitlines())
    return f"has an embedded script ({lines} lines) that chains no URL" + (
        " and reads DHCP option 43.70" if f.get("needs_43_70") else "")


def _script_file_differences(name: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    sa, sb = script_story(a), script_story(b)
    diff = "\n".join(difflib.unified_diff((a.get("script") or "").splitlines(), (b.get("script") or "").splitlines(),
                                          fromfile=f"REF/{name}", tofile=f"DIR/{name}", lineterm=""))
    sentence = (f"{name}: the iPXE script differs: REF {sa}; DIR {sb}" if sa != sb else
                f"{name}: the iPXE script differs (see the diff); both {sa}")
    return [Difference("script file", name, sentence, ref=a.get("script_sha256"), dir=b.get("script_sha256"),
                       diff=diff or None)]


def _ipxe_differences(name: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    out: list[Difference] = []
    if (a.get("script_state"), a.get("script")) != (b.get("script_state"), b.get("script")):
        sa, sb = script_story(a), script_story(b)
        diff = "\n".join(difflib.unified_diff((a.get("script") or "").splitlines(),
                                              (b.get("script") or "").splitlines(),
                                              fromfile=f"REF/{name} (embedded script)",
                                              tofile=f"DIR/{name} (embedded script)", lineterm=""))
        if sa != sb:
            sentence = f"{name}: the embedded script differs: REF {sa}; DIR {sb}"
        else:
            n = sum(1 for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---")))
            sentence = f"{name}: the embedded script differs ({n} lines changed, see the diff); both {sa}"
        out.append(Difference("embedded script", name, sentence, ref=a.get("script_sha256"),
                              dir=b.get("script_sha256"), diff=diff or None))
    na, nb = bool(a.get("needs_43_70")), bool(b.get("needs_43_70"))
    if na != nb:
        needs, lacks = ("REF", "DIR") if na else ("DIR", "REF")
        lack_words = (f"{lacks}'s does not" if (b if na else a).get("script_state") == "embedded"
                      else f"{lacks} has no embedded script")
        out.append(Difference("DHCP option 43.70", name,
                              f"{name}: {needs}'s script needs DHCP option 43.70 (the machine uuid: "
                              f"carbide-dhcp sends it, QEMU user networking cannot), {lack_words}",
                              ref=na, dir=nb))
    ua, ub = a.get("chain_urls") or [], b.get("chain_urls") or []
    if ua != ub:
        out.append(Difference("chained URL", name, f"{name}: the chained URL differs: REF "
                              f"{' then '.join(ua) or 'chains nothing'}; DIR {' then '.join(ub) or 'chains nothing'}",
                              ref=ua, dir=ub))
    va, vb = a.get("version"), b.get("version")
    if va != vb or a.get("banner") != b.get("banner"):
        out.append(Difference("iPXE version", name, f"{name}: iPXE version differs: REF "
                              f"{_quote(a.get('banner') or va)}; DIR {_quote(b.get('banner') or vb)}",
                              ref=va, dir=vb))
    fa, fb = set(a.get("features") or []), set(b.get("features") or [])
    if fa != fb:
        parts = []
        if fa - fb:
            parts.append("seen only in REF: " + ", ".join(f"{x} ({_FEATURE_WHAT.get(x, x)})" for x in sorted(fa - fb)))
        if fb - fa:
            parts.append("seen only in DIR: " + ", ".join(f"{x} ({_FEATURE_WHAT.get(x, x)})" for x in sorted(fb - fa)))
        out.append(Difference("iPXE features", name, f"{name}: features {'; '.join(parts)}",
                              ref=sorted(fa), dir=sorted(fb)))
    return out


def _quote(v: Any) -> str:
    return f"'{v}'" if v else "(no version found)"


def _uki_differences(name: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    out: list[Difference] = []
    if a.get("problem") or b.get("problem"):
        return out
    if a.get("cmdline") != b.get("cmdline"):
        out.append(Difference("kernel cmdline", name, f"{name}: the kernel command line differs: REF "
                              f"{_quote(a.get('cmdline'))}; DIR {_quote(b.get('cmdline'))}",
                              ref=a.get("cmdline"), dir=b.get("cmdline")))
    if a.get("kernel_release") != b.get("kernel_release"):
        out.append(Difference("kernel version", name, f"{name}: kernel {a.get('kernel_release')} in REF, "
                              f"{b.get('kernel_release')} in DIR", ref=a.get("kernel_release"),
                              dir=b.get("kernel_release")))
    if a.get("osrel_pretty_name") != b.get("osrel_pretty_name") or a.get("osrel") != b.get("osrel"):
        out.append(Difference("os-release", name, f"{name}: the image's os-release differs: REF "
                              f"{_quote(a.get('osrel_pretty_name'))}; DIR {_quote(b.get('osrel_pretty_name'))}",
                              ref=a.get("osrel"), dir=b.get("osrel")))
    ia, ib = a.get("initrd") or {}, b.get("initrd") or {}
    if a.get("initrd_size") != b.get("initrd_size"):
        da, db = a.get("initrd_size"), b.get("initrd_size")
        out += _cpio_differences(name, "initrd", "initrd", ia, ib, size_note=f"size {_delta(da, db)}")
    sa = [s["name"] for s in a.get("sections", [])]
    sb = [s["name"] for s in b.get("sections", [])]
    if sa != sb:
        out.append(Difference("UKI sections", name, f"{name}: PE sections differ: REF {' '.join(sa)}; "
                              f"DIR {' '.join(sb)}", ref=sa, dir=sb))
    return out


def _init_words(init: dict[str, Any]) -> str:
    if not init.get("exists"):
        return "no /init"
    if init.get("type") == "symlink":
        return f"/init -> {init.get('target')}" + ("" if init.get("target_in_archive", True) else
                                                    " (target not in the archive)")
    return f"/init ({init.get('type')})"


def _cpio_differences(name: str, category: str, label: str, a: dict[str, Any], b: dict[str, Any],
                      size_note: str = "") -> list[Difference]:
    parts = []
    if size_note:
        parts.append(size_note)
    if a.get("problem") or b.get("problem") or a.get("error") or b.get("error"):
        parts.append(f"REF: {a.get('problem') or a.get('error') or 'read'}; "
                     f"DIR: {b.get('problem') or b.get('error') or 'read'}")
    else:
        if a.get("init") != b.get("init"):
            parts.append(f"REF has {_init_words(a.get('init') or {})}, DIR has {_init_words(b.get('init') or {})}")
        if a.get("compression") != b.get("compression"):
            parts.append(f"compression {a.get('compression')} -> {b.get('compression')}")
        if a.get("files") != b.get("files"):
            parts.append(f"{a.get('files')} -> {b.get('files')} files")
        if a.get("unpacked_size") != b.get("unpacked_size"):
            parts.append(f"unpacked {_size(a.get('unpacked_size'))} -> {_size(b.get('unpacked_size'))}")
    if not parts:
        return []
    if parts == [size_note]:
        parts.append("its /init, file count and unpacked size are the same")
    return [Difference(category, name, f"{name}: the {label} differs: {'; '.join(parts)}",
                       ref={k: a.get(k) for k in ("init", "files", "unpacked_size", "compression")},
                       dir={k: b.get(k) for k in ("init", "files", "unpacked_size", "compression")})]


def _manifest_differences(name: str, a: dict[str, Any], b: dict[str, Any]) -> list[Difference]:
    from .build.manifest import Package, diff

    pa = {k: Package(k, v) for k, v in (a.get("packages") or {}).items()}
    pb = {k: Package(k, v) for k, v in (b.get("packages") or {}).items()}
    d = diff(pa, pb)
    if d.empty():
        return []
    examples = ([f"+{p.name} {p.version}" for p in d.added[:3]] + [f"-{p.name} {p.version}" for p in d.removed[:3]]
                + [f"{x.name} {x.version} -> {y.version}" for x, y in d.changed[:3]])
    return [Difference("packages", name, f"{name}: packages differ: {len(d.added)} only in DIR, "
                       f"{len(d.removed)} only in REF, {len(d.changed)} at another version "
                       f"(e.g. {', '.join(examples)})",
                       ref={"removed": [p.name for p in d.removed]},
                       dir={"added": [p.name for p in d.added],
                            "changed": [[x.name, x.version, y.version] for x, y in d.changed]})]


# -- notebook and CLI ----------------------------------------------------------------------------

def compare_section(reference_dir: str | os.PathLike[str] | None, dir: str | os.PathLike[str]) -> StepResult:  # noqa: A002
    """Notebook 04's "compared with a reference set" part: PASS (SAME or not asked), FAIL, ERROR."""
    if not reference_dir or not str(reference_dir).strip():
        return StepResult(STEP, Status.PASS, "not asked: reference_dir is empty (set it to a known-good "
                          "artifact directory to compare your build with it)")
    return compare_artifacts(reference_dir, dir).to_result()


def main_compare(ref: str, dir: str, as_json: bool = False) -> int:  # noqa: A002
    """`runbook compare-artifacts REF DIR [--json]`: prints the report; returns 0/1/2."""
    cmp = compare_artifacts(ref, dir)
    if as_json:
        print(json.dumps(cmp.to_dict(with_facts=True), indent=2, sort_keys=False, default=str))
    else:
        print(cmp.text())
    return cmp.exit_code
