"""Step 3: PXE boot a QEMU VM, capture its serial console, explain the boot.

- :mod:`.standin`: the carbide-pxe stand-in (boot script + artifact server, request log)
- :mod:`.qemu`: the QEMU command line (OVMF/SeaBIOS, user/bridge networking, swtpm)
- :mod:`.console`: the serial watch (stamped log, live events, when to stop)
- :mod:`.analyze`: milestones, failures and the verdict for any serial log (streaming)
- :mod:`.step`: preflight + boot as a step function returning a StepResult; BootStep for notebooks
- :mod:`.report`: timeline/request tables, the timeline chart, serial excerpts
- :mod:`.cli`: ``runbook analyze-bootlog`` and ``runbook boot``
"""
