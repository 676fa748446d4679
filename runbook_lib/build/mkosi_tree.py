"""Which mkosi a carbide tree's build runs, and what that mkosi needs on this host.

A current carbide tree's ``pxe/Makefile.toml`` calls ``${REPO_ROOT}/pxe/mkosi/bin/mkosi``: a
pinned mkosi (a git submodule, v25 today), not the distribution's ``mkosi`` (Debian 12 ships
mkosi 14). Older trees call the distribution's. What the build needs on the host depends on
*that* mkosi's version and on the tree's configuration (``pxe/mkosi.conf``, ``mkosi.conf.d/``
and the profiles the plan passes with ``--profile``), so this module reads both and derives the
host requirements from mkosi's own documentation for the version at hand.

Sources, named in each rule below:

- **v25 docs**: mkosi 25.3 ``mkosi/resources/man/mkosi.1.md`` (sections "Configuration
  Settings", "[Output] Section", "[Content] Section", "[Build] Section", "[Match] Section",
  "Supported distributions", "REQUIREMENTS") and its ``NEWS.md``;
  v25 source where the docs are silent about a binary's name (``mkosi/installer/apt.py``,
  ``mkosi/distributions/{debian,ubuntu}.py``, ``mkosi/__init__.py``: ``build_uki``/``check_tools``).
- **v14 docs**: Debian 12's mkosi 14 ``/usr/share/doc/mkosi/mkosi.md.gz`` ("Supported output
  formats", ``Format=``, ``CompressOutput=``, "REQUIREMENTS") and the NEWS entries for v14/v15/v16
  (as carried in mkosi 25.3's ``NEWS.md``).

Nothing here touches the network. Probes: one ``--version`` per distinct executable (the
mkosi itself, the distribution's mkosi when the tree pins its own, the launcher's python3,
ukify when a rule needs its version) and one ``apt-cache policy`` for the packages that are
missing, all run concurrently.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import textwrap
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .. import shell
from ..requirements import MKOSI_MIN, Check, apt_fix, parse_version, version_tuple

NEEDED_FOR = "step 2: build (mkosi)"
PROBE_TIMEOUT_S = 20.0

# Keys read from the configuration (everything else is carried along but not interpreted).
SETTINGS_OF_INTEREST = ("Distribution", "Release", "Architecture", "Format", "Bootable",
                        "ToolsTree", "ToolsTreeDistribution", "ToolsTreeRelease", "CompressOutput",
                        "UnifiedKernelImages", "Bootloader", "Initrds", "Packages", "Profiles")
# Settings that take a collection of values: later assignments append, an empty one resets
# (v25 docs, "Configuration Settings").
COLLECTION_SETTINGS = frozenset({"Packages", "Initrds", "Profiles", "Repositories", "BuildPackages",
                                 "KernelCommandLine", "Environment", "ToolsTreePackages"})

APT_FAMILY = frozenset({"debian", "ubuntu", "kali"})
RPM_FAMILY = frozenset({"fedora", "centos", "rhel", "rhel-ubi", "mageia", "openmandriva", "rocky",
                        "alma", "azure"})
# Archive keyrings mkosi (>= 15) hands apt as Signed-By, looked up on the host (or in the tools
# tree when one is used): v25 source mkosi/distributions/debian.py and ubuntu.py; NEWS v15
# "Apt now uses the keyring from the host"; v25 docs REQUIREMENTS name the packages.
KEYRINGS = {
    "debian": ("/usr/share/keyrings/debian-archive-keyring.gpg", "debian-archive-keyring"),
    "ubuntu": ("/usr/share/keyrings/ubuntu-archive-keyring.gpg", "ubuntu-keyring"),
    "kali": ("/usr/share/keyrings/kali-archive-keyring.gpg", "kali-archive-keyring"),
}
# The package manager mkosi runs for a distribution (v25 docs "Supported distributions": apt for
# Debian/Kali/Ubuntu, dnf for the RPM distributions, pacman for Arch, zypper for openSUSE).
PACKAGE_MANAGERS: dict[str, tuple[tuple[str, str], ...]] = {
    "apt": (("apt-get", "apt"), ("dpkg", "dpkg")),
    "rpm": (("dnf", "dnf"),),
    "arch": (("pacman", "pacman-package-manager"),),
    "opensuse": (("zypper", "zypper"),),
}
COMPRESSORS = {"zstd": ("zstd", "zstd"), "xz": ("xz", "xz-utils"), "gz": ("gzip", "gzip"),
               "gzip": ("gzip", "gzip")}
STUB_PACKAGES = ("systemd-boot-efi", "systemd-boot")
TRUE = frozenset({"1", "yes", "true", "on"})
FALSE = frozenset({"0", "no", "false", "off"})


@dataclass(frozen=True)
class MkosiUse:
    """How the build plan calls mkosi."""

    argv0: str  # the executable as the plan calls it, ${VARS} expanded: "/abs/tree/pxe/mkosi/bin/mkosi" or "mkosi"
    profiles: tuple[str, ...]  # --profile values the plan passes (may be empty)
    tasks: tuple[str, ...]  # plan tasks that call it
    required: bool  # False when only conditional tasks call it
    condition: str = ""  # shown when not required


# ---- configuration ------------------------------------------------------------------------

@dataclass
class MkosiConfig:
    """The settings one mkosi invocation ends up with, and which file set each of them."""

    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # setting -> file (relative) that set it
    files: list[str] = field(default_factory=list)  # files read, in order
    notes: list[str] = field(default_factory=list)  # warnings: unevaluated matches, wrong sections

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def setting(self, name: str, value: str, where: str) -> None:
        if name in COLLECTION_SETTINGS:
            items = [v for v in re.split(r"[\s,]+", value) if v]
            self.lists[name] = [] if not value.strip() else self.lists.get(name, []) + items
        elif value == "":
            self.values.pop(name, None)  # the empty assignment resets to the default
        else:
            self.values[name] = value
        self.origin[name] = where


def _parse(text: str) -> list[tuple[int, str, str, str]]:
    """``(section number, section, setting, value)`` in file order (see :func:`parse_ini`)."""
    out: list[tuple[int, str, str, str]] = []
    section, number = "", -1
    key: str | None = None
    value: str | None = None
    for raw in textwrap.dedent(text).splitlines():
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        if key is not None and value is not None and line[0].isspace():
            value = f"{value}\n{line.strip()}" if value else line.strip()
            continue
        if key is not None and value is not None:
            out.append((number, section, key, value))
            key = value = None
        line = line.strip()
        if line.startswith("["):
            if not line.endswith("]") or not line[1:-1].strip():
                raise ValueError(f"{line!r} is not a valid section")
            section, number = line[1:-1].strip(), number + 1
            continue
        if not section:
            raise ValueError(f"setting {line!r} is outside of a section")
        name, eq, val = line.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"{line!r} is not Setting=value")
        key, value = name.strip(), val.strip()
    if key is not None and value is not None:
        out.append((number, section, key, value))
    return out


def parse_ini(text: str) -> list[tuple[str, str, str]]:
    """``(section, setting, value)`` in file order, with mkosi's syntax (v25 docs "Configuration
    Settings"; v25 ``config.py`` ``parse_ini`` reads files this way): the file is dedented, ``#``
    starts a comment anywhere on a line, a setting may repeat, an indented line continues the
    previous value (joined with newlines), ``[Section]`` lines switch sections. A setting outside
    any section raises ``ValueError``."""
    return [(sec, key, val) for _n, sec, key, val in _parse(text)]


def _condition_ok(key: str, want: str, cfg: MkosiConfig, profiles: Sequence[str],
                  host: "HostInfo", where: str) -> bool | None:
    """One [Match] condition against the settings so far (v25 docs "[Match] Section": conditions
    compare with values configured up to this file, CLI values included). None: not evaluated."""
    if key == "Profiles":
        return want in profiles
    if key in ("Distribution", "ToolsTreeDistribution"):
        cur = cfg.get(key) or (host.distribution if key == "Distribution" else
                               default_tools_tree_distribution((99,), cfg, host))
        return cur == want
    if key == "Release":
        cur = cfg.get("Release") or (host.release if not cfg.get("Distribution")
                                     or cfg.get("Distribution") == host.distribution else "")
        return cur == want
    if key == "Architecture":
        return (cfg.get("Architecture") or host.architecture) == want
    if key in ("Format", "Bootable", "ToolsTreeRelease"):
        return cfg.get(key) == want
    if key == "PathExists":
        return (Path(where).parent / want).exists()
    return None


def _matches(entries: list[tuple[int, str, str, str]], cfg: MkosiConfig, profiles: Sequence[str],
             host: "HostInfo", path: Path, rel: str) -> bool:
    """[Match] and [TriggerMatch] semantics of the v25 docs ("Configuration Settings"): within a
    section plain conditions AND, ``|`` conditions OR; ``!`` negates; every [Match] section must
    hold and at least one [TriggerMatch] section (when any exists)."""
    groups: dict[int, tuple[str, list[tuple[str, str]]]] = {}
    for number, sec, key, val in entries:
        if sec in ("Match", "TriggerMatch"):
            groups.setdefault(number, (sec, []))[1].append((key, val))
    if not groups:
        return True

    def group_ok(conds: list[tuple[str, str]]) -> bool:
        plain: list[bool] = []
        trig: list[bool] = []
        for key, val in conds:
            triggering = val.startswith("|")
            val = val[1:] if triggering else val
            negate = val.startswith("!")
            val = val[1:] if negate else val
            ok = _condition_ok(key, val, cfg, profiles, host, str(path))
            if ok is None:
                cfg.notes.append(f"{rel}: [Match] {key}= is not evaluated here (assumed to match)")
                ok = not negate
            (trig if triggering else plain).append(ok != negate)
        return all(plain) and (any(trig) if trig else True)

    matches = [group_ok(c) for s, c in groups.values() if s == "Match"]
    triggers = [group_ok(c) for s, c in groups.values() if s == "TriggerMatch"]
    return all(matches) and (any(triggers) if triggers else True)


def _read_file(path: Path, base: Path, cfg: MkosiConfig, profiles: Sequence[str],
               host: "HostInfo") -> bool:
    """Apply one file's settings when its [Match] sections hold; False when skipped."""
    rel = os.path.relpath(path, base)
    try:
        entries = _parse(path.read_text())
    except OSError as exc:
        cfg.notes.append(f"{rel}: cannot be read ({exc.strerror or exc})")
        return False
    except ValueError as exc:
        cfg.notes.append(f"{rel}: {exc}")
        return False
    if not _matches(entries, cfg, profiles, host, path, rel):
        return False
    cfg.files.append(rel)
    for _n, sec, key, val in entries:
        if sec not in ("Match", "TriggerMatch"):
            cfg.setting(key, val, rel)
    return True


