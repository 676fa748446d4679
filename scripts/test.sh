#!/usr/bin/env bash
# Set up, then run every test: unit, integration (real processes), e2e (real image build and
# real VM boots under TCG) and the notebooks' committed outputs (nbval).
# Extra arguments go to pytest, e.g.  ./scripts/test.sh -m "not e2e"  or  ./scripts/test.sh tests/unit
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

# Test-only Debian packages (the runbooks themselves do not need them): the real cargo that the
# fixture carbide trees run `cargo make` through, and sudo for the elevation tests (a real
# non-root user), busybox for udhcpc (the testnet's DHCP client in its integration test),
# dpkg-dev for dpkg-scanpackages (the fixture carbide checkout's apt-repo task calls it, as
# carbide's does, so a "ready" checkout needs it), docker.io + docker-compose for the bounce test (a
# private dockerd and a compose project whose carbide-pxe is restarted for real), chromium +
# chromium-driver for tests/browser (reports and notebook 00 in JupyterLab, opened in a real
# headless browser by selenium; nothing is downloaded). Installed only when dpkg says they are missing; under CI=true a test whose
# tool is missing fails instead of skipping, so this list must stay complete.
TEST_PACKAGES=(cargo sudo busybox dpkg-dev docker.io docker-compose chromium chromium-driver)
missing=()
for pkg in "${TEST_PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null; then
            echo "test: need root to install the test packages ${missing[*]}: run as root, or install them" >&2
            exit 2
        fi
        SUDO=(sudo)
    fi
    echo "test: installing test-only packages: ${missing[*]}"
    apt_install=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends)
    if ! "${apt_install[@]}" "${missing[@]}"; then
        echo "test: refreshing the package lists and trying again"
        "${SUDO[@]}" apt-get update -q
        "${apt_install[@]}" "${missing[@]}"
    fi
fi

# With no path given, pytest takes testpaths from pyproject.toml: tests/ and notebooks/.
exec .venv/bin/python -m pytest --nbval-lax --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-cell-timeout 3600 "$@"
