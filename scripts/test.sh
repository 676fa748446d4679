#!/usr/bin/env bash
# Set up, then run every test: unit, integration (real processes), e2e (real image build and
# real VM boots under TCG) and the notebooks' committed outputs (nbval).
# Extra arguments go to pytest, e.g.  ./scripts/test.sh -m "not e2e"  or  ./scripts/test.sh tests/unit
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# With no path given, pytest takes testpaths from pyproject.toml: tests/ and notebooks/.
exec .venv/bin/python -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-cell-timeout 3600 "$@"