def _read_dir(d: Path, base: Path, cfg: MkosiConfig, profiles: Sequence[str], host: "HostInfo") -> None:
    """A directory the way mkosi reads one (v25 docs "Configuration Settings"): its mkosi.conf (whose
    [Match] decides for the whole directory), then mkosi.conf.d/ in name order, each ``*.conf``
    file and each directory parsed as a top-level directory."""
    conf = d / "mkosi.conf"
    if conf.exists() and not _read_file(conf, base, cfg, profiles, host):
        return
    dropins = d / "mkosi.conf.d"
    if dropins.is_dir():
        for p in sorted(dropins.iterdir()):
            if p.is_dir():
                _read_dir(p, base, cfg, profiles, host)
            elif p.suffix == ".conf":
                _read_file(p, base, cfg, profiles, host)


def load_config(config_dir: Path, profiles: Sequence[str] = (), host: "HostInfo | None" = None) -> MkosiConfig:
    """The settings ``mkosi --profile P... build`` run in `config_dir` ends up with (v25 docs
    "Configuration Settings": mkosi.conf, then mkosi.conf.d/, then each profile from
    ``mkosi.profiles/<P>/`` or ``mkosi.profiles/<P>.conf``; NEWS v25: profiles after the drop-ins).
    ``Profiles=`` set in the configuration adds to the ones passed."""
    host = host or HostInfo.detect()
    cfg = MkosiConfig()
    selected = list(profiles)
    cfg.lists["Profiles"] = list(profiles)
    _read_dir(config_dir, config_dir, cfg, selected, host)
    for p in cfg.lists.get("Profiles", []):
        if p not in selected:
            selected.append(p)
    for name in selected:
        pdir, pfile = config_dir / "mkosi.profiles" / name, config_dir / "mkosi.profiles" / f"{name}.conf"
        if pdir.is_dir():
            _read_dir(pdir, config_dir, cfg, selected, host)
        elif pfile.is_file():
            _read_file(pfile, config_dir, cfg, selected, host)
        else:
            cfg.notes.append(f"profile {name}: neither mkosi.profiles/{name}/ nor mkosi.profiles/{name}.conf exists")
    return cfg


