"""The sandbox's tasks, named and chained like carbide's `pxe/Makefile.toml`.

Exposed as data so the step-2 driver can plan and show them before running:
each :class:`SandboxTask` names its dependencies and the artifacts it leaves in
``<workdir>/pxe/static/blobs/internal/x86_64/``. :data:`EXPECTED_ARTIFACTS`
says what a finished sandbox build must hold and in which size band.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..artifact_model import ArtifactSpec

ARCH = "x86_64"
IMAGE_TASK = "create-ephemeral-image"
IPXE_TASK = "ipxe-x86_64"
ALL_TASK = "build-boot-artifacts-x86_64"
PROVENANCE_FILE = "ipxe.provenance.json"

KB = 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class SandboxTask:
    name: str
    description: str
    dependencies: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    optional_artifacts: list[str] = field(default_factory=list)  # path-dependent (autoexec.ipxe)


TASKS: dict[str, SandboxTask] = {
    IMAGE_TASK: SandboxTask(
        name=IMAGE_TASK,
        description="mkosi 14 builds the Debian bookworm ephemeral root (zstd cpio) and its JSON "
                    "manifest; objcopy assembles the UKI carbide.efi (systemd-stub + kernel + root + cmdline)",
        artifacts=["carbide.root", "carbide.manifest", "carbide.efi", "carbide.vmlinuz"],
    ),
    IPXE_TASK: SandboxTask(
        name=IPXE_TASK,
        description="iPXE with the chain script: built from source with EMBED= when the source is "
                    "available, else Debian trixie's prebuilt ipxe package plus autoexec.ipxe",
        artifacts=["ipxe.efi", "ipxe.kpxe", PROVENANCE_FILE],
        optional_artifacts=["autoexec.ipxe"],
    ),
    ALL_TASK: SandboxTask(
        name=ALL_TASK,
        description="all boot artifacts: the ephemeral image and iPXE",
        dependencies=[IMAGE_TASK, IPXE_TASK],
    ),
}


def _expected(name: str, min_bytes: int, max_bytes: int, produced_by: str, description: str,
              required: bool = True) -> ArtifactSpec:
    return ArtifactSpec(name, min_bytes, max_bytes, required=required, produced_by=produced_by,
                        description=description)


EXPECTED_ARTIFACTS: list[ArtifactSpec] = [
    _expected("carbide.efi", 20 * MB, 300 * MB, IMAGE_TASK,
                     "UKI: systemd-stub + kernel + carbide.root + cmdline (carbide docs: ~55M)"),
    _expected("carbide.manifest", 1 * KB, 2 * MB, IMAGE_TASK,
                     "mkosi JSON manifest of the installed packages (carbide docs: ~26k)"),
    _expected("carbide.root", 10 * MB, 300 * MB, IMAGE_TASK,
                     "ephemeral root as a zstd-compressed newc cpio (carbide docs: ~298M)"),
    _expected("carbide.vmlinuz", 2 * MB, 32 * MB, IMAGE_TASK,
                     "the kernel alone, for BIOS boots where a UKI cannot run (sandbox extra)"),
    _expected("ipxe.efi", 64 * KB, 4 * MB, IPXE_TASK,
                     "iPXE for UEFI (snponly.efi) (carbide docs: ~1.1M)"),
    _expected("ipxe.kpxe", 32 * KB, 2 * MB, IPXE_TASK,
                     "iPXE for legacy BIOS (undionly.kpxe) (carbide docs: ~402k)"),
    _expected("autoexec.ipxe", 64, 16 * KB, IPXE_TASK,
                     "chain script fetched by prebuilt iPXE over TFTP (prebuilt path only)",
                     required=False),
    _expected(PROVENANCE_FILE, 32, 64 * KB, IPXE_TASK,
                     "which iPXE path produced the binaries, and its version"),
]


def plan(task: str) -> list[str]:
    """Tasks to run for `task`, dependencies first (depth-first, each once)."""
    if task not in TASKS:
        raise KeyError(f"unknown sandbox task {task!r}; known: {', '.join(TASKS)}")
    order: list[str] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in stack:
            raise ValueError(f"dependency cycle: {' -> '.join(stack + (name,))}")
        if name in order:
            return
        for dep in TASKS[name].dependencies:
            visit(dep, stack + (name,))
        order.append(name)

    visit(task, ())
    return order


def artifacts_of(task: str) -> list[str]:
    """Every artifact the task (with its dependencies) leaves, required ones only."""
    return [a for name in plan(task) for a in TASKS[name].artifacts]
