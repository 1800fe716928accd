#!/usr/bin/env bash
# Installs sedkit and everything it needs on a fresh Debian/Ubuntu machine:
#   - sox and libsox-dev (scaper's soxbindings compiles against them),
#   - sedkit itself in editable mode with the dev extra (pytest, ruff) and its entry points.
# Run from the repository root. Uses sudo for apt when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
if ! dpkg -s sox libsox-dev >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq sox libsox-dev
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install --quiet --upgrade "pip>=23"
"$PYTHON" -m pip install --quiet -e ".[dev]"
"$PYTHON" -c "import sedkit, sedkit_plugins; print('sedkit', sedkit.__version__, 'installed')"