# ---- the host ------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostInfo:
    distribution: str = "debian"
    release: str = ""
    architecture: str = "x86-64"
    kernel: str = ""

    @classmethod
    def detect(cls) -> "HostInfo":
        fields: dict[str, str] = {}
        for p in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
            if p.exists():
                for ln in p.read_text(errors="replace").splitlines():
                    k, eq, v = ln.partition("=")
                    if eq:
                        fields[k.strip()] = v.strip().strip('"')
                break
        arch = {"x86_64": "x86-64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return cls(fields.get("ID", ""), fields.get("VERSION_CODENAME", ""), arch, platform.release())


def default_tools_tree_distribution(version: tuple[int, ...], cfg: MkosiConfig, host: HostInfo) -> str:
    """ToolsTreeDistribution= when unset. v25 docs ([Build] ToolsTreeDistribution=, and NEWS v24):
    the host distribution, except Ubuntu -> Debian and RHEL/CentOS/Alma/Rocky -> Fedora, or custom
    on an unsupported host. NEWS v16 (before v24): chosen from the image being built."""
    if version and version < (24,):
        return cfg.get("Distribution") or host.distribution
    d = host.distribution
    if d == "ubuntu":
        return "debian"
    if d in ("rhel", "centos", "alma", "rocky"):
        return "fedora"
    known = APT_FAMILY | RPM_FAMILY | {"arch", "opensuse"}
    return d if d in known else "custom"


# ---- rules ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class HostNeed:
    """One thing the host must have for one configuration. kind: command | file | image-package |
    kernel | incompatible. `target`: command names separated by ``|`` (first found wins), a
    path, the image packages that provide it, or the minimum kernel."""

    tool: str
    kind: str
    target: str
    package: str
    cause: str  # "profile scout-oss-x86_64: ToolsTree=default, ubuntu"
    source: str  # doc section + version the rule comes from
    min_version: tuple[int, ...] | None = None
    required: bool = True  # False: used when present
    fix: str = ""


def _family(dist: str) -> str:
    if dist in APT_FAMILY:
        return "apt"
    if dist in RPM_FAMILY:
        return "rpm"
    return dist if dist in ("arch", "opensuse") else ""


def _package_manager_needs(dist: str, why: str, label: str, version: tuple[int, ...]) -> list[HostNeed]:
    fam = _family(dist)
    if fam == "apt" and version < (15,):
        # NEWS v14: "mkosi now runs apt and dpkg on the host ... we now require apt and dpkg to be
        # installed on the host along with debootstrap"; v14 docs REQUIREMENTS name debootstrap.
        src = "mkosi 14 NEWS (v14) and docs REQUIREMENTS"
        needs = [HostNeed("debootstrap", "command", "debootstrap", "debootstrap", f"{label}: {why}", src)]
        if version >= (14,):
            needs += [HostNeed(cmd, "command", cmd, pkg, f"{label}: {why}", src)
                      for cmd, pkg in PACKAGE_MANAGERS["apt"]]
        if dist == "ubuntu":
            # v14 docs REQUIREMENTS: debootstrap on Debian only pulls in the Debian keyring.
            path, pkg = KEYRINGS["ubuntu"]
            needs.append(HostNeed("ubuntu archive keyring", "file", path, pkg, f"{label}: {why}", src))
        return needs
    src = ("mkosi 25 docs \"Supported distributions\" (+ NEWS v15: debootstrap no longer used; "
           "apt reads the keyring from the host)")
    needs = [HostNeed(cmd, "command", cmd, pkg, f"{label}: {why}", src)
             for cmd, pkg in PACKAGE_MANAGERS.get(fam, ())]
    if dist in KEYRINGS:
        path, pkg = KEYRINGS[dist]
        needs.append(HostNeed(f"{dist} archive keyring", "file", path, pkg, f"{label}: {why}",
                              "mkosi 25 docs REQUIREMENTS + source distributions/" + dist
                              + ".py (Signed-By path); NEWS v15"))
    if not fam:
        needs.append(HostNeed(f"package manager for {dist or '?'}", "incompatible", "", "",
                              f"{label}: {why}", "mkosi 25 docs \"Supported distributions\"",
                              fix=f"build on a host that packages the package manager of {dist}"))
    return needs


def _compression(cfg: MkosiConfig, fmt: str, version: tuple[int, ...]) -> str:
    """The compressor the output (or the UKI's initrd) gets. v25 docs [Output] CompressOutput=:
    zstd by default, implied for tar, cpio, uki, esp, oci (gzip), addon. v14 docs: xz by default,
    implied for tar and cpio."""
    val = cfg.get("CompressOutput").lower()
    modern = version >= (15,)
    default = "zstd" if modern else "xz"
    if val in FALSE:
        return ""
    if val in TRUE:
        return default
    if val:
        return val
    implied = {"tar", "cpio", "uki", "esp", "addon"} if modern else {"tar", "cpio"}
    if modern and fmt == "oci":
        return "gz"
    return default if fmt in implied else ""


def host_needs(cfg: MkosiConfig, version: tuple[int, ...], label: str, host: HostInfo,
               config_dir: Path | None = None) -> list[HostNeed]:
    """What the host needs for one configuration built by mkosi `version` (see module docstring)."""
    needs: list[HostNeed] = []
    dist = cfg.get("Distribution") or host.distribution
    fmt = cfg.get("Format").lower()
    tools_tree = cfg.get("ToolsTree")
    if version >= (25,):
        # v25 docs REQUIREMENTS: "mkosi requires a Linux kernel that provides mount_setattr()
        # which was introduces in 5.12".
        needs.append(HostNeed("Linux kernel with mount_setattr()", "kernel", "5.12", "", label,
                              "mkosi 25 docs REQUIREMENTS"))
    if tools_tree and version < (16,):
        needs.append(HostNeed("ToolsTree=", "incompatible", "", "", f"{label}: ToolsTree={tools_tree}",
                              "NEWS v16 (ToolsTree=default added)",
                              fix="run the tree's pinned mkosi (git submodule update --init), "
                                  "which knows ToolsTree="))
    elif tools_tree.lower() == "default":
        ttd = cfg.get("ToolsTreeDistribution") or default_tools_tree_distribution(version, cfg, host)
        # v25 docs [Build] ToolsTree=: "If set to default, mkosi will automatically add an extra tools
        # tree image and use it as the tools tree": that image is built with the host's tools (the
        # package manager of the tools tree distribution and its keyring); everything else comes
        # from the tree (see the docs' table of default tools tree packages).
        needs += _package_manager_needs(ttd, f"ToolsTree=default, {ttd}", label, version)
        return needs
    elif tools_tree:
        path = Path(tools_tree)
        if config_dir is not None and not path.is_absolute():
            path = config_dir / path
        needs.append(HostNeed("tools tree", "file", str(path), "", f"{label}: ToolsTree={tools_tree}",
                              "mkosi 25 docs [Build] ToolsTree="))
        return needs

    if version < (14,):
        needs.append(HostNeed("mkosi >= 14", "incompatible", "", "", label, "runbook_lib.requirements.MKOSI_MIN",
                              fix="apt-get install -y mkosi"))
        return needs
    needs += _package_manager_needs(dist, f"Distribution={dist}", label, version)

    bootable = cfg.get("Bootable").lower()
    if fmt in ("uki", "esp"):
        if version < (16,):
            needs.append(HostNeed(f"Format={fmt}", "incompatible", "", "", f"{label}: Format={fmt}",
                                  "mkosi 14 docs \"Supported output formats\" (no uki); NEWS v16 added it",
                                  fix="run the tree's pinned mkosi, or build a cpio and assemble the UKI "
                                      "with objcopy (what the sandbox does)"))
        else:
            needs += _uki_needs(cfg, f"{label}: Format={fmt}", required=True)
            # The image itself is the UKI's initrd: cpio + the output compressor (v25 source
            # build_uki/make_uki; docs [Output] CompressOutput= "Implied for ... uki").
            needs.append(HostNeed("cpio", "command", "cpio", "cpio", f"{label}: Format={fmt} (initrd)",
                                  "mkosi 25 docs [Output] Format= (uki: OS image in the .initrd section)"))
            if fmt == "esp":
                needs.append(HostNeed("systemd-repart", "command", "systemd-repart", "systemd-repart",
                                      f"{label}: Format=esp", "mkosi 25 docs [Output] Format= + REQUIREMENTS",
                                      min_version=(254,)))
    elif fmt == "cpio":
        needs.append(HostNeed("cpio", "command", "cpio", "cpio", f"{label}: Format=cpio",
                              "mkosi 25/14 docs \"Supported output formats\" (CPIO archive)"))
    elif fmt == "disk" and version >= (15,):
        needs.append(HostNeed("systemd-repart", "command", "systemd-repart", "systemd-repart",
                              f"{label}: Format=disk", "mkosi 25 docs \"Supported output formats\" + REQUIREMENTS",
                              min_version=(254,)))
    elif fmt.startswith("gpt_") and version < (15,) and bootable in TRUE:
        # v14: bootable GPT images get an ESP (vfat) and a UKI assembled with objcopy.
        src = "mkosi 14 docs Bootable= / \"Supported output formats\" (EFI bootable GPT images)"
        needs += [HostNeed("mkfs.fat", "command", "mkfs.fat", "dosfstools", f"{label}: Bootable={bootable}", src),
                  HostNeed("objcopy", "command", "objcopy", "binutils", f"{label}: Bootable={bootable}", src)]

    if version >= (16,) and bootable in TRUE and fmt not in ("uki", "esp", "none", ""):
        # v25 docs [Content] Bootable=/UnifiedKernelImages=: with auto (default) UKIs are built when
        # ukify and the stub are there; with yes the build fails without them. A default initrd is
        # built when Initrds= is unset ([Content] Initrds=), itself a cpio.
        uki = cfg.get("UnifiedKernelImages").lower()
        needs += _uki_needs(cfg, f"{label}: Bootable={bootable}", required=uki in TRUE)
        if not cfg.lists.get("Initrds"):
            needs.append(HostNeed("cpio", "command", "cpio", "cpio", f"{label}: Bootable={bootable} (default initrd)",
                                  "mkosi 25 docs [Content] Initrds="))

    comp = "" if fmt in ("uki", "esp") and version < (16,) else _compression(cfg, fmt, version)
    if comp:
        if comp in COMPRESSORS:
            cmd, pkg = COMPRESSORS[comp]
            shown = cfg.get("CompressOutput") or f"{comp} (implied for Format={fmt})"
            needs.append(HostNeed(cmd, "command", cmd, pkg, f"{label}: CompressOutput={shown}",
                                  "mkosi 25 docs [Output] CompressOutput=" if version >= (15,)
                                  else "mkosi 14 docs CompressOutput="))
    return needs


def _uki_needs(cfg: MkosiConfig, cause: str, required: bool) -> list[HostNeed]:
    """A UKI (v25): ukify on the host (source build_uki: ``ukify`` or /usr/lib/systemd/ukify; docs
    REQUIREMENTS: systemd 254 for bootable images) and the systemd-boot stub *from the image*
    (NEWS v16: "kernel image and stub picked up from the rootfs"; docs [Content] Bootable=)."""
    src = "mkosi 25 docs REQUIREMENTS (systemd 254 for bootable images) + source build_uki"
    packages = cfg.lists.get("Packages", [])
    # systemd-boot depends on systemd-boot-efi (the stub's package) in Debian and Ubuntu.
    stub_pkg = next((p for p in STUB_PACKAGES if p in packages), "")
    return [
        HostNeed("ukify", "command", "ukify|/usr/lib/systemd/ukify", "systemd-ukify", cause, src,
                 min_version=(254,), required=required),
        HostNeed("systemd-boot EFI stub (in the image)", "image-package", stub_pkg,
                 "", cause, "NEWS v16 (stub picked up from the rootfs); mkosi 25 docs [Content] Bootable=",
                 required=required,
                 fix=f"add systemd-boot-efi to Packages= in {cfg.origin.get('Packages', 'mkosi.conf')}"),
    ]


# ---- checks --------------------------------------------------------------------------------

def _first_line(lines: Iterable[str]) -> str:
    return next((ln.strip() for ln in lines if ln.strip()), "")


def _probe_version(argv0: str) -> tuple[bool, str, str]:
    """(ran ok, version, first line or error) of ``argv0 --version``."""
    try:
        rr = shell.capture([argv0, "--version"], timeout=PROBE_TIMEOUT_S)
    except (shell.CommandNotFound, OSError) as exc:
        return False, "", str(exc)
    first = _first_line(rr.tail)
    if rr.timed_out:
        return False, "", f"`{argv0} --version` did not answer within {PROBE_TIMEOUT_S:.0f} s"
    if not rr.ok:
        return False, "", first or f"exit code {rr.returncode}"
    return True, parse_version(first), first


def launcher_interpreter(launcher: Path) -> str:
    """The interpreter a mkosi launcher runs: a python shebang, else the one its script execs.
    mkosi 25's bin/mkosi: ``$MKOSI_INTERPRETER`` when set, else ``python3`` (falling back to
    python3.9 only when python3 is too old); mkosi 14's: ``python3`` from PATH."""
    try:
        text = launcher.read_text(errors="replace")
    except OSError:
        return "python3"
    first = text.splitlines()[0] if text else ""
    m = re.match(r"#!\s*(\S+)(?:\s+(\S+))?", first)
    if m:
        prog = m.group(2) if m.group(1).endswith("/env") and m.group(2) else m.group(1)
        if re.search(r"python[\d.]*$", prog or ""):
            return prog or "python3"
    if "MKOSI_INTERPRETER" in text and os.environ.get("MKOSI_INTERPRETER"):
        return os.environ["MKOSI_INTERPRETER"]
    names = re.findall(r"\b(python3(?:\.\d+)?)\b", text)
    return names[0] if names else "python3"


def requires_python(root: Path) -> tuple[str, str]:
    """(specifier, file) of the minimum Python a mkosi checkout declares: pyproject.toml
    ``[project] requires-python``, else setup.cfg ``python_requires``, else setup.py."""
    py = root / "pyproject.toml"
    if py.is_file():
        try:
            spec = tomllib.loads(py.read_text()).get("project", {}).get("requires-python", "")
        except (tomllib.TOMLDecodeError, OSError):
            spec = ""
        if spec:
            return str(spec), "pyproject.toml"
    for name, pat in (("setup.cfg", r"python_requires\s*=\s*(\S[^\n]*)"),
                      ("setup.py", r"python_requires\s*=\s*['\"]([^'\"]+)['\"]")):
        p = root / name
        if p.is_file():
            m = re.search(pat, p.read_text(errors="replace"))
            if m:
                return m.group(1).strip(), name
    return "", ""


def satisfies(version: str, spec: str) -> bool:
    """A small PEP 440 subset: comma-separated ``>=, >, <=, <, ==, !=`` with numeric versions."""
    have = version_tuple(version)
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        m = re.match(r"(>=|<=|==|!=|>|<|~=)\s*([\d.*]+)", part)
        if not m:
            continue
        op, want_s = m.groups()
        want = version_tuple(want_s.rstrip(".*"))
        n = len(want)
        cur = (have + (0,) * n)[:n] if op in ("==", "!=") and want_s.endswith("*") else have
        ok = {">=": cur >= want, ">": cur > want, "<=": cur <= want, "<": cur < want,
              "==": cur == want or (have + (0,) * n)[:n] == want, "!=": cur != want,
              "~=": have >= want}[op]
        if not ok:
            return False
    return True


def _resolve(argv0: str, repo_root: Path) -> Path | None:
    if "/" not in argv0:
        return None
    p = Path(argv0)
    return p if p.is_absolute() else (repo_root / "pxe" / p)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve(strict=False).relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _needed_for(tasks: Sequence[str]) -> str:
    shown = ", ".join(tasks[:3]) + (f" (+{len(tasks) - 3})" if len(tasks) > 3 else "")
    return f"{NEEDED_FOR}: {shown}" if tasks else NEEDED_FOR


def _cond(required: bool, conditions: Iterable[str]) -> str:
    conds = sorted({c for c in conditions if c})
    return "" if required or not conds else f" — only when {'; '.join(conds)}"


def mkosi_checks(repo_root: Path, uses: Sequence[MkosiUse],
                 submodule_for: Callable[[Path], str | None] = lambda p: None,
                 *, host: HostInfo | None = None, config_dir: Path | None = None,
                 apt_candidates: bool = True) -> list[Check]:
    """Rows: which mkosi the plan runs (per distinct executable), the Python of a pinned one,
    and one row per host requirement its configuration implies (see :func:`host_needs`)."""
    repo_root = Path(repo_root)
    host = host or HostInfo.detect()
    config_dir = config_dir or repo_root / "pxe"
    by_exe: dict[str, list[MkosiUse]] = {}
    for u in uses:
        by_exe.setdefault(u.argv0, []).append(u)

    # Probes, concurrently: each mkosi, the distribution's mkosi (for the pinned note), python3.
    pinned: dict[str, Path] = {}
    for exe in by_exe:
        p = _resolve(exe, repo_root)
        if p is not None:
            pinned[exe] = p
    probes: dict[str, tuple[bool, str, str]] = {}
    want: list[str] = []
    for exe in by_exe:
        p = pinned.get(exe)
        if p is None:
            if shutil.which(exe):
                want.append(exe)
        elif p.is_file() and os.access(p, os.X_OK):
            want.append(str(p))
    distro_mkosi = shutil.which("mkosi")
    if pinned and distro_mkosi and distro_mkosi not in want:
        want.append(distro_mkosi)
    interpreters = {exe: launcher_interpreter(p) for exe, p in pinned.items() if p.is_file()}
    for interp in set(interpreters.values()):
        found = shutil.which(interp)
        if found and found not in want:
            want.append(found)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(want)))) as pool:
        for exe, res in zip(want, pool.map(_probe_version, want)):
            probes[exe] = res

    rows: list[Check] = []
    needs: list[tuple[HostNeed, bool, str]] = []  # need, required, condition
    for exe, us in by_exe.items():
        required = any(u.required for u in us)
        cond = _cond(required, (u.condition for u in us))
        tasks = [t for u in us for t in u.tasks]
        nf = _needed_for(tasks) + cond
        p = pinned.get(exe)
        if p is None:
            row, version = _distribution_row(exe, required, nf, probes)
            rows.append(row)
        else:
            row, version = _pinned_row(p, repo_root, required, nf, probes, distro_mkosi,
                                       submodule_for)
            rows.append(row)
            py = _python_row(p, interpreters.get(exe, "python3"), required, nf, probes)
            if py is not None:
                rows.append(py)
        assumed = ""
        vt = version_tuple(version)
        if not vt:
            vt = (25,) if p is not None else MKOSI_MIN
            assumed = f" (mkosi version unknown: rules of mkosi {vt[0]} assumed)"
        profile_sets = [(u.profiles, u.required, u.condition) for u in us]
        seen: dict[tuple[str, ...], tuple[bool, set[str]]] = {}
        for profs, req, c in profile_sets:
            r0, cs = seen.get(profs, (False, set()))
            seen[profs] = (r0 or req, cs | ({c} if c else set()))
        for profs, (req, conds) in seen.items():
            cfg = load_config(config_dir, profs, host)
            label = ("profile " + ",".join(profs)) if profs else "mkosi.conf"
            if profs and vt < (19,):
                needs.append((HostNeed("--profile", "incompatible", "", "", f"{label}",
                                       "NEWS v19 (profiles added)",
                                       fix="run the tree's pinned mkosi (git submodule update --init)"),
                              req, _cond(req, conds)))
            for n in host_needs(cfg, vt, label, host, config_dir):
                needs.append((replace(n, cause=n.cause + assumed), req and n.required, _cond(req, conds)))
            for note in cfg.notes:
                rows.append(Check(f"mkosi config ({label})", NEEDED_FOR, False, "info", found=note))
    rows += _need_rows(needs, host, probes, apt_candidates)
    return rows


