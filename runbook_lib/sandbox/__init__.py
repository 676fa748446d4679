"""The embedded default: a small carbide-like pxe tree built with the real tools.

Public API: :func:`build` (returns a StepResult), :data:`TASKS`,
:data:`EXPECTED_ARTIFACTS`, :func:`chain_script`, :func:`boot_script`; the
command line is ``python -m runbook_lib.sandbox build`` or ``runbook sandbox build``.
"""

from .builder import DEFAULT_PASSWORD, build
from .scripts import KERNEL_CMDLINE, boot_script, chain_script, chain_url_template
from .tasks import ALL_TASK, EXPECTED_ARTIFACTS, IMAGE_TASK, IPXE_TASK, TASKS, SandboxTask, plan

__all__ = ["build", "DEFAULT_PASSWORD", "TASKS", "SandboxTask", "EXPECTED_ARTIFACTS", "plan",
           "ALL_TASK", "IMAGE_TASK", "IPXE_TASK", "chain_script", "boot_script",
           "chain_url_template", "KERNEL_CMDLINE"]
