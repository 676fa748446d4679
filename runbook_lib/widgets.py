"""The JupyterLab install panel of step 1: tick packages, press Install.

It calls the same :func:`runbook_lib.tools.install_packages` that the
`install_missing` parameter drives under papermill, then re-checks and shows the
new table. Outside a live kernel (papermill, nbconvert) it only shows what it
would offer, since nobody can press a button there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import tools
from .live import LiveTail


def install_panel(result: "tools.Step1Result", log_dir: Path | None = None) -> Any:
    import ipywidgets as w
    from IPython.display import HTML, display

    from .report.render import table_html

    report = result.report
    pkgs = report.installable_packages() if report else []
    if report is None or not pkgs:
        return w.HTML("<i>Nothing to install: every tool with a Debian package is present.</i>")
    boxes = [w.Checkbox(value=True, description=p, indent=False) for p in pkgs]
    button = w.Button(description="Install selected", button_style="primary", icon="download")
    dry = w.Checkbox(value=False, description="dry run (show the command only)", indent=False)
    out = w.Output()

    def on_click(_: Any) -> None:
        chosen = [b.description for b in boxes if b.value]
        button.disabled = True
        with out:
            out.clear_output()
            tail = LiveTail("apt-get")
            outcome = tools.install_packages(
                chosen, dry_run=dry.value, on_line=tail,
                log_path=(log_dir / "apt-install.log") if log_dir else None)
            tail.close()
            print(f"{outcome.status.value}: {outcome.message}")
            if outcome.command:
                print(f"command: {outcome.command}")
            if not dry.value:
                again = tools.check_tools(report.mode)
                display(HTML(table_html(again.frame())))
        button.disabled = False

    button.on_click(on_click)
    return w.VBox([w.HTML("<b>Missing Debian packages</b> (one apt transaction, elevated with "
                          "sudo when not root):"), w.HBox(boxes), dry, button, out])