def _distribution_row(exe: str, required: bool, nf: str,
                      probes: dict[str, tuple[bool, str, str]]) -> tuple[Check, str]:
    path = shutil.which(exe)
    base = Check("mkosi", nf, required, "missing", package="mkosi", fix=apt_fix("mkosi"))
    if not path:
        return base, ""
    ok, version, first = probes.get(exe, (False, "", "not probed"))
    if not ok:
        return replace(base, status="unusable", found=f"{path}: {first}"), ""
    if version_tuple(version) < MKOSI_MIN:
        want = ".".join(map(str, MKOSI_MIN))
        return replace(base, status="too old", found=path, version=version,
                       fix=f"{apt_fix('mkosi')}  (needs >= {want})"), version
    return replace(base, status="ok", found=f"{path} (the distribution's mkosi; the tree pins none)",
                   version=version), version


def _pinned_row(p: Path, repo_root: Path, required: bool, nf: str,
                probes: dict[str, tuple[bool, str, str]], distro_mkosi: str | None,
                submodule_for: Callable[[Path], str | None]) -> tuple[Check, str]:
    rel = os.path.relpath(p, repo_root) if _inside(p, repo_root) else str(p)
    if distro_mkosi:
        dv = probes.get(distro_mkosi, (False, "", ""))
        other = f"{distro_mkosi} {dv[1]}".strip() if dv[0] else distro_mkosi
        note = f"the distribution's mkosi ({other}) is not used by this tree"
    else:
        note = "the distribution's mkosi is not installed and not used by this tree"
    tool = f"mkosi (pinned: {rel})"
    if not p.exists():
        sub = submodule_for(p)
        fix = (f"git -C {repo_root} submodule update --init {sub}" if sub else
               f"git -C {repo_root} submodule update --init --recursive  ({rel} is missing)")
        return Check(tool, nf, required, "missing", found=f"{p} is missing; {note}", fix=fix), ""
    ok, version, first = probes.get(str(p), (False, "", "not executable"))
    if not ok:
        declared, _ = _declared_version(p)
        return Check(tool, nf, required, "unusable", found=f"{p}: {first}; {note}",
                     version=declared,
                     fix=f"make `{p} --version` work (first error: {first})"), declared
    return Check(tool, nf, required, "ok", found=f"{p}; {note}", version=version), version


