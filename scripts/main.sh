#!/usr/bin/env bash
# The main job: set everything up, then run every runbook on the embedded default
# (step 1 tools, step 2 sandbox build, step 3 PXE boot under QEMU user networking).
# Reports go to ./reports/. Extra arguments go to `runbook run all` (e.g. -p boot_timeout_s 600).
# As root it then boots once more on the testnet (a network namespace with carbide's DHCP
# contract: dnsmasq sending option 43.70); that report goes to ./reports/testnet/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
status=0
.venv/bin/runbook run all "$@" || status=$?
if [ "$status" -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
  echo "main: running as root: one more boot, on the testnet (network = testnet)"
  .venv/bin/runbook run 03 -p network testnet --report-dir reports/testnet || status=$?
fi
exit "$status"
