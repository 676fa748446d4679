#!/usr/bin/env bash
# The main job: set everything up, then run every runbook on the embedded default
# (step 1 tools, step 2 sandbox build, step 3 PXE boot). Reports go to ./reports/.
# Extra arguments go to `runbook run all` (e.g. -p boot_timeout_s 600 --hide-code).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/runbook run all "$@"