def _declared_version(launcher: Path) -> tuple[str, str]:
    root = launcher.parent.parent
    py = root / "pyproject.toml"
    if py.is_file():
        try:
            v = tomllib.loads(py.read_text()).get("project", {}).get("version", "")
            return str(v), "pyproject.toml"
        except (tomllib.TOMLDecodeError, OSError):
            pass
    return "", ""


def _python_row(launcher: Path, interp: str, required: bool, nf: str,
                probes: dict[str, tuple[bool, str, str]]) -> Check | None:
    if not launcher.exists():
        return None
    root = launcher.parent.parent
    spec, src = requires_python(root)
    tool = "python3 (runs the pinned mkosi)"
    nf = f"{nf} ({launcher.name} execs {interp}; mkosi {src or 'declares no'} requires-python {spec or '-'})"
    path = shutil.which(interp)
    if not path:
        return Check(tool, nf, required, "missing", package="python3", fix=apt_fix("python3"))
    ok, version, first = probes.get(path, (False, "", "not probed"))
    if not ok:
        return Check(tool, nf, required, "unusable", found=f"{path}: {first}", package="python3",
                     fix=f"repair {path} (`{path} --version` fails)")
    if spec and not satisfies(version, spec):
        return Check(tool, nf, required, "too old", found=path, version=version, package="python3",
                     fix=f"install a Python {spec} and point MKOSI_INTERPRETER at it, or "
                         f"{apt_fix('python3')}")
    return Check(tool, nf, required, "ok", found=path, version=version, package="python3")


