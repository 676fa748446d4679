#!/usr/bin/env python3
"""Re-execute a committed notebook in place with papermill so its outputs are a real run's.

Usage: .venv/bin/python scripts/refresh_notebook.py notebooks/01_install_build_tools.ipynb [-p key value]...
Outputs double as "what you should see" for first-time users and are checked by nbval.
Papermill's per-run metadata and its `injected-parameters` cell are stripped: a committed
notebook holds only its own `parameters` cell, so opening it in JupyterLab or re-running it under
nbval uses the documented defaults (an injected `force = True` would rebuild the image on every
run). Secret parameters are redacted exactly as `runbook run` redacts its reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import papermill as pm

from runbook_lib.params import resolve
from runbook_lib.report.export import bound_outputs, redact_notebook


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebook", type=Path)
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    args = ap.parse_args()
    nb_path = args.notebook.resolve()
    params = {k: v for k, v in args.p}
    pm.execute_notebook(str(nb_path), str(nb_path), parameters=params or None,
                        cwd=str(nb_path.parent), log_output=True, progress_bar=False,
                        kernel_name="python3")
    nb = nbformat.read(nb_path, as_version=4)
    spec = resolve(nb_path.name)
    # The same redaction and bounding as `runbook run`: committed outputs are shared too.
    nb = bound_outputs(redact_notebook(nb, spec.secret_values(spec.validate(params))))
    nb.metadata.pop("papermill", None)
    if params:
        print(f"note: outputs come from a run with {sorted(params)} set; the committed parameters cell "
              "keeps its defaults", file=sys.stderr)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, nb_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
