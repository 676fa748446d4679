/*
 * carbide-sandbox: iPXE's console (src/config/local/console.h).
 *
 * The runbook watches a boot on the VM's first serial port, and both firmwares it
 * boots already carry iPXE's console there: OVMF copies the EFI console to the
 * serial port, and SeaBIOS (QEMU with graphics=off) sends the BIOS text console
 * to it. CONSOLE_SERIAL (iPXE writing COM1 itself) is therefore NOT enabled: tried
 * at d7e58c5a, it printed every character twice ("ccaarrbbiiddee") under both
 * firmwares, which no log reader can follow. (Carbide's general.h does enable it, for
 * its hardware; the sandbox's builds only ever boot under these two firmwares.)
 * On hardware whose firmware does not redirect its console, add here:
 *
 *     #define CONSOLE_SERIAL
 */