def _need_rows(needs: list[tuple[HostNeed, bool, str]], host: HostInfo,
               probes: dict[str, tuple[bool, str, str]], apt_candidates: bool) -> list[Check]:
    merged: dict[tuple[str, str], tuple[HostNeed, bool, list[str], list[str]]] = {}  # by tool
    for n, req, cond in needs:
        key = (n.tool, n.kind + (n.cause if n.kind == "image-package" else ""))
        if key in merged:
            first, r0, causes, conds = merged[key]
            merged[key] = (first, r0 or req, causes + [n.cause], conds + [cond])
        else:
            merged[key] = (n, req, [n.cause], [cond])
    # Versions that rules need (ukify >= 254): one probe per executable, concurrently.
    vprobe = [c for (n, _r, _c, _d) in merged.values() if n.min_version and n.kind == "command"
              for c in [_which_any(n.target)] if c and c not in probes]
    if vprobe:
        with ThreadPoolExecutor(max_workers=min(4, len(vprobe))) as pool:
            for exe, res in zip(vprobe, pool.map(_probe_version, vprobe)):
                probes[exe] = res
    rows: list[Check] = []
    for n, req, causes, conds in merged.values():
        causes_u = list(dict.fromkeys(causes))
        only = sorted({c.removeprefix(" — only when ") for c in conds if c})
        nf = f"mkosi ({'; '.join(causes_u)})" + (f" — only when {'; '.join(only)}" if not req and only else "")
        rows.append(_check_need(n, req, nf, host, probes))
    if apt_candidates:
        _mark_no_candidate(rows)
    return rows


