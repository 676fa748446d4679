"""Is KVM really usable? Found by trying, not by looking at /dev/kvm.

On the project's machines /dev/kvm exists but KVM fails as soon as a guest runs
("KVM internal error ... emulation failure"). The probe starts a tiny guest
(SeaBIOS, no devices) under KVM and waits for SeaBIOS's first debug line; it
tells apart "no /dev/kvm", "KVM refused to start" and "KVM started but the guest
failed", and the caller falls back to TCG and says so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import shell

from .system_paths import OVMF_CODE, OVMF_VARS, QEMU, SEABIOS


@dataclass
class KvmProbe:
    usable: bool
    reason: str
    command: str = ""

    @property
    def accel(self) -> str:
        return "kvm" if self.usable else "tcg"



def probe_kvm(qemu: str = QEMU, seconds: float = 6.0) -> KvmProbe:
    """Run the firmware under KVM for a few seconds; any KVM error means unusable.

    OVMF is used when installed because it switches to long mode and uses the FPU
    within a second, which is where broken nested KVM fails; SeaBIOS alone often
    survives on such hosts and would give a false "usable".
    """
    if not os.path.exists("/dev/kvm"):
        return KvmProbe(False, "/dev/kvm does not exist (no KVM on this host)")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return KvmProbe(False, "/dev/kvm is not accessible to this user (add it to group kvm)")
    if shutil.which(qemu) is None:
        return KvmProbe(False, f"{qemu} is not installed, KVM could not be probed")
    with tempfile.TemporaryDirectory(prefix="kvm-probe-") as tmp:
        if OVMF_CODE.exists() and OVMF_VARS.exists():
            vars_copy = Path(tmp) / "vars.fd"
            shutil.copyfile(OVMF_VARS, vars_copy)
            fw = ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                  "-drive", f"if=pflash,format=raw,file={vars_copy}"]
        elif SEABIOS.exists():
            fw = ["-bios", str(SEABIOS)]
        else:
            fw = []
        argv = [qemu, "-accel", "kvm", "-machine", "q35", "-m", "256", "-nodefaults",
                "-display", "none", "-no-reboot", *fw, "-serial", "null", "-monitor", "none"]
        failed = threading.Event()

        def watch(line: str) -> None:
            if "KVM internal error" in line or "emulation failure" in line:
                failed.set()

        with shell.spawn(argv, on_line=watch) as proc:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and proc.running() and not failed.is_set():
                failed.wait(0.1)
            timed_out = proc.running() and not failed.is_set()
        tail = list(proc.tail)
    cmd = shell.quote(argv)
    if failed.is_set():
        return KvmProbe(False, "KVM started but the guest failed (KVM internal error: emulation "
                               "failure; nested virtualization does not work on this host)", cmd)
    if timed_out:
        return KvmProbe(True, f"a KVM guest ran firmware for {seconds:g}s without error", cmd)
    first = next((ln.strip() for ln in tail if ln.strip() and "warning" not in ln),
                 f"qemu exited with code {proc.popen.returncode}")
    return KvmProbe(False, f"KVM refused: {first}", cmd)
