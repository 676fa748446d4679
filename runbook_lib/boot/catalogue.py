"""The one table of serial-console messages the boot analyzer knows: milestones, and
messages that look like trouble, each with how bad it is.

Every entry has a real line as its ``example`` (the unit tests check that each example is
classified as its own entry and no earlier one). Entries are tried in table order and the
first that matches a line wins, so specific entries come before generic ones (iPXE's
optional ``autoexec.ipxe`` probe before the generic "Not found" error).

Severities:

``fatal``
    The boot ends here (a panic, the firmware giving up, a shell prompt). The live
    console watch stops shortly after one, unless the boot makes progress again.
``error``
    A failure. It is the cause of a failed boot when the boot never got past it.
``survived``
    Kernel trouble that a boot usually survives (RCU stalls, soft lockups, hung tasks, an
    OOM kill, a kernel WARN). A warning; the cause only if the boot never got past it.
``benign``
    Looks like an error, is routine (iPXE probing for an optional script, firmware notes
    under QEMU/TCG). Always a warning, never the cause.

``recovery`` says what proves that the boot got past a message: ``progress`` (a milestone
further than any reached before the message), ``fetch`` (progress, or a later download
that worked: iPXE scripts probe optional files and go on), or ``success`` (only the login
prompt: for kernel failures, because the kernel goes on printing milestones after them).
``warn`` is the kind a message is listed under in the warnings when the boot got past it
(an OVMF PXEv4 ``PXE-E16`` before an HTTP boot that worked is ``pxe_attempt_failed``).

Every regex is matched on one line with ANSI escapes removed; ``anchors`` are literal
byte strings one of which every match contains (lines without any anchor are never
handed to the regexes, which keeps the analyzer fast).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FATAL, ERROR, SURVIVED, BENIGN = "fatal", "error", "survived", "benign"
SEVERITIES = (FATAL, ERROR, SURVIVED, BENIGN)


@dataclass(frozen=True)
class Milestone:
    name: str
    label: str
    pattern: str
    anchors: tuple[bytes, ...]
    example: str


@dataclass(frozen=True)
class Entry:
    kind: str
    severity: str
    pattern: str
    anchors: tuple[bytes, ...]
    hint: str
    example: str
    warn: str = ""  # kind in the warnings when the boot got past it ("" = kind)
    recovery: str = "progress"  # progress | fetch | success
    # the kind when the firmware's attempt never got an address (OVMF says "Server response
    # timeout" both when DHCP and when TFTP does not answer)
    unaddressed: str = ""
    rx: re.Pattern[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rx", re.compile(self.pattern.encode()))

    @property
    def warn_kind(self) -> str:
        return self.warn or self.kind


# In the order a boot reaches them: the rank of a milestone (its index) is how far a boot
# got, and "the boot got past a message" means a milestone of a higher rank came after it.
MILESTONES: tuple[Milestone, ...] = (
    Milestone("firmware_start", "firmware started",
              r"(?:BdsDxe: loading Boot|SeaBIOS \(version|Booting from ROM)",
              (b"BdsDxe: loading Boot", b"SeaBIOS (version", b"Booting from ROM"),
              "SeaBIOS (version 1.16.2-debian-1.16.2-1)"),
    Milestone("pxe_dhcp", "PXE DHCP address", r"Station IP address is", (b"Station IP address is",),
              "  Station IP address is 10.0.2.15"),
    Milestone("nbp_downloaded", "NBP downloaded",
              r"(?:NBP file downloaded successfully|BdsDxe: starting Boot\w+ \"(?!(?:EFI Internal|UEFI) Shell)"
              r"|Downloading\.+\s*100%)",
              (b"NBP file downloaded successfully", b"BdsDxe: starting Boot", b"Downloading."),
              "  NBP file downloaded successfully."),
    Milestone("ipxe_banner", "iPXE banner",
              r"[\w.-]+ initialising devices|iPXE \d+\.\d+\.\d+\S* -- Open Source"
              r"|-- Carbide Bare Metal provisioning",
              (b"initialising devices", b"iPXE ", b"Bare Metal provisioning"),
              "carbide initialising devices..."),
    Milestone("ipxe_script", "iPXE script",
              r"(?:autoexec\.ipxe\.*\s*ok|Embedded script|carbide-sandbox: iPXE|(?:Carbide|Forge) - v\d"
              r"|key to open \S+ menu)",
              (b"autoexec.ipxe", b"Embedded script", b"carbide-sandbox: iPXE", b" - v", b"key to open "),
              "carbide-sandbox: iPXE 1.21.1 efi/x86_64 running the chain script"),
    Milestone("ipxe_dhcp", "iPXE DHCP ok",
              r"(?:Configuring (?:\[\w+\] )?\(net\d[^)]*\)\.*\s*ok|DHCP \(net\d[^)]*\)\.*\s*ok)",
              (b"Configuring ", b"DHCP (net"), "Configuring (net0 52:54:00:12:34:56)...... ok"),
    Milestone("ipxe_chainload", "iPXE chainloaded",
              r"(?:tftp|https?)://\S+/(?:undionly|ipxe|snponly|snp)[^/\s]*\.(?:k*pxe|efi|lkrn)\.*\s*ok",
              (b".. ok",), "tftp://10.0.2.2/undionly.kpxe... ok"),
    Milestone("boot_script", "boot script fetched",
              r"(?:/api/v0/pxe/boot\S*\.\.\.[^\n]*\bok\s*$|carbide-sandbox: boot script for"
              r"|carbide-pxe stand-in: uuid)",
              (b"/api/v0/pxe/boot", b"carbide-sandbox: boot script for", b"carbide-pxe stand-in: uuid"),
              "http://10.0.2.2:8080/api/v0/pxe/boot... ok"),
    Milestone("kernel_fetched", "kernel fetched",
              r"/(?:public/blobs/internal/\S+?\.(?:efi|kernel|vmlinuz)|vmlinuz)\S*?\.\.\.[^\n]*\bok\s*$",
              (b"/public/blobs/internal/", b"vmlinuz"),
              "http://10.0.2.2:8080/public/blobs/internal/x86_64/carbide.efi... ok"),
    Milestone("initrd_fetched", "initrd fetched",
              r"/public/blobs/internal/\S+?\.(?:root|initrd|cpio\S*)\.\.\.[^\n]*\bok\s*$",
              (b"/public/blobs/internal/",), "http://10.0.2.2:8080/public/blobs/internal/x86_64/carbide.root... ok"),
    Milestone("efi_stub", "EFI stub", r"EFI stub: ", (b"EFI stub: ",), "EFI stub: UEFI Secure Boot is disabled."),
    Milestone("linux_version", "Linux version", r"Linux version \d", (b"Linux version ",),
              "[    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)"),
    Milestone("tpm_detected", "TPM 2.0 detected", r"tpm_tis \S+: 2\.0 TPM", (b": 2.0 TPM",),
              "[    1.234567] tpm_tis MSFT0101:00: 2.0 TPM (device-id 0x1, rev-id 1)"),
    Milestone("initrd_unpacked", "initrd unpacked", r"(?:Unpacking initramfs|Run /init as init process)",
              (b"Unpacking initramfs", b"Run /init as init process"), "[    5.703779] Run /init as init process"),
    Milestone("systemd_welcome", "systemd welcome", r"Welcome to .*!", (b"Welcome to ",),
              "Welcome to Debian GNU/Linux 12 (bookworm)!"),
    Milestone("target_reached", "target reached",
              r"Reached target .*(?:Multi-User|Basic System|sysinit|Local File)", (b"Reached target ",),
              "[  OK  ] Reached target multi-user.target - Multi-User System."),
    Milestone("login_prompt", "login prompt", r"[\w.-]+ login:", (b" login:",), "carbide-sandbox login: "),
)
RANK = {m.name: i for i, m in enumerate(MILESTONES)}

_NO_DHCP_HINT = ("no DHCP offer: check the network mode (user networking answers DHCP itself; bridge mode "
                 "needs carbide-dhcp or the testnet's dnsmasq on carbide0)")

ENTRIES: tuple[Entry, ...] = (
    # ---- benign: looks bad, is routine ---------------------------------------------------
    Entry("ipxe_autoexec_probe", BENIGN,
          r"autoexec\.ipxe\.*\s*(?:Not found|No such file|Error|Operation not|Permission denied|Connection|Input/output)",
          (b"autoexec.ipxe",),
          "iPXE looks for an optional autoexec.ipxe beside itself and goes on without one (every boot "
          "of carbide's own ipxe.efi prints this): harmless",
          "autoexec.ipxe... Not found (https://ipxe.org/2d12618e)"),
    Entry("proxydhcp_wait", BENIGN,
          r"PXE-E55|ProxyDHCP (?:service did not reply|timed out)|Waiting for ProxyDHCP|No ProxyDHCP resp",
          (b"PXE-E55", b"ProxyDHCP"),
          "no ProxyDHCP answered (ProxyDHCP is optional when the main DHCP server offers the bootfile)",
          "PXE-E55: ProxyDHCP service did not reply to request on port 4011."),
    Entry("link_wait", BENIGN, r"Link(?: status)?: ?[Dd]own|Waiting for link-up",
          (b"Link:down", b"Link: down", b"Link status: Down", b"Link status: down", b"Waiting for link-up"),
          "iPXE waits for the NIC's link to come up; harmless when it then configures the NIC",
          "  [Link status: Down(http://ipxe.org/38086193)]"),
    Entry("nic_error_counters", BENIGN, r"^\s*\[(?:TXE|RXE): \d+ x", (b"[TXE: ", b"[RXE: "),
          "iPXE's per-NIC error counters (packets sent before DHCP finished): harmless",
          '  [TXE: 1 x "Network unreachable (http://ipxe.org/28086090)"]'),
    Entry("tsc_unstable", BENIGN,
          r"tsc: (?:Marking TSC unstable|Fast TSC calibration failed|Unable to calibrate against PIT)",
          (b"tsc: Marking TSC unstable", b"tsc: Fast TSC calibration failed", b"tsc: Unable to calibrate"),
          "routine under QEMU/TCG: the virtual TSC is not stable, the kernel picks another clocksource",
          "[    0.009849] tsc: Marking TSC unstable due to TSCs unsynchronized"),
    Entry("clock_note", BENIGN,
          r"Unstable clock detected|clocksource: .*as unstable|calibrate_delay_direct\(\) failed",
          (b"Unstable clock detected", b"as unstable", b"calibrate_delay_direct"),
          "routine under emulation: the kernel notes a slow or unstable clock and adapts",
          "[   15.828675] Unstable clock detected, switching default tracing clock to \"global\""),
    Entry("firmware_bug_note", BENIGN, r"\[Firmware (?:Bug|Warn|Info)\]", (b"[Firmware ",),
          "a note about the (virtual) firmware's tables; routine on QEMU and many servers",
          "[    0.000000] [Firmware Bug]: TSC doesn't count with P0 frequency!"),
    Entry("acpi_note", BENIGN, r"ACPI (?:BIOS )?(?:Error|Warning)",
          (b"ACPI BIOS Error", b"ACPI BIOS Warning", b"ACPI Error", b"ACPI Warning"),
          "an ACPI table problem the kernel works around; routine on QEMU and many servers",
          "[    0.345678] ACPI BIOS Error (bug): Could not resolve symbol [\\_SB.PCI0.S08], AE_NOT_FOUND"),
    Entry("edd_missing", BENIGN, r"EDD information not available", (b"EDD information not available",),
          "no BIOS disk information (EDD) under a network boot: routine",
          "EDD information not available."),
    # ---- the firmware gives up or drops to a shell -----------------------------------------
    Entry("uefi_shell", FATAL, r"UEFI Interactive Shell v\d|^\s*Shell> ?",
          (b"UEFI Interactive Shell", b"Shell>"),
          "the firmware started its UEFI shell instead of a network boot: every network boot option "
          "failed (see the lines above), or the boot order put the shell first. Carbide's docs: type "
          "`exit` in the shell, then Continue in the boot manager",
          "UEFI Interactive Shell v2.2"),
    Entry("no_bootable", FATAL,
          r"No bootable device|No bootable option or device was found"
          r"|INT18: BOOT FAILURE|Could not read from the boot medium",
          (b"No bootable device", b"No bootable option or device",
           b"INT18: BOOT FAILURE", b"Could not read from the boot medium"),
          "the firmware found nothing to boot: every boot option failed (the first failure above says "
          "why), or no device offers a boot program",
          "No bootable device.  Retrying in 60 seconds."),
    Entry("ipxe_shell", FATAL, r"^\s*iPXE> ", (b"iPXE>",),
          "iPXE stopped at its command line (a script ran `shell`, or Ctrl-B was pressed): the lines "
          "above say why the script gave up", "iPXE> "),
    Entry("vm_exited", FATAL, r"reboot: (?:Restarting system|Power down)|Rebooting in \d+ seconds",
          (b"reboot: ", b"Rebooting in "),
          "the guest rebooted or powered off before a login prompt (with -no-reboot QEMU then exits): "
          "the lines above say why", "[    3.123456] reboot: Restarting system", recovery="success"),
    # ---- carbide's embedded iPXE script (before the firmware lines it shares a row with) ----
    Entry("no_uuid_option", ERROR, r"carbide-sandbox: no DHCP option 43\.70", (b"no DHCP option 43.70",),
          "the iPXE chain never fired: DHCP gave no option 43.70 (the machine UUID), which the sandbox's "
          "embedded script needs just like carbide's. Boot on the testnet with dhcp_machine_uuid = True "
          "(or against carbide-dhcp); under user networking no DHCP can send it",
          "carbide-sandbox: no DHCP option 43.70 (machine uuid): the chain to carbide-pxe cannot fire"),
    Entry("no_uuid_option", ERROR, r"Hit the \S+ key to continue", (b"key to continue",),
          "the iPXE chain never fired: DHCP gave no option 43.70 (the machine UUID), so carbide's "
          "embedded script went to its error handler. Boot against carbide-dhcp (or the testnet's "
          "DHCP, which sends 43.70), or use an ipxe.efi built with the sandbox chain script",
          "Hit the x key to continue"),
    # ---- firmware network boot -----------------------------------------------------------
    Entry("no_dhcp_offer", ERROR,
          r"PXE-E16|PXE-E51|No valid offer received|No DHCP or proxyDHCP offers",
          (b"PXE-E16", b"PXE-E51", b"No valid offer received", b"No DHCP or proxyDHCP"),
          _NO_DHCP_HINT, "  PXE-E16: No valid offer received.", warn="pxe_attempt_failed"),
    Entry("tftp_error", ERROR, r"PXE-E18\b", (b"PXE-E18",),
          "the firmware got an address but its TFTP server did not answer (PXE-E18: server response "
          "timeout; across subnets, a firewall, or no TFTP service at the next-server)",
          "  PXE-E18: Server response timeout.", warn="pxe_attempt_failed", unaddressed="no_dhcp_offer"),
    Entry("http_not_found", ERROR, r"Client Error: 404", (b"Client Error: 404",),
          "the firmware's HTTP boot got 404 for the URL in DHCP's bootfile: fix the URL or put the EFI "
          "binary on the HTTP server", "  Client Error: 404 Not Found", warn="pxe_attempt_failed"),
    Entry("tftp_error", ERROR,
          r"PXE-E(?:23|3[0-9A-F]|99)\b|TFTP error|Client received TFTP error|TFTP (?:open|read) timeout"
          r"|tftp://\S+\.{2,}\s*(?:Connection|No such file|Not found|Permission denied|Operation)",
          (b"PXE-E", b"TFTP error", b"TFTP open", b"TFTP read", b"tftp://"),
          "the boot file (ipxe.efi) did not come over TFTP: it is missing from the TFTP root (check the "
          "artifacts dir and the DHCP bootfile), the TFTP server does "
          "not answer (PXE-E18: server response timeout; across subnets, a firewall), or DHCP named "
          "something a PXE client cannot fetch ('NBP filesize is 0 Bytes', e.g. an http:// URL)",
          "  PXE-E23: Client received TFTP error from server.", warn="pxe_attempt_failed"),
    Entry("pxe_error", ERROR, r"PXE-E(?:0\d|1[0-57-9]|2[0-24-9]|[4-9]\d)\b", (b"PXE-E",),
          "the firmware's PXE boot failed: check that DHCP answers on this network and offers a bootfile",
          "  PXE-E21: Remote boot cancelled.", warn="pxe_attempt_failed"),
    Entry("http_boot_error", ERROR,
          r"Error: (?:Could not retrieve NBP file size|Server response timeout|Unexpected network error"
          r"|Remote boot cancelled|HTTP)",
          (b"Error: ",),
          "the firmware's HTTP boot could not download its boot file: DHCP must offer an http:// URL "
          "(vendor class HTTPClient) to an EFI binary on a reachable HTTP server",
          "  Error: Could not retrieve NBP file size from HTTP server.", warn="pxe_attempt_failed",
          unaddressed="no_dhcp_offer"),
    Entry("boot_option_failed", ERROR, r"Boot failed: ", (b"Boot failed: ",),
          "SeaBIOS could not boot this device (with no disk, 'Booting from Hard Disk' fails before the "
          "NIC's ROM runs: harmless then); the lines above say why",
          "Boot failed: could not read the boot disk", warn="pxe_attempt_failed"),
    Entry("boot_option_failed", ERROR, r"BdsDxe: failed to (?:load|start) Boot\w+",
          (b"BdsDxe: failed to load Boot", b"BdsDxe: failed to start Boot"),
          "the firmware could not load this boot option: the line above it says why",
          "BdsDxe: failed to load Boot0001 \"UEFI PXEv4 (MAC:525400123456)\" from PciRoot(0x0): Not Found",
          warn="pxe_attempt_failed"),
    # ---- iPXE --------------------------------------------------------------------------
    Entry("no_dhcp_offer", ERROR,
          r"No configuration methods succeeded|(?:Configuring|DHCP) (?:\[\w+\] )?\(net\d[^)]*\)\.*\s*"
          r"(?:No configuration|Connection timed out)",
          (b"No configuration methods succeeded", b"Configuring ", b"DHCP (net"),
          _NO_DHCP_HINT + "; on a first VM boot against carbide, iPXE's DHCP can fail once: `reset` the "
          "VM (carbide's vm_pxe_client docs)",
          "Configuring (net0 52:54:00:12:34:56)...... No configuration methods succeeded "
          "(https://ipxe.org/040ee186)", warn="nic_not_configured"),
    Entry("ipxe_gave_up", ERROR, r"No more network devices", (b"No more network devices",),
          "iPXE tried every network device and booted none (the first failure above says why); the "
          "firmware moves on to its next boot device", "No more network devices",
          warn="pxe_attempt_failed"),
    Entry("no_bootfile", ERROR, r"Nothing to boot", (b"Nothing to boot",),
          "DHCP gave iPXE an address but no boot filename: have DHCP hand iPXE (user class iPXE / "
          "option 175) the boot-script URL, or use an iPXE with the chain script embedded",
          "Nothing to boot: No such file or directory (https://ipxe.org/2d03e18e)"),
    Entry("ipxe_error", ERROR, r"Could not (?:boot|select)(?: image)?:", (b"Could not boot", b"Could not select"),
          "iPXE could not boot the image its script selected (the target does not exist or is not "
          "bootable here): see the ipxe.org link and the script's boot lines",
          "Could not boot: No such file or directory (http://ipxe.org/2d02803b)", recovery="fetch"),
    Entry("http_connection", ERROR,
          r"(?:Connection (?:reset|refused|timed out)|Network unreachable|No route to host|Host is unreachable)"
          r"[^\n]*ipxe\.org",
          (b"ipxe.org",),
          "iPXE could not reach the carbide-pxe server: is it running and listening on the chained "
          "port? (under user networking a stopped server shows as 'Connection reset')",
          "http://10.0.2.2:8080/api/v0/pxe/boot... Connection reset (https://ipxe.org/0f0a6095)",
          recovery="fetch"),
    Entry("unknown_machine", ERROR, r"carbide-pxe stand-in: unknown machine uuid",
          (b"unknown machine uuid",),
          "carbide-pxe does not know the machine uuid the chain sent (DHCP's option 43.70) and answered "
          "a script that exits 101. Register the machine (on the testnet: leave standin_uuid empty so "
          "the stand-in knows the VM's uuid)",
          "carbide-pxe stand-in: unknown machine uuid 0b7c6e5e-1d2a-4c1e-9f1e-2a3b4c5d6e7f: no machine "
          "interface with this id is known here"),
    Entry("unknown_machine", ERROR,
          r"/api/v0/pxe/boot\?\S*\.{2,}\s*(?:No such file or directory|Not found|File not found)[^\n]*ipxe\.org",
          (b"/api/v0/pxe/boot?",),
          "the server answered 404 for the boot script itself: it does not know the machine uuid the "
          "chain sent (DHCP's option 43.70), or it is not carbide-pxe",
          "http://192.168.240.1:8080/api/v0/pxe/boot?uuid=0b7c6e5e-1d2a-4c1e-9f1e-2a3b4c5d6e7f&buildarch="
          "x86_64... No such file or directory (https://ipxe.org/2d0c613b)", recovery="fetch"),
    Entry("http_not_found", ERROR, r"(?:No such file or directory|Not found|File not found)[^\n]*ipxe\.org",
          (b"ipxe.org",),
          "the server answered 404: the boot script names an artifact that is not in the artifacts "
          "dir; rebuild (step 2) or fix the template",
          "http://10.0.2.2:8080/public/blobs/internal/x86_64/carbide.vmlinuz... No such file or "
          "directory (http://ipxe.org/2d0c613b)", recovery="fetch"),
    Entry("ipxe_error", ERROR, r"\(https?://ipxe\.org/[0-9a-f]{8}\)", (b"ipxe.org",),
          "iPXE reported an error: open the ipxe.org link for its meaning",
          "Error 0x00000001 (http://ipxe.org/00000001)", recovery="fetch"),
    # ---- the kernel and userspace ---------------------------------------------------------
    Entry("efi_stub_error", ERROR, r"EFI stub: ERROR", (b"EFI stub: ERROR",),
          "the UKI could not load (often too little memory for its initrd): give the VM >= 2048 MB",
          "EFI stub: ERROR: Failed to load initrd: 0x8000000000000009", recovery="success"),
    Entry("initramfs_unpack", ERROR, r"Initramfs unpacking failed", (b"Initramfs unpacking failed",),
          "the kernel could not unpack the initrd (out of memory or a corrupt carbide.root): give the VM "
          "more memory (memory_mb >= 2048; the docs use 4096) or rebuild the image",
          "[    4.628847] Initramfs unpacking failed: write error", recovery="success"),
    Entry("root_mount", FATAL, r"VFS: Unable to mount root fs|VFS: Cannot open root device",
          (b"VFS: Unable to mount root fs", b"VFS: Cannot open root device"),
          "the kernel found no root filesystem: the initrd is missing or not passed (check the boot "
          "script's initrd line and carbide.root)",
          "[    2.787056] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
          recovery="success"),
    Entry("soft_lockup", SURVIVED, r"soft lockup - CPU#\d+ stuck", (b"soft lockup",),
          "a CPU was stuck in the kernel for tens of seconds (common on an overloaded host under TCG); "
          "a problem only if the boot then never finished",
          "[   48.123456] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [swapper/1:0]"),
    Entry("kernel_panic", FATAL, r"Kernel panic - not syncing", (b"Kernel panic - not syncing",),
          "the kernel panicked: read the lines just above the panic for the cause",
          "[    2.787056] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100",
          recovery="success"),
    Entry("emergency_mode", FATAL,
          r"You are in emergency mode|Entering emergency mode|Emergency shell|Give root password for "
          r"maintenance|dracut:/# ",
          (b"emergency mode", b"Emergency shell", b"Give root password for maintenance", b"dracut:/#"),
          "systemd (or dracut) fell into emergency mode: a unit needed for boot failed (look for "
          "'Failed to' above)", "You are in emergency mode. After logging in, type \"journalctl -xb\"",
          recovery="success"),
    Entry("unit_failed", SURVIVED, r"\[FAILED\] Failed to start|systemd\[1\]: Failed to start",
          (b"[FAILED] Failed to start", b"systemd[1]: Failed to start"),
          "a systemd unit failed to start (with an emulated TPM, carbide's PCR barrier units fail "
          "and the boot goes on); the cause only if the boot then never reached the prompt",
          "[FAILED] Failed to start systemd-pcrphase-sysinit.service - TPM2 PCR Barrier (Initialization)."),
    Entry("rcu_stall", SURVIVED,
          r"rcu: INFO: rcu_\w+ (?:self-)?detected stall|INFO: rcu_\w+ (?:self-)?detected stall"
          r"|rcu_\w+ kthread (?:starved|timer wakeup didn't happen)",
          (b"detected stall", b" kthread starved", b"kthread timer wakeup"),
          "the kernel reported an RCU stall (a CPU made no progress for ~21 s; seen under multi-threaded "
          "TCG in the kernel's cross-CPU code patching): a problem only if the boot then hung",
          "[   35.123456] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
    Entry("hung_task", SURVIVED, r"INFO: task \S+ blocked for more than \d+ seconds", (b"blocked for more than",),
          "a task waited for minutes (slow storage or an overloaded host); a problem only if the boot "
          "then never finished",
          "[  242.123456] INFO: task systemd-udevd:123 blocked for more than 120 seconds."),
    Entry("oom_kill", SURVIVED, r"Out of memory: Kill(?:ed)? process|invoked oom-killer",
          (b"Out of memory: Kill", b"invoked oom-killer"),
          "the kernel killed a process for memory; give the VM more memory (memory_mb) if the boot "
          "then failed", "[   30.123456] Out of memory: Killed process 345 (systemd-udevd)"),
    Entry("kernel_oops", SURVIVED,
          r"(?:^|\] )(?:Oops[:\s]|BUG: |Unhandled fault|WARNING: CPU: \d+ PID|-+\[ cut here \]-+)",
          (b"Oops", b"BUG: ", b"Unhandled fault", b"WARNING: CPU: ", b"[ cut here ]"),
          "a kernel bug/oops/WARN was logged: read the trace that follows",
          "[    9.876543] BUG: kernel NULL pointer dereference, address: 0000000000000000"),
)

# Loops are found by repetition (see the analyzer); their kinds and hints live here too.
LOOP_HINTS: dict[str, str] = {
    "chain_loop": "the same boot file is fetched again and again: an iPXE with no script boots the DHCP "
                  "bootfile, which is itself. Put autoexec.ipxe beside ipxe.efi in the TFTP root (prebuilt "
                  "iPXE >= 2023), embed the chain script (EMBED=), or have DHCP hand iPXE (user class "
                  "iPXE / option 175) the boot-script URL instead of the iPXE binary",
    "banner_loop": "the firmware or iPXE keeps starting over without reaching a kernel (a reboot or "
                   "boot-option loop): read the first attempt's last lines for why it gave up",
    "carbide_menu_loop": "carbide's iPXE keeps cycling through its prompt/menu without chaining the boot "
                         "URL: DHCP gave no option 43.70 (machine UUID) or the chain failed; use "
                         "carbide-dhcp or the testnet's DHCP",
}
END_HINTS: dict[str, str] = {
    "timeout": "the boot stopped after milestone '{last}': look at the serial lines after it; a hang "
               "there is the first problem to fix",
    "vm_exited": "QEMU stopped after milestone '{last}' (with -no-reboot a reboot or reset ends the VM): "
                 "read the last serial lines",
    "no_login": "the boot got as far as '{last}'",
    "no_output": "the VM printed nothing: check the firmware and that the serial console is ttyS0 "
                 "(console=ttyS0,115200)",
}