def _which_any(target: str) -> str | None:
    for t in target.split("|"):
        if "/" in t:
            if os.access(t, os.X_OK):
                return t
        elif (w := shutil.which(t)):
            return w
    return None


def _check_need(n: HostNeed, required: bool, nf: str, host: HostInfo,
                probes: dict[str, tuple[bool, str, str]]) -> Check:
    base = Check(n.tool, nf, required, "missing", package=n.package or None,
                 fix=n.fix or apt_fix(n.package))
    if n.kind == "incompatible":
        return replace(base, status="unusable", found=f"not supported by this mkosi ({n.source})")
    if n.kind == "kernel":
        have = version_tuple(host.kernel or platform.release())
        if have < version_tuple(n.target):
            return replace(base, status="too old", found=host.kernel, version=host.kernel,
                           fix=f"boot a kernel >= {n.target}")
        return replace(base, status="ok", found=f"kernel {host.kernel}", version=host.kernel)
    if n.kind == "command":
        path = _which_any(n.target)
        if not path:
            return base
        if n.min_version:
            ok, version, first = probes.get(path, (False, "", ""))
            if ok and version_tuple(version) < n.min_version:
                want = ".".join(map(str, n.min_version))
                return replace(base, status="too old", found=path, version=version,
                               fix=f"{apt_fix(n.package)}  (needs >= {want}), or ToolsTree=default")
            return replace(base, status="ok" if ok else "unusable", found=path if ok else f"{path}: {first}",
                           version=version)
        return replace(base, status="ok", found=path)
    if n.kind == "file":
        if os.path.exists(n.target):
            return replace(base, status="ok", found=n.target)
        return replace(base, found=f"missing: {n.target}")
    if n.kind == "image-package":
        # Not a host package: the image's Packages= must bring it (target: the package found there).
        if n.target:
            return replace(base, status="ok", found=f"image package {n.target} (Packages=)", package=None)
        return replace(base, found="neither " + " nor ".join(STUB_PACKAGES) + " is in Packages=",
                       package=None)
    raise ValueError(f"unknown need kind {n.kind}")


def _mark_no_candidate(rows: list[Check]) -> None:
    """Say when apt has no install candidate for a missing package (e.g. Debian 12 has no
    ubuntu-keyring and no systemd-ukify): one ``apt-cache policy`` for all of them, no network."""
    pkgs = sorted({r.package for r in rows if r.status in ("missing", "too old") and r.package})
    if not pkgs or not shutil.which("apt-cache"):
        return
    rr = shell.capture(["apt-cache", "policy", *pkgs], timeout=PROBE_TIMEOUT_S)
    if not rr.ok:
        return
    candidate: dict[str, str] = {}
    cur = ""
    for ln in rr.tail:
        if ln and not ln[0].isspace() and ln.rstrip().endswith(":"):
            cur = ln.strip()[:-1]
        elif "Candidate:" in ln and cur:
            candidate[cur] = ln.split("Candidate:", 1)[1].strip()
    for i, r in enumerate(rows):
        if r.package in pkgs and candidate.get(r.package, "(none)") == "(none)":
            rows[i] = replace(r, fix=f"{r.fix}  — {r.package} has no install candidate in this "
                                     f"machine's apt sources (apt-cache policy {r.package})")
