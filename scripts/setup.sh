#!/usr/bin/env bash
# Set up a fresh clone on Debian/Ubuntu: Python venv (.venv) with the package and its test extra,
# the Jupyter kernel, and every Debian package the runbooks use (one apt transaction, through
# step 1's own installer). Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "setup: installing python3-venv (needed to create .venv)"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-pip
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
    echo "setup: installing Python dependencies into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    .venv/bin/python -m ipykernel install --sys-prefix --name python3 \
        --display-name "Python 3 (carbide runbooks)" >/dev/null
    touch "$stamp"
fi
echo "setup: Debian packages the runbooks use"
.venv/bin/runbook tools install
