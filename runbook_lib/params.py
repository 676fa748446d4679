"""Typed parameters shared by the notebooks and the CLI.

Each notebook has a :class:`NotebookSpec`; its ``parameters`` cell holds the same
names and defaults (a unit test keeps the two in step). Values coming from the
command line are strings and are coerced by the declared type; values coming
from a notebook are checked as they are. Unknown names and bad values raise
:class:`ParamError`, whose message names the parameter and what is allowed.
Values are plain data: nothing here ever reaches a shell.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


class ParamError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"parameter {name!r}: {message}")
        self.name = name


def check_regex(name: str, value: str) -> re.Pattern[str]:
    """Compile a regex parameter now, naming the parameter and the regex error if it is bad."""
    try:
        return re.compile(value)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise ParamError(name, f"{value!r} is not a valid regular expression: {exc.msg}{where}") from None


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None  # full-match regex for str values (empty always allowed)
    regex: bool = False  # the value is itself a regex: compiled when validated, not when first used

    def type_name(self) -> str:
        return self.type.__name__

    def coerce(self, value: Any) -> Any:
        if isinstance(value, str) and self.type is not str:
            return self._from_string(value)
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is bool and not isinstance(value, bool):
            raise ParamError(self.name, f"expected true or false, got {value!r}")
        if self.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ParamError(self.name, f"expected an integer, got {value!r}")
        if not isinstance(value, self.type):
            raise ParamError(self.name, f"expected {self.type_name()}, got {value!r}")
        return value

    def _from_string(self, raw: str) -> Any:
        text = raw.strip()
        if self.type is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ParamError(self.name, f"expected true or false, got {raw!r}")
        try:
            return self.type(text)
        except ValueError:
            raise ParamError(self.name, f"expected {self.type_name()}, got {raw!r}") from None

    def check(self, value: Any) -> Any:
        value = self.coerce(value)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ParamError(self.name, f"{value!r} is not allowed; allowed values: {allowed}")
        if self.minimum is not None and value < self.minimum:
            raise ParamError(self.name, f"{value!r} is below the minimum {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ParamError(self.name, f"{value!r} is above the maximum {self.maximum:g}")
        if self.pattern and isinstance(value, str) and value and not re.fullmatch(self.pattern, value):
            raise ParamError(self.name, f"{value!r} does not match {self.pattern}")
        if self.regex and isinstance(value, str):
            check_regex(self.name, value)
        return value

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type_name(),
            "default": "***" if self.secret and self.default else self.default,
            "choices": list(self.choices) if self.choices else None,
            "help": self.help,
            "secret": self.secret,
        }


@dataclass(frozen=True)
class NotebookSpec:
    name: str
    title: str
    description: str
    params: tuple[Param, ...]
    aliases: tuple[str, ...] = ()
    in_main_job: bool = True

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        names = [p.name for p in self.params]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ParamError(name, f"unknown parameter for {self.name}{hint} "
                               f"(known: {', '.join(names)})")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with `values`, every value checked. Unknown names raise."""
        out = self.defaults()
        for key, value in values.items():
            out[key] = self.param(key).check(value)
        return out

    def from_namespace(self, ns: Mapping[str, Any]) -> dict[str, Any]:
        """Pick this notebook's parameters out of a notebook's globals() and validate."""
        return self.validate({p.name: ns[p.name] for p in self.params if p.name in ns})

    def secret_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Secret parameters -> the value to scrub from shared reports, or None.

        Secret parameters are always masked in a notebook's metadata; their values are scrubbed
        from the text too, except the documented default (the sandbox's "carbide"), which is
        public and would otherwise mangle every path and file name containing it.
        """
        return {p.name: (values[p.name] if values.get(p.name) not in (None, "", p.default) else None)
                for p in self.params if p.secret}


_LOG_DIR = Param("log_dir", str, "",
                 "directory for full logs; empty = beside the report (set by `runbook run`) "
                 "or ./runs/<timestamp>")
_WORKDIR = Param("workdir", str, "",
                 "sandbox work directory holding pxe/static/... (step 2 builds there, step 3 boots "
                 "what is there); empty = ~/.local/share/carbide-runbooks/sandbox")

STEP1 = NotebookSpec(
    name="01_install_build_tools",
    title="Step 1: install build tools",
    description="Check (and optionally install) mkosi, debootstrap and every tool steps 2 and 3 need.",
    aliases=("01", "install", "install_build_tools"),
    params=(
        Param("mode", str, "sandbox", "what step 2 will build: the embedded sandbox, or a carbide checkout",
              choices=("sandbox", "carbide")),
        Param("carbide_root_dir", str, "", "carbide checkout step 2 will build (implies mode carbide): its git "
              "state, submodules, which mkosi it runs and every tool its build plan calls are checked"),
        Param("task", str, "", "carbide mode: the task(s) step 2 will run (empty = build-boot-artifacts-<arch>, "
              "resolved like step 2)", pattern=r"[A-Za-z0-9_.:-]+([ ,]+[A-Za-z0-9_.:-]+)*"),
        Param("arch", str, "x86_64", "carbide mode: the architecture step 2 will build",
              choices=("x86_64", "aarch64")),
        Param("install_missing", bool, False, "install missing Debian packages in one apt transaction"),
        Param("dry_run", bool, False, "print the install command instead of running it"),
        Param("want_bridge", bool, False, "also check bridge networking (qemu-bridge-helper, bridge.conf, dnsmasq)"),
        Param("want_tpm", bool, True, "also check swtpm for a software TPM"),
        Param("min_free_gb", float, 5.0, "free disk needed in the work directory (GB)", minimum=0),
        _WORKDIR,
        _LOG_DIR,
    ),
)

STEP2 = NotebookSpec(
    name="02_build_ipxe_image",
    title="Step 2: build the iPXE image",
    description="Run the boot-artifact build (cargo make or the sandbox), verify the artifacts, fix ownership.",
    aliases=("02", "build", "build_ipxe_image"),
    params=(
        Param("carbide_root_dir", str, "", "carbide checkout; empty = the embedded sandbox"),
        Param("arch", str, "x86_64", "target architecture", choices=("x86_64", "aarch64")),
        Param("variant", str, "full", "full: build-boot-artifacts-<arch>; package-only: "
              "create-ephemeral-image then ipxe-<arch>", choices=("full", "package-only")),
        Param("task", str, "", "override the task(s) (empty = from variant and arch); several "
              "names separated by spaces run one after another like `cargo make a && cargo make b`",
              pattern=r"[A-Za-z0-9_.:-]+([ ,]+[A-Za-z0-9_.:-]+)*"),
        Param("build_timeout_s", int, 3600, "timeout of the whole build (seconds)", minimum=1),
        Param("chown_user", str, "", "user to chown pxe/static back to; empty = SUDO_USER or the current user",
              pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]*"),
        Param("force", bool, False, "rebuild even when inputs did not change"),
        Param("root_password", str, "carbide", "root password of the sandbox image (console login)",
              secret=True),
        Param("ci_only_pattern", str, "upload|compress|publish|artifactory|push|container-",
              "regex on the failing task's name: a failure there is the docs' expected unclean exit "
              "(PASS only if every expected artifact is present and fresh)", regex=True),
        Param("artifact_profile", str, "auto", "expected artifact set: auto (from the tree), docs "
              "(carbide.efi/.manifest/.root, ipxe.efi/.kpxe), scout (newer trees) or sandbox",
              choices=("auto", "docs", "scout", "sandbox")),
        Param("fix_ownership", bool, True, "chown root-owned files under pxe/static back to the user"),
        Param("ipxe_source", str, "", "sandbox only: iPXE source (a directory holding src/, or a .tar.gz of one) "
              "to build ipxe.efi/ipxe.kpxe from like carbide does; empty = a carbide checkout's "
              "pxe/ipxe/upstream, apt-get source ipxe, the pinned commit's download, else Debian's prebuilt"),
        _WORKDIR,
        _LOG_DIR,
    ),
)

STEP3 = NotebookSpec(
    name="03_pxe_boot_vm",
    title="Step 3: PXE boot a QEMU VM",
    description="PXE boot the artifacts in QEMU, capture the serial console, explain the boot.",
    aliases=("03", "boot", "pxe_boot_vm"),
    params=(
        Param("artifacts_dir", str, "", "directory with ipxe.efi, carbide.efi ...; empty = the sandbox "
              "output under workdir (or carbide_root_dir's)"),
        Param("carbide_root_dir", str, "", "carbide checkout whose pxe/static/blobs/internal/<arch> to boot"),
        Param("arch", str, "x86_64", "artifact architecture", choices=("x86_64",)),
        Param("firmware", str, "uefi", "uefi (OVMF) or bios (SeaBIOS)", choices=("uefi", "bios")),
        Param("network", str, "user", "user: QEMU user networking, no root; testnet: a carbide-like "
              "network of the run's own (netns, bridge carbide0, dnsmasq with option 43.70; root); "
              "bridge: a running carbide's carbide0", choices=("user", "testnet", "bridge")),
        Param("dhcp_machine_uuid", bool, True, "testnet: DHCP sends the VM's uuid as option 43.70 to iPXE "
              "clients (false reproduces an iPXE whose chain never fires)"),
        Param("uefi_boot", str, "pxe", "testnet + UEFI: pxe (OVMF PXEv4 -> TFTP ipxe.efi) or http (PXE "
              "clients get no boot file; OVMF's HTTP boot IPv4 fetches ipxe.efi, as carbide's docs describe)",
              choices=("pxe", "http")),
        Param("standin_uuid", str, "", "testnet: the machine uuid the carbide-pxe stand-in knows; empty = "
              "the VM's (another value reproduces an unknown machine)",
              pattern=r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"),
        Param("uki_cmdline", str, "auto", "kernel command line passed to a UKI: auto = the sandbox's own "
              "for sandbox-built artifacts, else the UKI's own .cmdline passed explicitly; none: the UKI's own; "
              "or the command line itself"),
        Param("accel", str, "auto", "auto tries KVM for real and falls back to TCG",
              choices=("auto", "kvm", "tcg")),
        Param("tcg_thread", str, "multi", "under TCG: multi (a host thread per vCPU, ~16% faster; a stalled "
              "VM is booted again once) or single (one thread for all vCPUs)", choices=("multi", "single")),
        Param("memory_mb", int, 4096, "VM memory (MB); the UKI needs >= 2048", minimum=256),
        Param("cpus", int, 2, "VM vCPUs", minimum=1, maximum=64),
        Param("mac", str, "52:54:00:12:34:56", "NIC MAC address",
              pattern=r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}"),
        Param("uuid", str, "", "SMBIOS uuid; empty = a fixed per-MAC uuid",
              pattern=r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"),
        Param("tpm", bool, False, "attach a software TPM 2.0 (swtpm)"),
        Param("port", int, 8080, "port of the carbide-pxe stand-in", minimum=1, maximum=65535),
        Param("bounce", bool, False, "bridge: restart the detected local carbide-pxe before booting"),
        Param("pxe_url", str, "", "bridge: base URL of the running carbide-pxe; empty = detected",
              pattern=r"https?://[^\s/]+(/[^\s]*)?"),
        Param("check_served", str, "auto", "compare what carbide-pxe serves with the local build before "
              "booting; auto = in bridge mode", choices=("auto", "yes", "no")),
        Param("boot_timeout_s", int, 300, "give up the boot after this many seconds", minimum=1),
        Param("success_pattern", str, r"[\w.-]+ login:", "regex on the serial console that means success "
              "(not anchored: kernel messages may follow the prompt on its line)", regex=True),
        Param("extra_args", str, "", "extra QEMU arguments (split like a shell would, never run by one)"),
        _WORKDIR,
        _LOG_DIR,
    ),
)

def _validate_params() -> tuple[Param, ...]:
    """Steps 2 and 3's parameters (a name means one thing everywhere), minus what validate decides
    itself: it boots what it just built (no artifacts_dir) for the architecture it can boot."""
    out: dict[str, Param] = {}
    for spec in (STEP2, STEP3):
        for prm in spec.params:
            if prm.name in ("artifacts_dir", "log_dir", "workdir"):
                continue
            if prm.name == "arch":
                prm = STEP3.param("arch")
            out.setdefault(prm.name, prm)
    out["reference_dir"] = Param("reference_dir", str, "", "a known-good artifact set (e.g. the official "
                                 "one) to compare the build with; empty = no such comparison")
    out["slower_threshold"] = Param("slower_threshold", float, 0.25, "flag a milestone that got slower than "
                                    "in the last good run by more than this fraction", minimum=0)
    return (*out.values(), _WORKDIR, _LOG_DIR)


STEP4 = NotebookSpec(
    name="04_validate",
    title="Validate: rebuild, boot, compare with the last good run",
    description="The loop you repeat: rebuild (cached), PXE boot, and say what changed since the last good run.",
    aliases=("04", "validate"),
    params=_validate_params(),
    in_main_job=False,
)

START = NotebookSpec(
    name="00_start_here",
    title="Start here: where you stand and what to do next",
    description="Status board of steps 1-3 and validate (run history, reports, artifacts) and the next "
                "thing to do; in JupyterLab a form with a Run button per step.",
    aliases=("00", "start", "start_here"),
    params=(
        Param("carbide_root_dir", str, "", "carbide checkout the board looks at (its run history and "
              "artifacts) and the form's steps build and boot; empty = the embedded sandbox"),
        Param("report_dir", str, "", "where the Run buttons write reports and the board reads them; "
              "empty = the repository's reports/ (and ./reports, and the directory `runbook run` writes to)"),
        _WORKDIR,
        _LOG_DIR,
    ),
    in_main_job=False,
)

NOTEBOOKS: dict[str, NotebookSpec] = {s.name: s for s in (START, STEP1, STEP2, STEP3, STEP4)}


def resolve(name: str) -> NotebookSpec:
    key = name.strip()
    if key.endswith(".ipynb"):
        key = key.rsplit("/", 1)[-1][:-6]
    if key in NOTEBOOKS:
        return NOTEBOOKS[key]
    for spec in NOTEBOOKS.values():
        if key in spec.aliases:
            return spec
    known = list(NOTEBOOKS) + [a for s in NOTEBOOKS.values() for a in s.aliases]
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ParamError("notebook", f"unknown notebook {name!r}.{hint} Known: {', '.join(NOTEBOOKS)}")
