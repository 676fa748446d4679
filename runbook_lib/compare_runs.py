"""Compared with the last good run: what changed between two run records, and where they diverge.

:func:`compare_runs` takes this run's :class:`~runbook_lib.history.Record` and the last good one
(:func:`runbook_lib.history.last_good`, or None) and says, most boot-relevant first: artifacts
changed, added or removed (sha256, size delta), packages added/removed/changed (the manifest
diff), the embedded iPXE script / 43.70 dependency / iPXE version / kernel version / kernel
command line when the facts differ, and milestone times (a table with the delta and a "slower"
flag above a threshold), the first milestone that differs, and for a FAIL after a PASS the
sentence "last good <when>: it reached <milestone>; this run stopped at <milestone>: <first
failure>". The result is a section (:meth:`RunComparison.to_result`) and one line
(:attr:`RunComparison.sentence`); it never decides a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .build import manifest as mani
from .history import Record, when_text
from .report.render import human_size
from .result import Status, StepResult

DEFAULT_SLOWER = 0.25  # a milestone 25% later than in the last good run is flagged
MIN_SLOWER_S = 1.0  # ... when it is also at least this many seconds later (early milestones jitter)
NO_GOOD = "no earlier good run of this tree with these parameters"
SECTION = "compared with last good"

# (label, fact key): boot-relevant facts of iPXE binaries and UKIs, in the order they matter.
FACTS: tuple[tuple[str, str], ...] = (
    ("embedded iPXE script", "script_sha256"),
    ("embedded iPXE script", "script_state"),
    ("needs DHCP option 43.70", "needs_43_70"),
    ("iPXE chains", "chain_urls"),
    ("iPXE version", "version"),
    ("kernel version", "kernel_version"),
    ("kernel version", "kernel_release"),  # runbook_lib.inspect.uki's name for it
    ("kernel command line", "cmdline"),
    ("OS (PRETTY_NAME)", "pretty_name"),
    ("OS (PRETTY_NAME)", "osrel_pretty_name"),
)
_NESTS = ("ipxe", "uki", "cpio", "manifest", "facts")


@dataclass
class ArtifactChange:
    name: str
    change: str  # changed | added | removed
    size_before: int | None = None
    size_after: int | None = None
    sha_before: str = ""
    sha_after: str = ""

    @property
    def delta(self) -> int | None:
        if self.size_before is None or self.size_after is None:
            return None
        return self.size_after - self.size_before

    def short(self) -> str:
        if self.change != "changed":
            return f"{self.name} {self.change}"
        d = self.delta
        if not d:
            return f"{self.name} (same size, other content)"
        return f"{self.name} {'+' if d > 0 else '-'}{human_size(abs(d))}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "change": self.change, "size_before": self.size_before,
                "size_after": self.size_after, "size_delta": self.delta,
                "sha256_before": self.sha_before, "sha256_after": self.sha_after}


@dataclass
class FactChange:
    artifact: str
    what: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "what": self.what, "before": self.before, "after": self.after}


@dataclass
class MilestoneDelta:
    name: str
    label: str
    before: float | None
    after: float | None
    flag: str = ""  # slower | missing | new | ""

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return round(self.after - self.before, 2)

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        if d is None or not self.before:
            return None
        return round(100.0 * d / self.before, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"milestone": self.name, "label": self.label, "last_good_s": self.before,
                "this_run_s": self.after, "delta_s": self.delta, "delta_pct": self.delta_pct, "flag": self.flag}


@dataclass
class RunComparison:
    current: Record
    last_good: Record | None
    threshold: float = DEFAULT_SLOWER
    artifacts: list[ArtifactChange] = field(default_factory=list)
    packages: mani.ManifestDiff | None = None
    facts: list[FactChange] = field(default_factory=list)
    milestones: list[MilestoneDelta] = field(default_factory=list)
    first_difference: str | None = None
    sentence: str = ""

    @property
    def slower(self) -> list[MilestoneDelta]:
        return [m for m in self.milestones if m.flag == "slower"]

    def changed_anything(self) -> bool:
        return bool(self.artifacts or (self.packages and not self.packages.empty()) or self.facts)

    def to_dict(self) -> dict[str, Any]:
        g = self.last_good
        return {"sentence": self.sentence, "threshold": self.threshold,
                "last_good": None if g is None else {"id": g.id, "finished": g.finished, "verdict": g.verdict,
                                                     "reached": g.reached,
                                                     "path": str(g.path) if g.path else None},
                "current": {"id": self.current.id, "verdict": self.current.verdict, "reached": self.current.reached},
                "artifacts": [a.to_dict() for a in self.artifacts],
                "packages": None if self.packages is None else {
                    "added": [p.name for p in self.packages.added],
                    "removed": [p.name for p in self.packages.removed],
                    "changed": [[b.name, b.version, a.version] for b, a in self.packages.changed]},
                "facts": [f.to_dict() for f in self.facts],
                "milestones": [m.to_dict() for m in self.milestones],
                "first_difference": self.first_difference}

    # ---- display ------------------------------------------------------------------------
    def tables(self) -> dict[str, Any]:
        import pandas as pd

        out: dict[str, Any] = {}
        if self.last_good is None:
            return out
        if self.facts:
            out["boot-relevant facts changed"] = pd.DataFrame(
                [{"artifact": f.artifact, "what": f.what, "last good": _show(f.before), "this run": _show(f.after)}
                 for f in self.facts], columns=["artifact", "what", "last good", "this run"])
        out["artifacts changed"] = pd.DataFrame(
            [{"artifact": a.name, "change": a.change, "last good": human_size(a.size_before),
              "this run": human_size(a.size_after),
              "size delta": "" if a.delta is None else f"{'+' if a.delta >= 0 else '-'}{human_size(abs(a.delta))}",
              "sha256 last good": a.sha_before[:16], "sha256 this run": a.sha_after[:16]}
             for a in self.artifacts],
            columns=["artifact", "change", "last good", "this run", "size delta", "sha256 last good",
                     "sha256 this run"])
        if self.packages is not None:
            out["package changes"] = self.packages.table()
        if self.milestones:
            out["milestones"] = pd.DataFrame(
                [{"milestone": m.label, "last good s": m.before, "this run s": m.after, "delta s": m.delta,
                  "delta %": m.delta_pct, "flag": m.flag} for m in self.milestones],
                columns=["milestone", "last good s", "this run s", "delta s", "delta %", "flag"])
        return out

    def to_result(self, step_title: str, status: Status = Status.PASS) -> StepResult:
        """The section "<step_title>: compared with last good" (PASS: a comparison decides nothing);
        a title that already ends with "compared with last good" is kept as it is."""
        g = self.last_good
        details = self.to_dict()
        if g is not None and self.first_difference:
            details["first_difference"] = self.first_difference
        logs = {"last good record": str(g.path)} if g is not None and g.path else {}
        if self.current.path:
            logs["this run's record"] = str(self.current.path)
        title = step_title if step_title.endswith(SECTION) else f"{step_title}: {SECTION}"
        return StepResult(title, status, self.sentence, details=details,
                          tables=self.tables(), logs=logs)


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    text = "" if v is None else str(v)
    return text if len(text) <= 120 else text[:117] + "..."


def _fact(d: Mapping[str, Any], key: str) -> Any:
    """A fact of one artifact, at the top level or in a nested block (ipxe/uki/cpio/...)."""
    if key in d:
        return d[key]
    for nest in _NESTS:
        sub = d.get(nest)
        if isinstance(sub, Mapping) and key in sub:
            return sub[key]
    return None


def _packages(d: Mapping[str, Any]) -> dict[str, mani.Package] | None:
    raw = _fact(d, "packages")
    if isinstance(raw, Mapping):
        return {str(k): mani.Package(str(k), str(v.get("version", "")) if isinstance(v, Mapping) else str(v))
                for k, v in raw.items()}
    if isinstance(raw, list):
        out = {}
        for p in raw:
            if isinstance(p, Mapping) and "name" in p:
                out[str(p["name"])] = mani.Package(str(p["name"]), str(p.get("version", "")),
                                                   str(p.get("architecture", p.get("arch", ""))))
        return out
    return None


def _artifact_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[ArtifactChange]:
    out: list[ArtifactChange] = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        if b is None and a is not None:
            out.append(ArtifactChange(name, "added", None, a.get("size"), "", str(a.get("sha256", ""))))
        elif a is None and b is not None:
            out.append(ArtifactChange(name, "removed", b.get("size"), None, str(b.get("sha256", "")), ""))
        elif a is not None and b is not None and (a.get("sha256") != b.get("sha256") or a.get("size") != b.get("size")):
            out.append(ArtifactChange(name, "changed", b.get("size"), a.get("size"),
                                      str(b.get("sha256", "")), str(a.get("sha256", ""))))
    order = {"changed": 0, "removed": 1, "added": 2}
    return sorted(out, key=lambda c: (order[c.change], c.name))


def _fact_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FactChange]:
    out: list[FactChange] = []
    for name in sorted(set(before) & set(after)):
        b, a = before[name], after[name]
        if b.get("sha256") == a.get("sha256"):
            continue  # same bytes, same facts
        seen: set[str] = set()
        for label, key in FACTS:
            vb, va = _fact(b, key), _fact(a, key)
            if (vb is None and va is None) or vb == va or label in seen:
                continue
            seen.add(label)
            out.append(FactChange(name, label, vb, va))
    rank = {label: i for i, (label, _) in enumerate(FACTS)}
    return sorted(out, key=lambda f: (rank.get(f.what, 99), f.artifact))


def _package_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> mani.ManifestDiff | None:
    diffs = []
    for name in sorted(set(before) & set(after)):
        pb, pa = _packages(before[name]), _packages(after[name])
        if pb is not None and pa is not None:
            diffs.append(mani.diff(pb, pa))
    if not diffs:
        return None
    out = mani.ManifestDiff()
    for d in diffs:
        out.added += d.added
        out.removed += d.removed
        out.changed += d.changed
    return out


def _first(ms: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for m in ms:
        out.setdefault(str(m.get("name")), m)
    return out


def _milestones(before: list[dict[str, Any]], after: list[dict[str, Any]], threshold: float,
                min_s: float) -> tuple[list[MilestoneDelta], str | None]:
    fb, fa = _first(before), _first(after)
    order = list(fa) + [n for n in fb if n not in fa]
    rows = []
    for name in order:
        b, a = fb.get(name), fa.get(name)
        label = str((a or b or {}).get("label") or name)
        row = MilestoneDelta(name, label, None if b is None else b.get("seconds"),
                             None if a is None else a.get("seconds"))
        if a is None:
            row.flag = "missing"
        elif b is None:
            row.flag = "new"
        elif row.delta is not None and row.before and row.delta >= min_s and row.delta / row.before > threshold:
            row.flag = "slower"
        rows.append(row)
    # the first milestone that differs: walk both sequences in order
    names_b = [str(m.get("name")) for m in before]
    names_a = [str(m.get("name")) for m in after]
    labels = {str(m.get("name")): str(m.get("label") or m.get("name")) for m in before + after}
    first = None
    for i in range(max(len(names_b), len(names_a))):
        nb = names_b[i] if i < len(names_b) else None
        na = names_a[i] if i < len(names_a) else None
        if nb == na:
            continue
        if na is None and nb is not None:
            s = fb[nb].get("seconds")
            first = f"this run never reached {labels[nb]}" + (f" (the last good run did at {s} s)" if s is not None else "")
        elif nb is None and na is not None:
            first = f"this run reached {labels[na]}, which the last good run did not"
        elif nb is not None and na is not None and nb not in names_a:
            first = f"this run never reached {labels[nb]}: after {labels[names_a[i - 1]] if i else 'the start'} " \
                    f"it went to {labels[na]}"
        else:
            first = f"the order differs at milestone {i + 1}: last good {labels.get(nb or '', nb)}, " \
                    f"this run {labels.get(na or '', na)}"
        break
    return rows, first


def _label(rec: Record, name: str | None) -> str:
    if not name:
        return "no milestone"
    for m in rec.milestones:
        if m.get("name") == name:
            return str(m.get("label") or name)
    return name


def _timing_phrase(rows: list[MilestoneDelta], threshold: float) -> str:
    """'login prompt 45.1 s (last good 44.0 s, +2.5%)' plus the slower ones."""
    both = [m for m in rows if m.before is not None and m.after is not None]
    if not both:
        return ""
    last = both[-1]
    pct = f", {last.delta_pct:+.0f}%" if last.delta_pct is not None else ""
    out = f"{last.label} at {last.after:.1f} s (last good {last.before:.1f} s{pct})"
    slow = [m for m in rows if m.flag == "slower"]
    if slow:
        out += (f"; {len(slow)} milestone(s) more than {threshold * 100:.0f}% slower: "
                + ", ".join(f"{m.label} {m.delta_pct:+.0f}%" for m in slow[:3]))
    return out


def _changes_phrase(c: RunComparison) -> str:
    bits = []
    if c.artifacts:
        n = len(c.artifacts)
        shown = ", ".join(a.short() for a in c.artifacts[:4]) + (", ..." if n > 4 else "")
        bits.append(f"{n} artifact{'s' if n != 1 else ''} changed ({shown})")
    else:
        bits.append("no artifact changed")
    if c.packages is not None and not c.packages.empty():
        p = c.packages
        bits.append(f"packages: {len(p.added)} added, {len(p.removed)} removed, {len(p.changed)} changed")
    seen = []
    for f in c.facts:
        if f.what not in seen:
            seen.append(f.what)
    if seen:
        bits.append(", ".join(f"{w} changed" for w in seen[:4]))
    return "; ".join(bits)


def compare_runs(current: Record, last_good: Record | None, slower: float = DEFAULT_SLOWER,
                 min_slower_s: float = MIN_SLOWER_S) -> RunComparison:
    """Compare this run with the last good one (None: there is none)."""
    c = RunComparison(current, last_good, slower)
    if last_good is None:
        c.sentence = NO_GOOD
        return c
    c.artifacts = _artifact_changes(last_good.artifacts, current.artifacts)
    c.facts = _fact_changes(last_good.artifacts, current.artifacts)
    c.packages = _package_diff(last_good.artifacts, current.artifacts)
    c.milestones, c.first_difference = _milestones(last_good.milestones, current.milestones, slower, min_slower_s)
    when = when_text(last_good.finished)
    if current.verdict != "PASS":
        ff = current.first_failure or {}
        cause = f"{ff.get('kind')}: {ff.get('text')}" if ff.get("text") else (ff.get("kind") or current.summary)
        c.sentence = (f"last good {when}: it reached {_label(last_good, last_good.reached)}; "
                      f"this run stopped at {_label(current, current.reached)}: {cause}")
        changes = _changes_phrase(c)
        c.sentence += f" — since then: {changes}"
    else:
        c.sentence = f"compared with the last good run: {_changes_phrase(c)}"
        timing = _timing_phrase(c.milestones, slower)
        if timing:
            c.sentence += f"; {timing}"
        elif current.build and last_good.build and current.build.get("duration_s") is not None \
                and last_good.build.get("duration_s") is not None:
            c.sentence += (f"; build {current.build['duration_s']:.0f} s "
                           f"(last good {last_good.build['duration_s']:.0f} s)")
        c.sentence += f" (last good run: {when})"
    return c
